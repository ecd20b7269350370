"""Experiment: the NMT paper's sub-decoder comparison, at CPU scale, on the Bach chorales.

The Nested Music Transformer paper (arXiv 2408.01180) reports test NLL on SOD (a corpus of
classical scores) in the order NB-PF + NMT 0.549 < NB-MF + NMT 0.567 < NB-MF + parallel
sub-decoder 0.712 (mean NLL per sub-token). This script runs the same four-way comparison end to
end through the library's stages on real music that is available offline: the Bach chorales of
music21's corpus (371 entries in Riemenschneider order, 350 distinct works), converted once to
MIDI and cached under ~/.cache/musicdata/chorales.

    chorales -> ingest (split 80/10/10 by content hash) -> tokenize nb-pf, nb-mf, remi
    -> train NB-PF + NMT (cross sub-decoder + enricher), NB-MF + NMT, NB-MF + parallel heads
       (enricher off), REMI + flat decoder: same preset, steps, batch size and seed
    -> evaluate every run on the test split

Two NLLs per run: the paper's (mean nats per sub-token) and nats per note (total nats on the test
split / notes of the test pieces in the catalog), which compares NB (one compound token per note,
plus metric tokens) with REMI (several flat tokens per note) on the same footing.

    python benchmarks/exp_nmt_chorales.py --steps 300            # the CPU run (small preset)
    python benchmarks/exp_nmt_chorales.py --limit 12 --steps 2 --preset debug   # smoke, ~1-2 min
    python benchmarks/exp_nmt_chorales.py --steps 300 --json     # one JSON object on stdout

No thresholds: it prints what it measures. Import-safe (work happens in `main`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicdata.fsutil import atomic_write
from musicdata.schemas.config import SplitConfig
from musicdata.workspace import Workspace

CACHE = Path("~/.cache/musicdata/chorales").expanduser()
DEFAULT_HOME = Path(tempfile.gettempdir()) / "musicdata-chorales"  # /tmp/musicdata-chorales
ENCODINGS = ("nb-pf", "nb-mf", "remi")
# the paper's SOD column, mean NLL per sub-token (Table 2); REMI's flat NLL is not comparable
PAPER_SOD_NLL = {"nb-pf+nmt": 0.549, "nb-mf+nmt": 0.567, "nb-mf+parallel": 0.712}


@dataclass(frozen=True)
class Run:
    name: str
    encoding: str
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)


RUNS = (
    Run("nb-pf+nmt", "nb-pf", "nmt", {"sub_decoder": "cross", "enricher": True}),
    Run("nb-mf+nmt", "nb-mf", "nmt", {"sub_decoder": "cross", "enricher": True}),
    Run("nb-mf+parallel", "nb-mf", "nmt", {"sub_decoder": "parallel", "enricher": False}),
    Run("remi+flat", "remi", "flat", {}),
)


# ---- data: chorales -> cached MIDI ----------------------------------------------------------


def chorale_works(limit: int | None = None) -> list[str]:
    """music21 corpus paths of the chorales, Riemenschneider order, duplicates dropped."""
    from music21 import corpus

    seen: dict[str, None] = {}
    for path in corpus.chorales.Iterator(returnType="filename"):
        seen.setdefault(str(path), None)
    works = list(seen)
    return works[:limit] if limit is not None else works


def _midi_name(work: str) -> str:
    return work.replace("/", "_") + ".mid"  # "bach/bwv269" -> "bach_bwv269.mid"


def _convert(work: str, dest: str) -> str | None:
    """Write one chorale as MIDI; the error text if music21 cannot convert it."""
    from musicdata.demo import corpus_to_midi_bytes

    try:
        data = corpus_to_midi_bytes(work)
    except Exception as exc:  # noqa: BLE001 - music21 raises many types; one bad score is data
        return f"{work}: {type(exc).__name__}: {exc}"
    atomic_write(Path(dest), lambda tmp: tmp.write_bytes(data))
    return None


def cached_chorales(
    limit: int | None, cache: Path = CACHE, workers: int = 2, log: Any = print
) -> list[Path]:
    """MIDI files of the first `limit` chorales, converting only those not cached yet."""
    cache.mkdir(parents=True, exist_ok=True)
    works = chorale_works(limit)
    todo = [w for w in works if not (cache / _midi_name(w)).exists()]
    if todo:
        log(f"converting {len(todo)} chorales with music21 into {cache} (once; cached after)")
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            errors = [
                e for e in pool.map(_convert, todo, [str(cache / _midi_name(w)) for w in todo]) if e
            ]
        for e in errors:
            log(f"  not converted: {e}")
        log(f"  converted in {time.perf_counter() - t0:.0f} s")
    paths = [cache / _midi_name(w) for w in works if (cache / _midi_name(w)).exists()]
    assert paths, f"no chorale MIDI in {cache}: music21's corpus did not convert"
    return paths


# ---- pipeline: ingest, tokenize, train, evaluate --------------------------------------------


def open_workspace(home: Path, test_frac: float) -> Workspace:
    """The workspace with the experiment's split (val = test = test_frac)."""
    ws = Workspace.open(home)
    split = SplitConfig(seed=ws.config.split.seed, validation=test_frac, test=test_frac)
    return Workspace(root=ws.root, config=replace(ws.config, split=split))


