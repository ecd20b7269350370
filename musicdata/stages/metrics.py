"""The metrics stage: a generated set against a reference set, folders in, per-feature statistics
out (musicdata.metrics does the per-set work), optionally recorded in the catalog (eval_results +
lineage + a runs row)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicdata.metrics.features import FeatureConfig, extract_features
from musicdata.metrics.load import LoadedSet, load_folders
from musicdata.metrics.sets import SetConfig, evaluate_sets

if TYPE_CHECKING:
    from musicdata.catalog import Catalog

__all__ = ["Evaluation", "evaluate_folders", "metrics_config_hash", "record_evaluation"]


def metrics_config_hash(features: FeatureConfig, sets: SetConfig) -> str:
    from musicdata.schemas.config import config_hash

    return config_hash({"features": features.to_dict(), "sets": sets.to_dict(), "version": 1})


@dataclass
class Evaluation:
    """One reference-vs-generated comparison and everything needed to record it."""

    eval_id: str
    ref_set: str
    gen_set: str
    config_hash: str
    config: dict[str, Any]
    ref: LoadedSet
    gen: LoadedSet
    results: dict[str, dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (without the plot arrays)."""
        keep = ("kld", "oa", "intra_ref_mean", "intra_ref_std", "inter_mean", "inter_std")
        return {
            "eval_id": self.eval_id,
            "ref_set": self.ref_set,
            "gen_set": self.gen_set,
            "config_hash": self.config_hash,
            "n_ref": len(self.ref.paths),
            "n_gen": len(self.gen.paths),
            "skipped": [
                {"path": s.path, "reason": s.reason, "detail": s.detail}
                for s in self.ref.skipped + self.gen.skipped
            ],
            "features": {
                k: {s: r[s] for s in keep} | {"degenerate": r["degenerate"]}
                for k, r in self.results.items()
            },
            "seconds": self.seconds,
        }


def evaluate_folders(
    ref_dir: Path,
    gen_dir: Path,
    *,
    feature_config: FeatureConfig | None = None,
    set_config: SetConfig | None = None,
    workers: int = 0,
) -> Evaluation:
    """Load both folders (isolated parsing), extract features, compare the sets."""
    feature_config = feature_config or FeatureConfig()
    set_config = set_config or SetConfig()
    from musicdata.catalog.evaluation import evaluation_id, set_id

    t0 = time.perf_counter()
    ref, gen = load_folders([Path(ref_dir), Path(gen_dir)], workers=workers)
    t1 = time.perf_counter()
    for loaded, role, need in ((ref, "reference", 2), (gen, "generated", 1)):
        if len(loaded.notes) < need:
            msg = (
                f"{role} folder {loaded.folder} has {len(loaded.notes)} usable MIDI file(s) "
                f"({len(loaded.skipped)} skipped); the comparison needs at least {need}"
            )
            raise ValueError(msg)
    ref_feats = extract_features(ref.notes, feature_config)
    gen_feats = extract_features(gen.notes, feature_config)
    t2 = time.perf_counter()
    results = evaluate_sets(ref_feats, gen_feats, set_config)
    t3 = time.perf_counter()
    chash = metrics_config_hash(feature_config, set_config)
    ref_set, gen_set = set_id(ref.sha256s), set_id(gen.sha256s)
    for r in results.values():
        r["ref_set"], r["gen_set"] = ref_set, gen_set
    return Evaluation(
        eval_id=evaluation_id(ref_set, gen_set, chash),
        ref_set=ref_set,
        gen_set=gen_set,
        config_hash=chash,
        config={"features": feature_config.to_dict(), "sets": set_config.to_dict()},
        ref=ref,
        gen=gen,
        results=results,
        seconds={
            "load": round(t1 - t0, 3),
            "features": round(t2 - t1, 3),
            "sets": round(t3 - t2, 3),
        },
    )


def record_evaluation(catalog: Catalog, ev: Evaluation, *, run_id: str | None = None) -> int:
    """Write the evaluation (rows, lineage, a runs row) in one short transaction.

    Returns the number of new eval_results rows (0 when the same evaluation was recorded before).
    """
    from musicdata import __version__
    from musicdata.catalog import evaluation, records

    run_id = run_id or f"local-{uuid.uuid4().hex[:12]}:metrics"
    rows = evaluation.result_rows(
        ev.eval_id, run_id, ev.results, ref_set=ev.ref_set, gen_set=ev.gen_set
    )
    sets = {ev.ref_set: ev.ref.sha256s, ev.gen_set: ev.gen.sha256s}
    edges = evaluation.lineage_rows(ev.eval_id, run_id, ev.config_hash, __version__, sets)
    with catalog.write() as con:
        config = ev.config | {"ref_dir": ev.ref.folder, "gen_dir": ev.gen.folder}
        records.start_run(con, run_id, "metrics", __version__, config)
        new = evaluation.record_evaluation(con, rows, edges)
        summary = {"eval_id": ev.eval_id, "rows_new": new, "rows": len(rows)}
        records.finish_run(con, run_id, "completed", summary)
    return new
