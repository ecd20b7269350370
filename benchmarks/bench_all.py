"""`make bench`: run every benchmark at a quick size (minutes) or `--long`, then print ONE table
(figure, target, pass/fail per row) and regenerate README.md's block from it.

Each benchmark measures its ratio side by side in one run of its own (the pipeline and its raw
loop on the same files, one after the other) and saves its rows in benchmarks/results/<name>.json
(benchmarks/results.py); the table is rendered from those files (benchmarks/table.py). A
benchmark that crashes gets a failing row naming the error; the others still run. Each
benchmark's process is measured (wall time, peak RSS of its process tree), which gives the
"peak memory of each stage" rows.

    python benchmarks/bench_all.py [--long] [--only e2e,nmt,...] [--skip scale,...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import Measured, bench_env, run_measured
from results import merge, save

HERE = Path(__file__).resolve().parent

PY = sys.executable
MEMORY: list[dict[str, Any]] = []  # peak-memory rows gathered while the benchmarks run


def _script(name: str, *args: str) -> list[str]:
    return [PY, str(HERE / name), *args]


def _run(cmd: list[str], stage: str | None = None) -> Measured:
    """Run one benchmark script; remember its peak memory as `stage`'s when it names one."""
    m = run_measured(cmd, env=bench_env(OMP_NUM_THREADS="1"), cwd=HERE.parent)
    if stage:
        MEMORY.append(
            {
                "what": f"peak RSS, {stage} (its whole benchmark process)",
                "figure": f"**{m.peak_tree_mb:,.0f} MB** (process tree; {m.wall_s:.0f} s)",
                "target": "—",
                "pass": None,
            }
        )
    return m


def _json_tail(text: str) -> dict[str, Any]:
    """The last top-level JSON object a script printed (scripts print text before it)."""
    starts = [m.start() for m in re.finditer(r"^\{", text, flags=re.M)]
    for start in reversed(starts):
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    msg = f"no JSON object at the end of the output:\n{text[-2000:]}"
    raise ValueError(msg)


def end_to_end(long: bool) -> None:
    """ingest + tokenize nb-pf, library and CLI, incremental rerun (bench_end_to_end.py)."""
    for files in [1000, 10000] if long else [1000]:
        _run(_script("bench_end_to_end.py", "--files", str(files)))


def end_to_end_pop(long: bool) -> None:
    """The same with the `pop` NB preset: the official NMT preprocessing's settings, the ones
    behind the reference's 14 files/s (bench_end_to_end.py --preset pop)."""
    del long
    _run(_script("bench_end_to_end.py", "--files", "1000", "--preset", "pop"))


def fidelity(long: bool) -> None:
    """Strict round-trip fidelity of every encoding: the demo corpus, and real scores and
    simulated performances as written and normalized (bench_fidelity.py)."""
    del long
    _run(_script("bench_fidelity.py", "--workers", "2", "--demo", "--save", "fidelity_demo"))
    _run(_script("bench_fidelity.py", "--workers", "2", "--save", "fidelity_real"))
    norm = ["--normalize", "--save", "fidelity_real_normalized"]
    _run(_script("bench_fidelity.py", "--workers", "2", *norm))


def tokenize_vs_raw(long: bool) -> None:
    """The tokenize stage with 1 and 2 workers vs a raw loop of the same tokenizer
    (bench_encodings.py; fidelity off, as the raw loop does none)."""
    copies = "4" if long else "2"
    args = ["--copies", copies, "--encodings", "remi", "nb-pf", "--json"]
    r = _json_tail(
        _run(_script("bench_encodings.py", *args), "tokenize remi + nb-pf, 1 and 2 workers").stdout
    )
    rows = []
    for e in r["encodings"]:
        raw, one, two = e["raw_ms_per_file"], e["stage_1w_ms_per_file"], e["stage_2w_ms_per_file"]
        rows.append(
            {
                "what": f"tokenize stage vs raw MidiTok loop, `{e['encoding']}`, {r['files']} "
                "files (stage all in: workers, shards, catalog)",
                "figure": f"**{one / raw:.2f}x** with 1 worker, {two / raw:.2f}x with 2 "
                f"({raw:.1f} / {one:.1f} / {two:.1f} ms per file)",
                "target": "—",
                "pass": None,
            }
        )
    speed = r["all_speedup_2_vs_1"]
    rows.append(
        {
            "what": f"tokenize remi + nb-pf (with fidelity), 2 workers vs 1, {r['files']} files",
            "figure": f"**{speed:.2f}x** ({r['all_1_worker_s']:.1f} s vs "
            f"{r['all_2_workers_s']:.1f} s)",
            "target": ">= 1.7x",
            "pass": speed >= 1.7,
        }
    )
    save("tokenize_vs_raw", rows, command=f"python benchmarks/bench_encodings.py {' '.join(args)}")