def prepare(ws: Workspace, midi: list[Path], tag: str) -> dict[str, Any]:
    """Ingest the MIDI files and tokenize them into every encoding (reruns do no work)."""
    from musicdata.stages.ingest import ingest_paths
    from musicdata.stages.tokenize import tokenize_encodings

    t0 = time.perf_counter()
    ing = ingest_paths(ws, midi, run_id=f"{tag}:ingest", transcribe=False)
    t1 = time.perf_counter()
    tok = tokenize_encodings(
        ws, list(ENCODINGS), run_ids={e: f"{tag}:tokenize:{e}" for e in ENCODINGS}
    )
    t2 = time.perf_counter()
    splits = ws.catalog.query(
        "SELECT split, count(*) AS pieces, sum(n_notes)::BIGINT AS notes FROM core.pieces "
        "GROUP BY split ORDER BY split"
    ).to_pylist()
    return {
        "ingest": {k: v for k, v in ing.to_dict().items() if isinstance(v, int) and v},
        "tokenize": {s.info["encoding"]: s.to_dict().get("tokenized", 0) for s in tok},
        "splits": {r["split"]: {"pieces": r["pieces"], "notes": r["notes"]} for r in splits},
        "ingest_s": round(t1 - t0, 1),
        "tokenize_s": round(t2 - t1, 1),
    }


def split_counts(ws: Workspace, encoding: str, config_hash: str) -> dict[str, int]:
    """Pieces, tokens and notes (from core.pieces) of the test split of one encoding's shards."""
    (row,) = ws.catalog.query(
        "SELECT count(*) AS pieces, sum(length)::BIGINT AS tokens, sum(n_notes)::BIGINT AS notes "
        "FROM main.piece_lengths WHERE encoding = ? AND config_hash = ? AND split = 'test'",
        [encoding, config_hash],
    ).to_pylist()
    return {k: int(v or 0) for k, v in row.items()}


