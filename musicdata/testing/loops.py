"""The feature definitions written the straightforward way: one piece at a time, one note at a time.

This is the oracle the tests compare `features.extract_features` against and the baseline the
benchmark (`benchmarks/bench_metrics.py`) times. Keep it obviously correct, not fast.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from musicdata.metrics.features import NOTE_LENGTH_CLASSES, FeatureConfig, Notes

__all__ = ["piece_features_loop"]


def _nearest_class(beats: float) -> int:
    best, best_d = 0, math.inf
    for i, c in enumerate(NOTE_LENGTH_CLASSES):
        d = abs(beats - float(c))
        if d < best_d:
            best, best_d = i, d
    return best


def _normalised(x: np.ndarray) -> np.ndarray:
    s = x.sum()
    return x / s if s > 0 else x


def piece_features_loop(notes: Notes, config: FeatureConfig | None = None) -> dict:
    """Every feature of one piece, with Python loops over its notes."""
    config = config or FeatureConfig()
    n_s = config.n_segments
    on = [float(x) for x in notes.onset]
    off = [float(x) for x in notes.offset]
    pitch = [int(x) for x in notes.pitch]
    beats = [float(x) for x in notes.beats]
    n = len(pitch)
    f: dict = {}
    f["pc"] = float(len(set(pitch)))
    f["nc"] = float(n)
    f["pr"] = float(max(pitch) - min(pitch)) if n else 0.0
    pch = np.zeros(12)
    for i in range(n):
        pch[pitch[i] % 12] += off[i] - on[i]
    f["pch"] = _normalised(pch)

    diffs = [abs(pitch[i] - pitch[i - 1]) for i in range(1, n)]
    f["pi"] = sum(diffs) / len(diffs) if diffs else 0.0

    classes = [_nearest_class(b) for b in beats]
    nlh = np.zeros(12)
    for c in classes:
        nlh[c] += 1
    f["nlh"] = _normalised(nlh)
    nltm = np.zeros((12, 12))
    for i in range(1, n):
        nltm[classes[i - 1], classes[i]] += 1
    f["nltm"] = _normalised(nltm)

    pctm = np.zeros((12, 12))
    thresh = config.pctm_time_thresh_s
    for i in range(n):  # onsets are sorted: only look at those near this note's offset
        j = bisect.bisect_left(on, off[i] - thresh - 1e-6)
        while j < n and on[j] <= off[i] + thresh + 1e-6:
            if abs(off[i] - on[j]) < thresh:
                pctm[pitch[i] % 12, pitch[j] % 12] += 1
            j += 1
    f["pctm"] = _normalised(pctm)

    distinct = []
    for t in on:
        if not distinct or t != distinct[-1]:
            distinct.append(t)
    gaps = [distinct[i] - distinct[i - 1] for i in range(1, len(distinct))]
    f["ioi"] = sum(gaps) / len(gaps) if gaps else 0.0

    end = max(off) if n else 0.0
    seg_len = (end if end > 0 else 1.0) / n_s

    def seg_of(t: float) -> int:
        return min(math.floor(t / seg_len), n_s - 1)

    nc_seg = np.zeros(n_s)
    pitches_in: list[set[int]] = [set() for _ in range(n_s)]
    pch_seg = np.zeros((n_s, 12))
    for i in range(n):
        k0, k1 = seg_of(on[i]), seg_of(off[i])
        nc_seg[k0] += 1
        pitches_in[k0].add(pitch[i])
        for k in range(k0, k1 + 1):
            hi = off[i] if k == n_s - 1 else min(off[i], (k + 1) * seg_len)
            overlap = hi - max(on[i], k * seg_len)
            if overlap > 0:
                pch_seg[k, pitch[i] % 12] += overlap
    f["nc_seg"] = nc_seg
    f["pc_seg"] = np.array([float(len(s)) for s in pitches_in])
    f["pch_seg"] = np.stack([_normalised(row) for row in pch_seg])
    ioi_sum, ioi_n = np.zeros(n_s), np.zeros(n_s)
    for i in range(1, len(distinct)):
        k = seg_of(distinct[i])
        if seg_of(distinct[i - 1]) == k:
            ioi_sum[k] += distinct[i] - distinct[i - 1]
            ioi_n[k] += 1
    f["ioi_seg"] = np.divide(ioi_sum, ioi_n, out=np.zeros(n_s), where=ioi_n > 0)
    return f
