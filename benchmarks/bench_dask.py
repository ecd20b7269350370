"""Benchmark: the Dask fan-out of ingest + tokenize, 1 vs 2 local Dask workers, same inputs.

Real-derived pieces (the demo's public-domain scores plus transposed copies, as bench_tokenize).
Each configuration gets a fresh workspace and runs the `ingest` then `tokenize` flows; only
`[orchestration]` differs. Every batch runs in an isolated pool of ONE process on its Dask
worker (`workers = 1`), so the number of Dask workers is the parallelism being measured. The
single-process run (no Dask, one isolated worker) is the reference for the shard bytes. A
Prefect flow run first starts the ephemeral server, so no configuration pays for it.

    python benchmarks/bench_dask.py [--copies 2] [--encodings remi nb-pf]

Prints the wall times and saves benchmarks/results/dask_fanout.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TOML = """
[ingest]
workers = 1
batch_size = {batch}
[tokenize]
workers = 1
batch_size = {batch}
"""
DASK = '[orchestration]\ntask_runner = "dask"\ndask_workers = {n}\n'


def shard_bytes(home: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(home)): p.read_bytes() for p in sorted(home.glob("shards/**/*.parquet"))
    }


def run(home: Path, toml: str, corpus: Path, encodings: list[str]) -> tuple[float, dict]:
    from musicdata.flows.ingest_tokenize import ingest_flow, tokenize_flow

    home.mkdir(parents=True)
    (home / "musicdata.toml").write_text(toml)
    t0 = time.perf_counter()
    ingested = ingest_flow([str(corpus)], home=str(home))
    tokenize_flow(encodings, home=str(home))
    return time.perf_counter() - t0, ingested


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2, help="transposed copies of the demo scores")
    ap.add_argument("--encodings", nargs="+", default=["remi", "nb-pf"])
    ap.add_argument("--batch", type=int, default=8, help="pieces per batch (per Prefect task)")
    ap.add_argument(
        "--demo-cache",
        default="musicdata-home/demo-corpus",
        help="a folder of already converted demo MIDI files (`musicdata demo` leaves one)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="runs per configuration (best kept)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A busy machine starts the ephemeral server slowly (the default wait is 20 s).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

    from bench_tokenize import build_corpus
    from results import save

    from musicdata.flows.ingest_tokenize import tokenize_flow

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        base = Path(tmp)
        if args.demo_cache and Path(args.demo_cache).is_dir():  # skip music21's slow conversion
            shutil.copytree(args.demo_cache, base / "base")
        files = build_corpus(base / "corpus", args.copies)
        print(f"{len(files)} real-derived MIDI files, encodings {args.encodings}", flush=True)
        tokenize_flow([], home=str(base / "warm-up"))  # starts the ephemeral Prefect server
        toml = TOML.format(batch=args.batch)
        times: dict[str, float] = {}
        shards: dict[str, dict[str, bytes]] = {}
        configs = [
            ("single process", ""),
            ("dask, 1 worker", DASK.format(n=1)),
            ("dask, 2 workers", DASK.format(n=2)),
        ]
        for rep in range(args.repeat):  # interleaved, best of: the machine is shared
            for label, extra in configs:
                home = base / f"{label.replace(' ', '-').replace(',', '')}-{rep}"
                seconds, ingested = run(home, toml + extra, base / "corpus", args.encodings)
                times[label] = min(seconds, times.get(label, seconds))
                shards[f"{label} {rep}"] = shard_bytes(home)
                print(f"{label:>16}: {seconds:6.1f} s  ({ingested['ok']} pieces)", flush=True)

    reference = shards["single process 0"]
    same = all(s == reference for s in shards.values()) and bool(reference)
    speedup = times["dask, 1 worker"] / times["dask, 2 workers"]
    cores = len(os.sched_getaffinity(0))
    print(f"speed-up 2 vs 1 Dask workers: {speedup:.2f}x on {cores} cores; identical: {same}")
    if args.no_save:
        return
    what = (
        f"{len(files)} real-derived pieces, ingest + tokenize ({', '.join(args.encodings)}), "
        f"best of {args.repeat}"
    )
    save(
        "dask_fanout",
        [
            {
                "what": f"Dask fan-out, 2 vs 1 local workers: {what}",
                "figure": (
                    f"**{speedup:.2f}x** (1 worker {times['dask, 1 worker']:.1f} s, 2 workers "
                    f"{times['dask, 2 workers']:.1f} s, no Dask {times['single process']:.1f} s; "
                    f"{cores} shared cores)"
                ),
                "target": "— (2 cores shared with the flow process: <= 2x at best)",
            },
            {
                "what": "Dask fan-out: shards byte-identical to the single-process run",
                "figure": (
                    f"**{same}** ({len(reference)} shard files, {len(shards)} runs: no Dask, "
                    "1 and 2 workers)"
                ),
                "target": "held",
            },
        ],
    )


if __name__ == "__main__":
    main()