def run_one(
    ws: Workspace, run: Run, preset: str, steps: int | None, device: str | None, seed: int
) -> dict[str, Any]:
    """Train one (encoding, model) pair, evaluate it on the test split, derive NLL per note."""
    import torch

    from musicdata.models import api
    from musicdata.stages.evaluate import evaluate
    from musicdata.stages.train import train

    # api.train seeds torch with the run's seed before it builds the model (older code did not):
    # kept so figures made before that fix reproduce
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    s = train(
        ws,
        api,
        model=run.model,
        encoding=run.encoding,
        preset=preset,
        steps=steps,
        seed=seed,
        device=device,
        model_overrides=run.overrides or None,
    )
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    e = evaluate(ws, api, s.train_run_id, split="test")
    eval_s = time.perf_counter() - t1
    (meta,) = ws.catalog.query(
        "SELECT encoding_config_hash, target_steps, config_json FROM train_runs "
        "WHERE train_run_id = ?",
        [s.train_run_id],
    ).to_pylist()
    counts = split_counts(ws, run.encoding, meta["encoding_config_hash"])
    (speed,) = ws.catalog.query(
        "SELECT median(value) AS tps FROM train_metrics WHERE train_run_id = ? "
        "AND split = 'train' AND name = 'tokens_per_s'",
        [s.train_run_id],
    ).to_pylist()
    # every head scores every target position (NB and flat), so bits_per_token * ln 2 is nats
    # per (compound) token and `tokens` counts the scored target positions
    nats_per_token = e.bits_per_token * math.log(2)
    total_nats = nats_per_token * e.tokens
    batch = json.loads(meta["config_json"])["train"]["batch_size"]
    return {
        "run": run.name,
        "encoding": run.encoding,
        "model": run.model,
        "overrides": run.overrides,
        "train_run_id": s.train_run_id,
        "n_parameters": s.n_parameters,
        "steps": s.steps,
        "batch_size": batch,
        "train_s": round(train_s, 1),
        "s_per_step": round(train_s / max(s.steps, 1), 3),
        "eval_s": round(eval_s, 1),
        "median_tokens_per_s": round(speed["tps"] or 0.0, 1),  # the trainer's, per step
        "final": {k: v for k, v in s.info.items() if k.endswith(("_loss", "_nll"))},
        "test_nll_per_subtoken": e.nll,
        "test_nats_per_token": round(nats_per_token, 5),
        "test_sub_token_nll": {
            k.split("/", 1)[1]: v for k, v in e.to_dict().items() if k.startswith("nll/")
        },
        "test_scored_tokens": e.tokens,
        "test_pieces": counts["pieces"],
        "test_notes": counts["notes"],
        "test_nll_per_note": round(total_nats / counts["notes"], 5) if counts["notes"] else None,
        "paper_sod_nll": PAPER_SOD_NLL.get(run.name),
    }


