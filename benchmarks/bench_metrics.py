"""Benchmark: vectorized set-level features vs the per-note Python loop definitions, same pieces.

The pieces are the real fixture MIDI files, transposed, time-stretched and thinned (a random
subset of notes kept) into a few thousand distinct pieces. Both implementations run in the same
process on the same pieces; the script checks they agree, then prints pieces/s and the ratio, and
the time of the set statistics (distances, KDE, KLD, OA) on two halves of the corpus.

    python benchmarks/bench_metrics.py [--pieces 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from musicdata.metrics.features import FEATURES, Notes, extract_features, notes_from_midi
from musicdata.metrics.sets import evaluate_sets
from musicdata.testing.loops import piece_features_loop

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "midi"


def base_pieces() -> list[Notes]:
    out = []
    for path in sorted(FIXTURES.glob("*.mid")):
        try:
            notes = notes_from_midi(path.read_bytes())
        except RuntimeError:  # the deliberately broken fixtures
            continue
        if len(notes):
            out.append(notes)
    return out


def build_pieces(n: int, seed: int) -> list[Notes]:
    """Distinct variants of the real pieces: transposition, tempo stretch, note thinning."""
    rng = np.random.default_rng(seed)
    base = base_pieces()
    pieces = []
    for i in range(n):
        src = base[i % len(base)]
        keep = rng.random(len(src)) < rng.uniform(0.6, 1.0)
        stretch = rng.uniform(0.5, 2.0)
        shift = int(rng.integers(-12, 13))
        pitch = np.clip(src.pitch[keep] + shift, 0, 127)
        pieces.append(
            Notes.from_arrays(
                src.onset[keep] * stretch, src.offset[keep] * stretch, pitch, src.beats[keep]
            )
        )
    return pieces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    pieces = build_pieces(args.pieces, args.seed)
    notes = sum(len(p) for p in pieces)
    print(f"{len(pieces)} pieces, {notes} notes, {len(FEATURES)} features per piece")

    extract_features(pieces[:10])  # warm-up (imports, allocator)
    t0 = time.perf_counter()
    vec = extract_features(pieces)
    t_vec = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop = [piece_features_loop(p) for p in pieces]
    t_loop = time.perf_counter() - t0

    for k in FEATURES:
        want = np.stack([np.asarray(f[k], dtype=np.float64) for f in loop])
        np.testing.assert_allclose(vec[k], want, atol=1e-9, err_msg=k)
    print("check: vectorized == per-note loops on every feature of every piece")

    half = len(pieces) // 2
    ref = {k: v[:half] for k, v in vec.items()}
    gen = {k: v[half:] for k, v in vec.items()}
    t0 = time.perf_counter()
    res = evaluate_sets(ref, gen)
    t_sets = time.perf_counter() - t0
    n_dist = half * (half - 1) + half * (len(pieces) - half)

    print(f"per-note loops : {t_loop:8.3f} s  {len(pieces) / t_loop:10.0f} pieces/s")
    print(f"vectorized     : {t_vec:8.3f} s  {len(pieces) / t_vec:10.0f} pieces/s")
    print(
        f"features/s     : loops {len(pieces) * len(FEATURES) / t_loop:.0f}, "
        f"vectorized {len(pieces) * len(FEATURES) / t_vec:.0f}"
    )
    print(f"speed-up       : {t_loop / t_vec:.1f}x")
    print(
        f"set statistics : {t_sets:.2f} s for {len(FEATURES)} features "
        f"({half} ref vs {len(pieces) - half} gen, {n_dist} distances per feature); "
        f"pch OA {res['pch']['oa']:.3f}, KLD {res['pch']['kld']:.4f}"
    )


if __name__ == "__main__":
    main()
