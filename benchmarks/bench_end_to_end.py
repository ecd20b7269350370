"""End to end: ingest + tokenize `nb-pf` on real-derived MIDI files (benchmarks/derived.py),
through the library and through the CLI, then an incremental rerun, all in one run.

- library: one fresh Python process calls `ingest_paths` then `tokenize_encoding` (a user's
  script; imports included);
- CLI: `musicdata ingest DIR` then `musicdata tokenize -e nb-pf`, two processes, no Prefect
  server (the local CLI calls the stages directly);
- incremental: the same two CLI commands again on the same files (nothing new), and again after
  1% new files are added; each against the first CLI run.

Every file is valid music, so "accepted" must be 100% (ingest ok and tokenized). Wall time, CPU
seconds of the process tree and peak RSS are measured per process (benchmarks/procs.py); the
machine's load average is printed, because another user's work on a shared machine slows wall
time but not CPU time. Targets (issue 18): >= 42 files/s at 1,000 files (3x the official NMT
preprocessing's 14 files/s), 100% accepted, CLI within 1.2x of the library, rerun <= 5%.

    python benchmarks/bench_end_to_end.py [--files 1000] [--preset pop] [--workdir DIR] [--no-save]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from derived import derive
from procs import Measured, bench_env, cli_cmd, library_cmd, run_measured

ENCODING = "nb-pf"
TARGET_FILES_PER_S = 42.0
TARGET_CLI_RATIO = 1.2
TARGET_RERUN = 0.05


def _last_json(m: Measured) -> dict[str, Any]:
    return json.loads(m.stdout.strip().splitlines()[-1])


def _cli_pair(home: Path, inputs: list[Path]) -> tuple[list[Measured], dict, dict]:
    env = bench_env()
    ing = run_measured(cli_cmd(home, "ingest", *map(str, inputs)), env=env)
    tok = run_measured(cli_cmd(home, "tokenize", "--encoding", ENCODING), env=env)
    (summary,) = _last_json(tok)["encodings"]
    return [ing, tok], _last_json(ing), summary


def measure(work: Path, files: int, preset: str = "") -> dict[str, Any]:
    """Run every measurement of this benchmark; returns the figures (no judging).

    `preset`: an NB preset written into both workspaces' musicdata.toml (`pop` has the official
    NMT preprocessing's 5 features, the settings behind the 14 files/s reference)."""
    corpus = work / "corpus" / "first"
    paths = list(derive(corpus, files))
    extra_n = max(1, files // 100)
    more = work / "corpus" / "more"
    all_new = list(derive(work / "corpus" / "pool", files + extra_n))[files:]
    shutil.rmtree(more, ignore_errors=True)
    more.mkdir(parents=True)
    for p in all_new:
        shutil.copy2(p, more / p.name)
    lib_home, cli_home = work / "home-library", work / "home-cli"
    for home in (lib_home, cli_home):
        shutil.rmtree(home, ignore_errors=True)
        if preset:
            home.mkdir(parents=True)
            (home / "musicdata.toml").write_text(f'[encodings.{ENCODING}]\npreset = "{preset}"\n')
    lib = run_measured(library_cmd(work, lib_home, ENCODING, "ingest,tokenize", [corpus]))
    lib_out = _last_json(lib)
    cli, cli_ing, cli_tok = _cli_pair(cli_home, [corpus])
    rerun, re_ing, re_tok = _cli_pair(cli_home, [corpus])
    incr, inc_ing, inc_tok = _cli_pair(cli_home, [corpus, more])
    return {
        "preset": preset,
        "files": len(paths),
        "new_files": len(all_new),
        "library": {
            "wall_s": lib.wall_s,
            "cpu_s": lib.cpu_s,
            "peak_mb": lib.peak_tree_mb,
            "load": lib.load,
            "ingest_s": lib_out["ingest_s"],
            "tokenize_s": lib_out["tokenize_s"],
            "ok": lib_out["ingest"]["ok"],
            "tokenized": lib_out["tokenize"]["tokenized"],
            "quarantined": lib_out["ingest"]["quarantined"] + lib_out["tokenize"]["quarantined"],
        },
        "cli": {
            "wall_s": sum(m.wall_s for m in cli),
            "cpu_s": sum(m.cpu_s for m in cli),
            "ingest_s": cli[0].wall_s,
            "tokenize_s": cli[1].wall_s,
            "ingest_peak_mb": cli[0].peak_tree_mb,
            "tokenize_peak_mb": cli[1].peak_tree_mb,
            "load": cli[1].load,
            "ok": cli_ing["ok"],
            "tokenized": cli_tok["tokenized"],
        },
        "rerun": {
            "wall_s": sum(m.wall_s for m in rerun),
            "ingest_skipped": re_ing["skipped"],
            "tokenized": re_tok["tokenized"],
        },
        "incremental": {
            "wall_s": sum(m.wall_s for m in incr),
            "ok": inc_ing["ok"],
            "tokenized": inc_tok["tokenized"],
        },
    }


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    n, lib, cli = r["files"], r["library"], r["cli"]
    lib_fps, cli_fps = n / lib["wall_s"], n / cli["wall_s"]
    cpu_fps = n / (lib["cpu_s"] / 2)  # what 2 otherwise idle cores would give
    accepted = min(lib["ok"], lib["tokenized"], cli["ok"], cli["tokenized"]) / n
    ratio = cli["wall_s"] / lib["wall_s"]
    rerun = r["rerun"]["wall_s"] / cli["wall_s"]
    incr = r["incremental"]["wall_s"] / cli["wall_s"]
    big = n >= TARGET_FILES_PER_S * 100  # the 10,000-file long mode has no target of its own
    preset = r.get("preset") or ""
    enc = f"{ENCODING}` (preset `{preset}`" if preset else f"{ENCODING}`"
    enc = f"{enc})" if preset else enc
    out = [
        {
            "what": f"end to end ingest + tokenize `{enc}, library, {n:,} real-derived "
            "files, 2 cores",
            "figure": f"**{lib_fps:.1f} files/s** ({lib['wall_s']:.1f} s: ingest "
            f"{lib['ingest_s']:.1f} s, tokenize {lib['tokenize_s']:.1f} s; "
            f"{cpu_fps:.0f} files/s by CPU time; load {lib['load']:.1f})",
            "target": "—" if big else f">= {TARGET_FILES_PER_S:.0f} files/s",
            "pass": None if big else lib_fps >= TARGET_FILES_PER_S,
        },
        {
            "what": f"end to end, CLI (`musicdata ingest` + `musicdata tokenize -e {ENCODING}`)"
            + (f", preset `{preset}`" if preset else ""),
            "figure": f"**{cli_fps:.1f} files/s** ({cli['wall_s']:.1f} s; load {cli['load']:.1f})",
            "target": "—" if big else f">= {TARGET_FILES_PER_S:.0f} files/s",
            "pass": None if big else cli_fps >= TARGET_FILES_PER_S,
        },
        {
            "what": f"valid files accepted (ingested and tokenized), library and CLI, {n:,} files",
            "figure": f"**{100 * accepted:.1f}%** ({lib['ok']:,} / {n:,})",
            "target": ">= 100%",
            "pass": accepted >= 1.0,
        },
        {
            "what": "end to end CLI vs library (same files, same run)",
            "figure": f"**{ratio:.2f}x** ({cli['wall_s']:.1f} s vs {lib['wall_s']:.1f} s)",
            "target": f"<= {TARGET_CLI_RATIO}x",
            "pass": ratio <= TARGET_CLI_RATIO,
        },
        {
            "what": f"incremental rerun (CLI ingest + tokenize, nothing new) vs first run, {n:,} "
            "files",
            "figure": f"**{100 * rerun:.1f}%** ({r['rerun']['wall_s']:.1f} s vs "
            f"{cli['wall_s']:.1f} s; tokenized {r['rerun']['tokenized']})",
            "target": f"<= {100 * TARGET_RERUN:.0f}%",
            "pass": rerun <= TARGET_RERUN,
        },
        {
            "what": f"incremental run after adding {r['new_files']} new files (1%) vs first run",
            "figure": f"**{100 * incr:.1f}%** ({r['incremental']['wall_s']:.1f} s; tokenized "
            f"{r['incremental']['tokenized']})",
            "target": "—",
            "pass": None,
        },
    ]
    # the preset run is a comparison with the reference's settings: speed rows only
    return out[:2] if preset else out


def memory_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Peak memory of the ingest and tokenize stages (the CLI run: driver + isolated workers)."""
    n = r["files"]
    return [
        {
            "what": f"peak RSS, {stage} stage (`musicdata {stage}`, {n:,} files, 2 workers)",
            "figure": f"**{r['cli'][f'{stage}_peak_mb']:,.0f} MB** (driver + isolated workers)",
            "target": "—",
            "pass": None,
        }
        for stage in ("ingest", "tokenize")
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the corpus and workspaces")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--from-json", type=Path, help="save the rows of an earlier run's JSON")
    ap.add_argument(
        "--preset", default="", help="NB preset for both workspaces (e.g. pop: 5 features)"
    )
    args = ap.parse_args()
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        args.files = result["files"]
    else:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="musicdata-e2e-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            result = measure(work, args.files, args.preset)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    for row in rows(result):
        ok = {True: "PASS", False: "FAIL", None: "-"}[row["pass"]]
        print(f"{ok:4}  {row['what']}: {row['figure']}  (target {row['target']})")
    if not args.no_save:
        from results import merge, save

        command = f"python benchmarks/bench_end_to_end.py --files {args.files}"
        if args.preset:
            command += f" --preset {args.preset}"
            save(f"end_to_end_{args.files}_{args.preset}", rows(result), command=command)
        else:
            save(f"end_to_end_{args.files}", rows(result), command=command)
            merge("peak_memory", memory_rows(result), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