def paper_order(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether NB-PF+NMT < NB-MF+NMT < NB-MF+parallel held, pair by pair (NLL per sub-token)."""
    nll = {r["run"]: r["test_nll_per_subtoken"] for r in results}
    pairs = [("nb-pf+nmt", "nb-mf+nmt"), ("nb-mf+nmt", "nb-mf+parallel")]
    held = {f"{a} < {b}": nll[a] < nll[b] for a, b in pairs if a in nll and b in nll}
    ours = sorted((n for n in PAPER_SOD_NLL if n in nll), key=nll.__getitem__)
    return {"pairs": held, "held": bool(held) and all(held.values()), "our_order": ours}


# ---- report ---------------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'run':<15} {'params':>9} {'steps':>5} {'batch':>5} {'s/step':>7} "
        f"{'NLL/sub-tok':>11} {'paper SOD':>9} {'nats/tok':>8} {'NLL/note':>8} {'test notes':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        paper = f"{r['paper_sod_nll']:.3f}" if r["paper_sod_nll"] is not None else "-"
        per_note = f"{r['test_nll_per_note']:.3f}" if r["test_nll_per_note"] is not None else "-"
        lines.append(
            f"{r['run']:<15} {r['n_parameters']:>9,} {r['steps']:>5} {r['batch_size']:>5} "
            f"{r['s_per_step']:>7.3f} {r['test_nll_per_subtoken']:>11.4f} {paper:>9} "
            f"{r['test_nats_per_token']:>8.3f} {per_note:>8} {r['test_notes']:>10}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=("debug", "small", "paper"))
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset's)")
    p.add_argument("--limit", type=int, default=None, help="first N chorales (default: all)")
    p.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"workspace (default {DEFAULT_HOME}, -<limit> appended with --limit)",
    )
    p.add_argument("--cache", type=Path, default=CACHE, help="cached chorale MIDI")
    p.add_argument(
        "--test-frac",
        type=float,
        default=None,
        help="validation and test fraction (default 0.1; 0.25 with --limit under 50, "
        "so a small smoke run still has test pieces)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 is faster on a crowded machine",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: the trainer's choice)")
    p.add_argument(
        "--runs",
        default=",".join(r.name for r in RUNS),
        help="comma-separated subset of " + ", ".join(r.name for r in RUNS),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-save", action="store_true", help="do not save benchmarks/results rows")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    chosen = [r for r in RUNS if r.name in args.runs.split(",")]
    unknown = set(args.runs.split(",")) - {r.name for r in RUNS}
    assert chosen and not unknown, (
        f"--runs: unknown {sorted(unknown)}; known {[r.name for r in RUNS]}"
    )
    home = args.home or (
        DEFAULT_HOME
        if args.limit is None
        else DEFAULT_HOME.with_name(f"{DEFAULT_HOME.name}-{args.limit}")
    )
    midi = cached_chorales(args.limit, args.cache, log=log)
    small = args.limit is not None and args.limit < 50
    ws = open_workspace(home, args.test_frac or (0.25 if small else 0.1))
    tag = f"exp-chorales-{time.strftime('%Y%m%d-%H%M%S')}"
    log(f"workspace {ws.root}: ingesting {len(midi)} chorales, tokenizing {', '.join(ENCODINGS)}")
    data = prepare(ws, midi, tag)
    log(f"  splits {data['splits']} (ingest {data['ingest_s']} s, tokenize {data['tokenize_s']} s)")
    if not data["splits"].get("test"):
        msg = f"no test pieces among {len(midi)} chorales; raise --limit or --test-frac"
        raise SystemExit(msg)
    results = []
    for run in chosen:
        log(f"train {run.name} ({args.preset}, steps {args.steps or 'preset'}) ...")
        r = run_one(ws, run, args.preset, args.steps, args.device, args.seed)
        log(
            f"  {r['n_parameters']:,} params, {r['train_s']} s ({r['s_per_step']} s/step), "
            f"test NLL/sub-token {r['test_nll_per_subtoken']:.4f}, "
            f"NLL/note {r['test_nll_per_note']}"
        )
        results.append(r)
    out = {
        "command": "python benchmarks/exp_nmt_chorales.py " + " ".join(argv or sys.argv[1:]),
        "workspace": str(ws.root),
        "pieces": len(midi),
        "preset": args.preset,
        "threads": args.threads or "default",
        "data": data,
        "results": results,
        "paper_order": paper_order(results),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if not args.no_save and args.limit is None:  # smoke runs (--limit) are not results
        from results import save

        paper = {"nb-pf+nmt": 0.549, "nb-mf+nmt": 0.567, "nb-mf+parallel": 0.712}
        rows = [
            {
                "what": f"test NLL per sub-token on {len(midi)} Bach chorales, {r['run']} "
                f"({args.preset}, {args.steps or 'preset'} steps, {r['n_parameters']:,} params, "
                f"seed {args.seed})",
                "figure": f"**{r['test_nll_per_subtoken']:.4f}** ({r['test_nll_per_note']:.3f} "
                "nats/note)",
                "target": f"paper SOD {paper[r['run']]}" if r["run"] in paper else "baseline",
            }
            for r in results
        ]
        rows.append(
            {
                "what": "NMT paper's SOD order NB-PF+NMT < NB-MF+NMT < NB-MF+parallel",
                "figure": f"held: **{out['paper_order']['held']}**",
                "target": "held",
            }
        )
        save(f"exp_nmt_chorales_seed{args.seed}", rows)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print()
        print(table(results))
        order = out["paper_order"]
        print(f"\npaper's SOD order (NLL per sub-token): {order['pairs']} -> held: {order['held']}")
        print(f"our order, best first: {' < '.join(order['our_order'])}")
        print(f"wall time {out['wall_s']} s")
    return out


if __name__ == "__main__":
    main()