def transcribe_vs_raw(long: bool) -> None:
    """The transcribe stage vs a raw basic-pitch predict() loop (bench_transcribe.py)."""
    args = ["--demo", "10" if long else "0"]
    r = _json_tail(_run(_script("bench_transcribe.py", *args), "transcribe (basic-pitch)").stdout)
    ratio = 1 / r["all_in_ratio: (raw import+load+loop) / pipeline stage"]
    stage_s = r["pipeline_transcribe_stage_s (all in: workers, TF import, model, catalog)"]
    raw_s = r["raw_import_and_model_load_s"] + r["raw_predict_loop_s"]
    save(
        "transcribe_vs_raw",
        [
            {
                "what": f"transcribe stage vs raw basic-pitch loop, {r['files']} files "
                f"({r['audio_s']} s of audio), both all in (imports, model load)",
                "figure": f"**{ratio:.2f}x** ({stage_s:.1f} s vs {raw_s:.1f} s; note F1 "
                f"{r['mean_f1_pipeline']} vs {r['mean_f1_raw_predict']})",
                "target": "<= 1.2x",
                "pass": ratio <= 1.2,
            }
        ],
        command=f"python benchmarks/bench_transcribe.py {' '.join(args)}",
    )


def codec_vs_raw(long: bool) -> None:
    """EnCodec through the codec stage vs a raw model.encode loop (bench_codec.py)."""
    args = ["--demo", "4" if long else "0"]
    r = _json_tail(_run(_script("bench_codec.py", *args), "EnCodec codec (32 kHz)").stdout)
    ratio = 1 / r["all_in_ratio: (raw setup+loop) / pipeline"]
    save(
        "codec_vs_raw",
        [
            {
                "what": f"EnCodec stage vs raw encode loop, {r['files']} files ({r['audio_s']} s "
                f"of audio, {'trained' if r['trained_weights'] else 'untrained'} weights), "
                "both all in",
                "figure": f"**{ratio:.2f}x** "
                f"({r['pipeline_stage_s (all in: worker, import, model, shards, catalog)']:.1f} "
                f"s vs {r['raw_setup_s (import + model)'] + r['raw_encode_loop_s']:.1f} s)",
                "target": "<= 1.2x",
                "pass": ratio <= 1.2,
            }
        ],
        command=f"python benchmarks/bench_codec.py {' '.join(args)}",
    )


def stats_views(long: bool) -> None:
    """The token-statistics views vs the same hand-written DuckDB query (bench_stats_views.py's
    corpus and query pairs, timed here so the worst ratio becomes a row)."""
    import shutil
    import statistics

    import duckdb
    from bench_stats_views import _same, build, queries, timed

    pieces, repeat = (100_000, 5) if long else (20_000, 3)
    root = Path(tempfile.mkdtemp(prefix="bench-stats-"))
    try:
        _, globs = build(root, pieces)
        con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        worst, which = 0.0, ""
        for what, view_sql, raw_sql in queries(globs):
            _, a = timed(con, view_sql)
            _, b = timed(con, raw_sql)
            assert _same(a, b), f"{what}: view and raw query disagree"
            tv = [timed(con, view_sql)[0] for _ in range(repeat)]
            tr = [timed(con, raw_sql)[0] for _ in range(repeat)]
            ratio = statistics.median(tv) / statistics.median(tr)
            if ratio > worst:
                worst, which = ratio, what
        con.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    save(
        "stats_views",
        [
            {
                "what": f"token-stats views vs raw DuckDB read_parquet query, {pieces:,} pieces "
                "(worst of 5 query pairs)",
                "figure": f"**{worst:.2f}x** ({which})",
                "target": "<= 1.2x",
                "pass": worst <= 1.2,
            }
        ],
        command=f"python benchmarks/bench_stats_views.py --pieces {pieces} --repeat {repeat}",
    )


