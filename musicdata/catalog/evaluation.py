"""Record a set-level evaluation into core.eval_results with its lineage.

Ids are content-derived so a rerun of the same evaluation writes nothing new:
- a set of files is `set:<sha256 of its sorted file sha256s>`;
- `eval_id` = `metrics-<hash of (ref set, gen set, metrics config hash)>`.
Lineage: `file:<sha256>` -> `set:<hash>` (stage `metrics-set`), `set:<hash>` -> `eval:<eval_id>`
(stage `metrics`).

Row contract (the report reads it; see docs/metrics.md): per feature key
(`pc`, `nc`, `pch`, `pctm`, `pr`, `pi`, `ioi`, `nlh`, `nltm`, `pc_seg`, `nc_seg`, `pch_seg`,
`ioi_seg`) four metrics `<feature>.kld`, `<feature>.oa`, `<feature>.intra_ref_mean`,
`<feature>.inter_mean`; the `.oa` row's detail_json carries the plot data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import duckdb

from musicdata.catalog.connection import now
from musicdata.catalog.records import insert_rows

STATISTICS = ("kld", "oa", "intra_ref_mean", "inter_mean")
PLOT_KEYS = (
    "feature",
    "grid",
    "intra_ref_pdf",
    "inter_pdf",
    "ref_set",
    "gen_set",
    "n_ref",
    "n_gen",
)


def set_id(file_sha256s: Iterable[str]) -> str:
    """`set:<hash>` of a set of files, independent of their order and paths."""
    text = "\n".join(sorted(set(file_sha256s)))
    return "set:" + hashlib.sha256(text.encode()).hexdigest()


def evaluation_id(ref_set: str, gen_set: str, config_hash: str) -> str:
    text = json.dumps([ref_set, gen_set, config_hash])
    return "metrics-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def result_rows(
    eval_id: str,
    run_id: str,
    results: dict[str, dict[str, Any]],
    *,
    ref_set: str,
    gen_set: str,
    checkpoint_id: str | None = None,
    split: str | None = None,
) -> list[dict[str, Any]]:
    """The eval_results rows of one evaluation (4 per feature)."""
    t = now()
    rows = []
    for feature, r in results.items():
        common = {"feature": feature, "ref_set": ref_set, "gen_set": gen_set}
        common |= {"n_ref": r["n_ref"], "n_gen": r["n_gen"]}
        details = {
            "kld": common
            | {"bandwidth_intra_ref": r["bandwidth_intra_ref"]}
            | {"bandwidth_inter": r["bandwidth_inter"], "degenerate": r["degenerate"]},
            "oa": common
            | {k: r[k] for k in ("grid", "intra_ref_pdf", "inter_pdf", "degenerate")}
            | {"kld": r["kld"], "oa": r["oa"]}
            | {"intra_ref_std": r["intra_ref_std"], "inter_std": r["inter_std"]},
            "intra_ref_mean": common | {"std": r["intra_ref_std"]},
            "inter_mean": common
            | {"std": r["inter_std"], "intra_gen_mean": r["intra_gen_mean"]}
            | {"intra_gen_std": r["intra_gen_std"]},
        }
        for stat in STATISTICS:
            rows.append(
                {
                    "eval_id": eval_id,
                    "checkpoint_id": checkpoint_id,
                    "metric": f"{feature}.{stat}",
                    "split": split,
                    "value": float(r[stat]),
                    "detail_json": json.dumps(details[stat], sort_keys=True),
                    "run_id": run_id,
                    "created_at": t,
                }
            )
    return rows


def lineage_rows(
    eval_id: str,
    run_id: str,
    config_hash: str,
    code_version: str,
    sets: dict[str, list[str]],
) -> list[dict[str, Any]]:
    """file -> set and set -> eval edges; `sets` maps a set id to its file sha256s."""
    t = now()
    edge = {"config_hash": config_hash, "code_version": code_version, "run_id": run_id}
    rows = []
    for sid, shas in sets.items():
        rows += [
            {"src_id": f"file:{s}", "dst_id": sid, "stage": "metrics-set", "created_at": t} | edge
            for s in sorted(set(shas))
        ]
        rows.append(
            {"src_id": sid, "dst_id": f"eval:{eval_id}", "stage": "metrics", "created_at": t} | edge
        )
    return rows


def record_evaluation(
    con: duckdb.DuckDBPyConnection,
    results_rows: list[dict[str, Any]],
    edges: list[dict[str, Any]],
) -> int:
    """Insert rows and edges, skipping what an earlier identical evaluation recorded.

    Returns how many eval_results rows are new.
    """
    if not results_rows:
        return 0
    eval_ids = sorted({r["eval_id"] for r in results_rows})
    before = _count(con, eval_ids)
    insert_rows(con, "eval_results", results_rows, on_conflict_nothing=True)
    insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
    return _count(con, eval_ids) - before


def _count(con: duckdb.DuckDBPyConnection, eval_ids: list[str]) -> int:
    marks = ", ".join("?" for _ in eval_ids)
    rows = con.execute(
        f"SELECT count(*) FROM core.eval_results WHERE eval_id IN ({marks})", eval_ids
    ).fetchall()
    return int(rows[0][0])


def plot_details(con: duckdb.DuckDBPyConnection, eval_id: str) -> list[dict[str, Any]]:
    """The plot data (`.oa` detail) of every feature of one evaluation, in feature order."""
    rows = con.execute(
        "SELECT metric, detail_json FROM core.eval_results "
        "WHERE eval_id = ? AND metric LIKE '%.oa' ORDER BY metric",
        [eval_id],
    ).fetchall()
    return [json.loads(d) for _, d in rows]
