"""Scale: a corpus of real-derived pieces (benchmarks/derived.py) ingested and tokenized (`nb-pf`)
with bounded memory, at several sizes in one run.

Each size gets a fresh workspace; ingest and tokenize each run in a fresh library process whose
peak memory (the driver and its isolated workers, summed; benchmarks/procs.py) is sampled. Bounded
means the peak does not grow with the corpus: the script prints peak RSS per step and size and the
ratio largest / smallest size, and saves rows to benchmarks/results/scale.json.

    python benchmarks/bench_scale.py --pieces 2000,20000 [--workdir DIR] [--keep]
    python benchmarks/bench_scale.py --pieces 5000,100000    # the issue's size; hours on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from derived import PER_FOLDER, derive
from procs import bench_env, library_cmd, run_measured

ENCODING = "nb-pf"
BOUND = 1.5  # peak at the largest size / peak at the smallest, while pieces grow many-fold


def corpus_inputs(corpus: Path, pieces: int) -> list[Path]:
    """Folders holding exactly `pieces` derived files (whole folders of 1,000 share one cache)."""
    if pieces % PER_FOLDER:
        dest = corpus / f"n{pieces}"
        for _ in derive(dest, pieces):
            pass
        return [dest]
    for _ in derive(corpus / "shared", pieces):
        pass
    return [corpus / "shared" / f"{i:03d}" for i in range(pieces // PER_FOLDER)]


def run_size(work: Path, pieces: int, rows_per_shard: int = 0) -> dict:
    """Ingest then tokenize `pieces` files in a fresh workspace; wall time and peak RSS of each.

    The tokenize driver buffers each split's rows until `[shards] rows_per_shard` (20,000 by
    default) and then writes a shard, so its memory grows with the corpus up to that many rows
    and no further; a smaller `rows_per_shard` shows the plateau at small sizes."""
    t0 = time.perf_counter()
    inputs = corpus_inputs(work / "corpus", pieces)
    t_corpus = time.perf_counter() - t0
    home = work / f"home-{pieces}"
    shutil.rmtree(home, ignore_errors=True)
    if rows_per_shard:
        home.mkdir(parents=True)
        (home / "musicdata.toml").write_text(f"[shards]\nrows_per_shard = {rows_per_shard}\n")
    out: dict = {"pieces": pieces, "corpus_s": t_corpus, "rows_per_shard": rows_per_shard}
    for step in ("ingest", "tokenize"):
        m = run_measured(library_cmd(work, home, ENCODING, step, inputs), env=bench_env())
        summary = json.loads(m.stdout.strip().splitlines()[-1])[step]
        out[step] = {
            "wall_s": m.wall_s,
            "files_per_s": pieces / m.wall_s,
            "peak_tree_mb": m.peak_tree_mb,
            "peak_main_mb": m.peak_main_mb,
            "summary": summary,
        }
        print(
            f"{pieces:>7} pieces  {step:<8} {m.wall_s:8.1f} s  {pieces / m.wall_s:6.1f} files/s  "
            f"peak RSS {m.peak_tree_mb:6.0f} MB (driver {m.peak_main_mb:5.0f} MB)  "
            f"ok {summary.get('ok', summary.get('tokenized'))}",
            flush=True,
        )
    out["shard_mb"] = sum(f.stat().st_size for f in (home / "shards").rglob("*.parquet")) / 1e6
    out["catalog_mb"] = (home / "catalog.duckdb").stat().st_size / 1e6
    return out


def rows(results: list[dict]) -> list[dict]:
    """Judged on the worse of the two ratios: the whole tree's peak and the driver's own."""
    small, big = results[0], results[-1]
    rps = big.get("rows_per_shard") or 20_000
    out = []
    for step in ("ingest", "tokenize"):
        a, b = small[step]["peak_tree_mb"], big[step]["peak_tree_mb"]
        da, db = small[step]["peak_main_mb"], big[step]["peak_main_mb"]
        ratio = max(b / a, db / da)
        out.append(
            {
                "what": f"scale: peak RSS of {step} at {big['pieces']:,} vs {small['pieces']:,} "
                f"real-derived pieces ({big['pieces'] // small['pieces']}x; shards of "
                f"{rps:,} rows)",
                "figure": f"**{ratio:.2f}x** (tree {b:.0f} vs {a:.0f} MB, driver {db:.0f} vs "
                f"{da:.0f} MB; {big[step]['files_per_s']:.0f} files/s at {big['pieces']:,})",
                "target": f"<= {BOUND}x (bounded)",
                "pass": ratio <= BOUND,
            }
        )
    return out


def _name(results: list[dict]) -> str:
    rps = results[0].get("rows_per_shard")
    return f"scale_rows{rps}" if rps else "scale"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", default="2000,20000", help="comma-separated sizes, smallest first")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the workspaces and corpus")
    ap.add_argument(
        "--rows-per-shard", type=int, default=0, help="[shards] rows_per_shard (0: default)"
    )
    ap.add_argument("--no-save", action="store_true", help="do not write results/scale.json")
    ap.add_argument(
        "--from-json", type=Path, help="save the rows of an earlier run's scale.json (no run)"
    )
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.pieces.split(","))
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        sizes = [r["pieces"] for r in results]
        command = f"python benchmarks/bench_scale.py --pieces {','.join(map(str, sizes))}"
        if results[0].get("rows_per_shard"):
            command += f" --rows-per-shard {results[0]['rows_per_shard']}"
        from results import save

        save(_name(results), rows(results), command=command)
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="musicdata-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [run_size(work, n, args.rows_per_shard) for n in sizes]
    (work / "scale.json").write_text(json.dumps(results, indent=2, default=str))
    if len(results) > 1:
        for row in rows(results):
            print(
                f"{row['what']}: {row['figure']} target {row['target']} "
                f"{'PASS' if row['pass'] else 'FAIL'}"
            )
        if not args.no_save:
            from results import save

            save(_name(results), rows(results))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
