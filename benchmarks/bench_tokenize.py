"""Benchmark: `musicdata tokenize --encoding remi` vs the library call vs a plain MidiTok loop.

All measured in the same run on the same corpus (real demo scores plus transposed copies, so every
file is distinct music). The CLI calls the stage directly, so CLI / library is its fixed overhead
(process start, imports; target <= 1.2x on the 40 demo files: `--copies 1`). `--prefect-server`
also starts a local Prefect server and times the same command tracked through its flow.
Prints wall times and ratios; no thresholds, no timed tests.

    python benchmarks/bench_tokenize.py [--copies 10] [--prefect-server]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def build_corpus(dest: Path, copies: int) -> list[Path]:
    import symusic

    from musicdata.demo import build_demo_corpus

    base = build_demo_corpus(dest.parent / "base", broken=False)
    shifts = [s for s in range(-(copies // 2), copies - copies // 2 + 1) if s != 0][:copies]
    out = []
    for shift in shifts:  # transpositions: distinct music (no near duplicates), real pieces
        folder = dest / f"shift{shift:+d}"
        folder.mkdir(parents=True, exist_ok=True)
        for src in base:
            target = folder / src.name
            if not target.exists():
                score = symusic.Score.from_midi(src.read_bytes())
                score.shift_pitch(shift, inplace=True)
                score.dump_midi(str(target))
            out.append(target)
    return out


def plain_loop(files: list[Path]) -> tuple[float, int]:
    """What a researcher writes by hand: one process, the same REMI config, encode each file."""
    import symusic

    from musicdata.encodings import get_encoding

    tok = get_encoding("remi").tokenizer  # identical parameters to the pipeline's
    t0 = time.perf_counter()
    n_tokens = 0
    for f in files:
        n_tokens += len(tok.encode(symusic.Score.from_midi(f.read_bytes())).ids)
    return time.perf_counter() - t0, n_tokens


LIBRARY_SCRIPT = """
import json, sys
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.workspace import Workspace
if __name__ == "__main__":
    s = tokenize_encoding(Workspace.open(sys.argv[1]), "remi", run_id="bench-library")
    print(json.dumps(s.to_dict(), default=str))
"""


def library(home: Path) -> tuple[float, dict]:
    """The tokenize stage called from a fresh Python process, as a user's script would (imports
    included, no CLI): what the CLI's own overhead is measured against."""
    script = home.parent / "library_call.py"
    script.write_text(LIBRARY_SCRIPT)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(script), str(home)], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - t0, json.loads(out.stdout.strip().splitlines()[-1])


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, dict]:
    exe = Path(sys.executable).parent / "musicdata"
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(exe), "--home", str(home), *args, "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return time.perf_counter() - t0, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="transposed copies of the demo corpus")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--prefect-server", action="store_true", help="also time it tracked")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="musicdata-bench-"))
    files = build_corpus(work / "corpus", args.copies)
    home = work / "home"
    t_ingest, ing = cli(home, "ingest", str(work / "corpus"))
    lib_home, srv_home = work / "home-library", work / "home-server"
    for other in (lib_home, srv_home):  # the same ingested catalog, tokenized another way
        shutil.rmtree(other, ignore_errors=True)
        shutil.copytree(home, other)
    t_plain, plain_tokens = plain_loop(files)
    t_lib, lib = library(lib_home)
    t_cli, tok = cli(home, "tokenize", "--encoding", "remi")
    (remi,) = tok["encodings"]
    t_rerun, again = cli(home, "tokenize", "--encoding", "remi")
    n = remi["tokenized"]
    print(f"corpus: {len(files)} files ({ing['ok']} pieces ok) in {work}; cores: {os.cpu_count()}")
    print(f"ingest (CLI):                           {t_ingest:7.2f} s")
    print(
        f"plain loop, MidiTok REMI encode:        {t_plain:7.2f} s  "
        f"({len(files) / t_plain:6.1f} files/s, {plain_tokens} tokens)"
    )
    print(
        f"musicdata tokenize --encoding remi:     {t_cli:7.2f} s  ({n / t_cli:6.1f} files/s,"
        f" {remi['tokens']} tokens, {remi['shards_written']} shards)"
    )
    print(f"  ratio CLI / plain loop:               {t_cli / t_plain:7.2f}x  (lower is better)")
    print(f"  ratio CLI / library (fixed overhead): {t_cli / t_lib:7.2f}x  (target <= 1.2x)")
    print(f"tokenize_encoding() in a fresh process: {t_lib:7.2f} s  ({n / t_lib:6.1f} files/s)")
    print(f"  ratio library / plain loop:           {t_lib / t_plain:7.2f}x")
    print(
        f"rerun (nothing to do):                  {t_rerun:7.2f} s  "
        f"(tokenized {again['encodings'][0]['tokenized']})"
    )
    rows = [
        {
            "what": f"`tokenize --encoding remi` CLI vs the library call ({len(files)} files)",
            "figure": f"**{t_cli / t_lib:.2f}x** ({t_cli:.1f} s vs {t_lib:.1f} s)",
            "target": "<= 1.2x",
        },
        {
            "what": "REMI stage in a fresh process (imports, isolated workers, catalog) vs a plain "
            "in-process MidiTok loop",
            "figure": f"**{t_lib / t_plain:.2f}x** ({t_lib:.1f} s vs {t_plain:.1f} s)",
            "target": "—",
        },
    ]
    if args.prefect_server:
        with prefect_server(work) as env:
            t_srv, srv = cli(srv_home, "tokenize", "--encoding", "remi", env=env)
        print(f"tracked through a Prefect server:       {t_srv:7.2f} s")
        print(f"  ratio tracked CLI / library:          {t_srv / t_lib:7.2f}x")
        assert srv["encodings"][0]["tokens"] == remi["tokens"]
        rows.append(
            {
                "what": "the same CLI tracked through a Prefect server (PREFECT_API_URL set)",
                "figure": f"**{t_srv / t_lib:.2f}x** the library call ({t_srv:.1f} s)",
                "target": "—",
            }
        )
    assert remi["tokens"] == plain_tokens == lib["tokens"], "all three must give the same tokens"
    from results import save

    save("tokenize_cli", rows)


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[dict[str, str]]:
    """A local Prefect server (SQLite) for the run; yields the environment that points at it."""
    port = 4213
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    exe = Path(sys.executable).parent / "prefect"
    proc = subprocess.Popen(
        [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2)  # noqa: S310
                break
            except OSError:
                time.sleep(1)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
