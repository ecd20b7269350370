"""Where training windows are cut from pieces: the segmentation strategies of the papers.

A window is a row (piece, start, end) of an int64 array: the sample is tokens[start:end] of that
piece, at most W = max_len + 1 tokens long (the model shifts inside: inputs [:-1], targets [1:]).

- "stride" (Nested Music Transformer): windows walk over a piece from its start with a random
  stride of half to one input length (max_len); the last one may be short and is RIGHT-padded.
- "effective" (PerceiverS Effective Segmentation): a window ends at a random position in
  [query_len + 1, n] and reaches up to W tokens back, LEFT-padded, so the first tokens of a piece
  are also learned as the (last, causally masked) query positions.
- "random" (Perceiver AR baseline): random start, full window where the piece is long enough.

For "effective" and "random", a piece gives ceil((n - 1) / max_len) windows per epoch, about as
many as "stride", so strategies see the same amount of data per epoch. Every plan is a pure
function of (lengths, seed, epoch): a resumed run re-plans its epoch and skips what it had used.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "PAD_SIDE",
    "STRATEGIES",
    "eval_windows",
    "plan_windows",
    "shard_for_rank",
]

STRATEGIES = ("stride", "effective", "random")
PAD_SIDE = {"stride": "right", "effective": "left", "random": "right"}


def _as_array(rows: list[tuple[int, int, int]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def plan_windows(
    lengths: np.ndarray,
    strategy: str,
    max_len: int,
    *,
    seed: int,
    epoch: int,
    query_len: int | None = None,
    shuffle: bool = True,
) -> np.ndarray:
    """[N, 3] (piece, start, end) windows of one epoch, shuffled; pieces under 2 tokens skipped."""
    assert strategy in STRATEGIES, f"unknown segmentation {strategy!r}; one of {STRATEGIES}"
    assert max_len >= 1, f"max_len must be >= 1, got {max_len}"
    rng = np.random.default_rng([seed, epoch, STRATEGIES.index(strategy)])
    w = max_len + 1
    rows: list[tuple[int, int, int]] = []
    q = max_len if query_len is None else query_len
    assert 1 <= q <= max_len, f"query_len {q} must be in 1..max_len ({max_len})"
    for i, n in enumerate(np.asarray(lengths).tolist()):
        if n < 2:
            continue
        if strategy == "stride":
            start = 0
            while True:
                end = min(n, start + w)
                rows.append((i, start, end))
                if end >= n:
                    break
                start += int(rng.integers(max(1, max_len // 2), max_len + 1))
            continue
        count = max(1, math.ceil((n - 1) / max_len))
        for _ in range(count):
            if strategy == "effective":
                end = int(rng.integers(min(q + 1, n), n + 1))
                rows.append((i, max(0, end - w), end))
            else:
                start = int(rng.integers(0, max(0, n - w) + 1))
                rows.append((i, start, min(n, start + w)))
    out = _as_array(rows)
    if shuffle and len(out):
        out = out[rng.permutation(len(out))]
    return out


def eval_windows(
    lengths: np.ndarray, max_len: int, *, pad_side: str = "right", hop: int | None = None
) -> np.ndarray:
    """Deterministic windows that score every target token of a piece once.

    Right-padded models: tiles starting at 0, max_len, 2*max_len, ... (each W = max_len + 1 long,
    overlapping by the one token that is the next tile's first input). Left-padded models
    (Perceiver-style, scoring only their last `hop` = query_len positions): windows ending at
    n, n - hop, n - 2*hop, ... (>= 2), each reaching up to W tokens back; the first is short and
    left-padded, and its padded query positions are masked.
    """
    assert pad_side in ("left", "right"), f"pad_side must be left or right, got {pad_side!r}"
    w = max_len + 1
    rows: list[tuple[int, int, int]] = []
    for i, n in enumerate(np.asarray(lengths).tolist()):
        if n < 2:
            continue
        if pad_side == "right":
            for start in range(0, n - 1, max_len):
                rows.append((i, start, min(n, start + w)))
        else:
            step = max_len if hop is None else hop
            assert 1 <= step <= max_len, f"hop {step} must be in 1..max_len ({max_len})"
            for end in range(n, 1, -step)[::-1]:
                rows.append((i, max(0, end - w), end))
    return _as_array(rows)


def shard_for_rank(
    windows: np.ndarray, rank: int, world: int, *, drop_tail: bool = True
) -> np.ndarray:
    """The windows of one DDP rank: every world-th, from `rank` (DistributedSampler's order).

    drop_tail keeps the same count on every rank (training steps stay in lock-step); evaluation
    passes False so no window is lost.
    """
    assert 0 <= rank < world, f"rank {rank} outside world of {world}"
    if world == 1:
        return windows
    n = (len(windows) // world) * world if drop_tail else len(windows)
    return windows[rank:n:world]
