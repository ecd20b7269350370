"""Benchmark every symbolic encoding: the tokenize stage vs a raw loop of the same tokenizer, NB vs
REMI per file, and `tokenize --all` with 2 workers vs 1. All measured in the same run on the same
files (real demo scores and transposed copies); prints times and ratios, asserts nothing.

    python benchmarks/bench_encodings.py [--copies 4] [--encodings remi nb-mf ...]
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
from bench_tokenize import build_corpus


def raw_loop(name: str, files: list[Path]) -> tuple[float, int]:
    """What a researcher writes by hand: one process, the same tokenizer and parameters."""
    import symusic

    from musicdata.encodings import get_encoding

    enc = get_encoding(name)
    encode = enc.tokenizer.encode if hasattr(enc, "tokenizer") else enc.encode
    encode(symusic.Score.from_midi(files[0].read_bytes()))  # build lazy tables outside the clock
    t0 = time.perf_counter()
    n = 0
    for f in files:
        out = encode(symusic.Score.from_midi(f.read_bytes()))
        n += len(out.ids if hasattr(out, "ids") else out)
    return time.perf_counter() - t0, n


def workspace(base: Path, dest: Path, *, workers: int, fidelity: bool):
    from musicdata.schemas.config import Config, TokenizeConfig
    from musicdata.workspace import Workspace

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest)
    cfg = Config(tokenize=TokenizeConfig(workers=workers, fidelity=fidelity))
    return Workspace(root=dest.resolve(), config=cfg)


def stage(ws, names: list[str]) -> tuple[float, list[dict]]:
    from musicdata.stages.tokenize import tokenize_encodings

    t0 = time.perf_counter()
    out = tokenize_encodings(ws, names, run_ids={n: f"bench:{n}" for n in names})
    return time.perf_counter() - t0, [s.to_dict() for s in out]


def main() -> None:
    from musicdata.encodings import REGISTRY
    from musicdata.stages.ingest import ingest_paths
    from musicdata.workspace import Workspace

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=4, help="transposed copies of the 40 scores")
    ap.add_argument("--encodings", nargs="*", default=sorted(REGISTRY))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-enc-"))
    try:
        files = build_corpus(work / "corpus", args.copies)
        base = work / "base"
        ingest_paths(Workspace.open(base), [work / "corpus"], run_id="bench-ingest")
        n = len(files)
        rows = []
        for name in args.encodings:
            t_raw, n_tok = raw_loop(name, files)
            t_stage1, _ = stage(workspace(base, work / "w1", workers=1, fidelity=False), [name])
            t_stage2, s2 = stage(workspace(base, work / "w2", workers=2, fidelity=False), [name])
            t_fid, _ = stage(workspace(base, work / "wf", workers=2, fidelity=True), [name])
            assert s2[0]["tokenized"] == n, s2
            rows.append(
                {
                    "encoding": name,
                    "tokens": n_tok,
                    "raw_ms_per_file": 1000 * t_raw / n,
                    "stage_1w_ms_per_file": 1000 * t_stage1 / n,
                    "stage_2w_ms_per_file": 1000 * t_stage2 / n,
                    "stage_2w_fidelity_ms_per_file": 1000 * t_fid / n,
                    "stage_1w_vs_raw": t_stage1 / t_raw,
                    "stage_2w_vs_raw": t_stage2 / t_raw,
                }
            )
        t_all1, _ = stage(workspace(base, work / "a1", workers=1, fidelity=True), args.encodings)
        t_all2, _ = stage(workspace(base, work / "a2", workers=2, fidelity=True), args.encodings)
        by = {r["encoding"]: r for r in rows}
        result = {
            "files": n,
            "encodings": rows,
            "all_1_worker_s": t_all1,
            "all_2_workers_s": t_all2,
            "all_speedup_2_vs_1": t_all1 / t_all2,
        }
        if "remi" in by and "nb-mf" in by:
            result["nb_mf_vs_remi_raw"] = (
                by["nb-mf"]["raw_ms_per_file"] / by["remi"]["raw_ms_per_file"]
            )
            result["nb_mf_vs_remi_stage"] = (
                by["nb-mf"]["stage_2w_ms_per_file"] / by["remi"]["stage_2w_ms_per_file"]
            )
        if args.json:
            print(json.dumps(result, indent=1))
            return
        print(f"{n} files (demo scores x {args.copies} transpositions), ms per file:")
        print(
            f"{'encoding':12} {'tokens':>9} {'raw loop':>9} {'stage 1w':>9} {'stage 2w':>9} "
            f"{'2w+fid':>9} {'1w/raw':>7} {'2w/raw':>7}"
        )
        for r in rows:
            print(
                f"{r['encoding']:12} {r['tokens']:9d} {r['raw_ms_per_file']:9.2f} "
                f"{r['stage_1w_ms_per_file']:9.2f} {r['stage_2w_ms_per_file']:9.2f} "
                f"{r['stage_2w_fidelity_ms_per_file']:9.2f} {r['stage_1w_vs_raw']:7.2f} "
                f"{r['stage_2w_vs_raw']:7.2f}"
            )
        if "nb_mf_vs_remi_raw" in result:
            print(
                f"NB (nb-mf) per file vs MidiTok REMI: raw loop {result['nb_mf_vs_remi_raw']:.2f}x,"
                f" stage {result['nb_mf_vs_remi_stage']:.2f}x (target <= 1.00x)"
            )
        print(
            f"tokenize all {len(args.encodings)} encodings (with fidelity): "
            f"1 worker {t_all1:.1f} s,"
            f" 2 workers {t_all2:.1f} s -> {t_all1 / t_all2:.2f}x (target >= 1.7x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
