"""Benchmark: `musicdata tokenize --encoding remi` vs a plain loop of MidiTok encode, same files.

Both are measured in the same run on the same corpus (real demo scores plus transposed copies, so
every file is distinct music). Prints wall times and the ratios; no thresholds, no timed tests.

    python benchmarks/bench_tokenize.py [--copies 10] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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


def library(home: Path) -> tuple[float, dict]:
    """The tokenize stage called as a library (no Prefect): the stage's own cost."""
    from musicdata.stages.tokenize import tokenize_encoding
    from musicdata.workspace import Workspace

    t0 = time.perf_counter()
    summary = tokenize_encoding(Workspace.open(home), "remi", run_id="bench-library")
    return time.perf_counter() - t0, summary.to_dict()


def cli(home: Path, *args: str) -> tuple[float, dict]:
    exe = Path(sys.executable).parent / "musicdata"
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(exe), "--home", str(home), *args, "--json"], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - t0, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="transposed copies of the demo corpus")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="musicdata-bench-"))
    files = build_corpus(work / "corpus", args.copies)
    home = work / "home"
    t_ingest, ing = cli(home, "ingest", str(work / "corpus"))
    lib_home = work / "home-library"
    shutil.rmtree(lib_home, ignore_errors=True)
    shutil.copytree(home, lib_home)  # the same ingested catalog, tokenized a second way
    t_plain, plain_tokens = plain_loop(files)
    t_lib, lib = library(lib_home)
    t_cli, tok = cli(home, "tokenize", "--encoding", "remi")
    (remi,) = tok["encodings"]
    t_rerun, again = cli(home, "tokenize", "--encoding", "remi")
    n = remi["tokenized"]
    print(f"corpus: {len(files)} files ({ing['ok']} pieces ok) in {work}; cores: {os.cpu_count()}")
    print(f"ingest (CLI, Prefect flow):             {t_ingest:7.2f} s")
    print(
        f"plain loop, MidiTok REMI encode:        {t_plain:7.2f} s  "
        f"({len(files) / t_plain:6.1f} files/s, {plain_tokens} tokens)"
    )
    print(
        f"musicdata tokenize --encoding remi:     {t_cli:7.2f} s  ({n / t_cli:6.1f} files/s,"
        f" {remi['tokens']} tokens, {remi['shards_written']} shards)"
    )
    print(
        f"  ratio CLI / plain loop:               {t_cli / t_plain:7.2f}x  (lower is better;"
        " includes Prefect's ephemeral server start)"
    )
    print(f"tokenize_encoding() as a library:       {t_lib:7.2f} s  ({n / t_lib:6.1f} files/s)")
    print(f"  ratio library / plain loop:           {t_lib / t_plain:7.2f}x")
    print(
        f"rerun (nothing to do):                  {t_rerun:7.2f} s  "
        f"(tokenized {again['encodings'][0]['tokenized']})"
    )
    assert remi["tokens"] == plain_tokens == lib["tokens"], "all three must give the same tokens"


if __name__ == "__main__":
    main()