def orchestration(long: bool) -> None:
    """Prefect overhead on 10k pieces (bench_orchestration.py saves its own rows)."""
    _run(_script("bench_orchestration.py", "--n", "10000", "--repeat", "2" if long else "1"))


def dask(long: bool) -> None:
    """Dask fan-out, 1 vs 2 local workers (bench_dask.py saves its own rows)."""
    _run(_script("bench_dask.py", *(["--copies", "4"] if long else [])))


def nmt(long: bool) -> None:
    """NMT on NB-PF vs the flat decoder on REMI, training s/iteration (bench_nmt.py saves)."""
    args = ["--all", "--steps", "6", "--warmup", "1"] if long else ["--steps", "3", "--warmup", "1"]
    _run(_script("bench_nmt.py", *args), "training (NMT and flat, small preset, CPU)")


def perceivers(long: bool) -> None:
    """PerceiverS vs full attention, training step at 16k (bench_perceivers.py saves)."""
    del long  # the shorter contexts cost a third of the 16k pair: always the whole curve
    args = ["--scaling", "2048,4096,8192,16384", "--threads", "1", "--train-steps", "1"]
    _run(_script("bench_perceivers.py", *args), "PerceiverS vs full attention at 16k tokens")


def scale(long: bool) -> None:
    """Bounded memory at two corpus sizes (bench_scale.py saves); long mode only by default."""
    quick = ["--pieces", "1000,5000", "--rows-per-shard", "250"]  # the plateau, in minutes
    _run(_script("bench_scale.py", *(["--pieces", "10000,100000"] if long else quick)))


BENCHES: dict[str, Callable[[bool], None]] = {
    "e2e": end_to_end,
    "e2e-pop": end_to_end_pop,
    "fidelity": fidelity,
    "tokenize": tokenize_vs_raw,
    "transcribe": transcribe_vs_raw,
    "codec": codec_vs_raw,
    "views": stats_views,
    "orchestration": orchestration,
    "dask": dask,
    "nmt": nmt,
    "perceivers": perceivers,
    "scale": scale,
}
QUICK_SKIP = {"scale"}  # hours at any size that shows a bound; `--long` or `--only scale`


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="the issue's full sizes (hours)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's table")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a row fails its target")
    args = ap.parse_args()
    only = [b for b in args.only.split(",") if b]
    skip = {b for b in args.skip.split(",") if b} | (set() if args.long or only else QUICK_SKIP)
    unknown = (set(only) | skip) - set(BENCHES)
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(BENCHES)}")
    for name, bench in BENCHES.items():
        if (only and name not in only) or name in skip:
            continue
        t0 = time.perf_counter()
        print(f"== {name}: {bench.__doc__.splitlines()[0]}", flush=True)
        try:
            bench(args.long)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
            detail = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)
            print(f"   FAILED: {detail}", flush=True)
            save(
                f"failed_{name}",
                [
                    {
                        "what": f"benchmark `{name}` did not run",
                        "figure": detail,
                        "target": "runs",
                        "pass": False,
                    }
                ],
                command=f"python benchmarks/bench_all.py --only {name}",
            )
        else:
            (HERE / "results" / f"failed_{name}.json").unlink(missing_ok=True)
        print(f"   {time.perf_counter() - t0:.0f} s", flush=True)
    if MEMORY:
        _save_memory(args.long)
    import table

    print()
    print(table.render())
    passed, failed, info = table.summary()
    print(f"\n{passed} passed, {failed} failed, {info} without a target")
    if not args.no_readme:
        table.write_readme()
        print("README.md's benchmark table regenerated (python benchmarks/table.py)")
    return 1 if failed and args.strict else 0


def _save_memory(long: bool) -> None:
    """Merge this run's peak-memory rows into the saved ones (a partial run keeps the others)."""
    merge("peak_memory", MEMORY, "python benchmarks/bench_all.py" + (" --long" * long))


if __name__ == "__main__":
    sys.exit(main())
