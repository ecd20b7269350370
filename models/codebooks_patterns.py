"""Codebook interleaving patterns for multi-codebook audio tokens (MusicGen, Copet et al. 2023).

An EnCodec recording is K parallel code streams [K, T]. A language model predicts one sequence
step at a time, so the K streams are laid out on a step axis S with a pattern:

    parallel      S = T            step s holds (t=s, every q)
    delay         S = T + max(d)   codebook q is shifted right by d[q] (MusicGen: d = [0, 1, 2, 3])
    flatten       S = T * K        step t*K + q holds (t, q) only
    coarse_first  S = 2 * T        steps 0..T-1 hold codebook 0, steps T..2T-1 the others (t, q>0)

In every pattern row q of the [K, S] layout only ever holds codebook q, so a pattern is one index
table `time_index[K, S]` (t, or -1 where the step holds the special token). `build` lays codes out
(special token + validity mask), `revert` and `revert_logits` bring sequences and logits back to
[K, T]. Pure numpy/torch: works on either, imports nothing from the data pipeline.

Reference: audiocraft `modules/codebooks_patterns.py` (Pattern/PatternProvider). Differences: the
layout is one dense table rather than lists of coordinates, and no leading empty step is added
(a model that needs a start token prepends it itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PATTERNS = ("parallel", "delay", "flatten", "coarse_first")
MUSICGEN_DELAYS = (0, 1, 2, 3)


@dataclass(frozen=True)
class Pattern:
    """A reversible layout of [K, T] codes on K rows x S steps."""

    name: str
    n_q: int  # K
    timesteps: int  # T
    time_index: np.ndarray  # [K, S] int64: the frame t held at (q, s), -1 = special token

    def __post_init__(self) -> None:
        ti = self.time_index
        assert ti.ndim == 2 and ti.shape[0] == self.n_q, f"time_index {ti.shape} vs K={self.n_q}"
        for q in range(self.n_q):
            held = np.sort(ti[q][ti[q] >= 0])
            assert np.array_equal(held, np.arange(self.timesteps)), (
                f"pattern {self.name}: row {q} must hold each of the {self.timesteps} frames once"
            )

    @property
    def sequence_steps(self) -> int:
        """S, the length of the laid-out sequence."""
        return int(self.time_index.shape[1])

    @property
    def valid_mask(self) -> np.ndarray:
        """[K, S] bool: True where the step holds a real code (False: the special token)."""
        return self.time_index >= 0

    @property
    def step_index(self) -> np.ndarray:
        """[K, T] int64: the step s at which (q, t) sits (the inverse of time_index)."""
        out = np.empty((self.n_q, self.timesteps), np.int64)
        q, s = np.nonzero(self.time_index >= 0)
        out[q, self.time_index[q, s]] = s
        return out

    def build(self, codes: Any, special_token: int) -> tuple[Any, Any]:
        """codes [..., K, T] -> (sequence [..., K, S], valid mask [K, S]); numpy or torch."""
        _check(codes, self.n_q, self.timesteps, "codes")
        rows = np.arange(self.n_q)[:, None]
        cols = np.maximum(self.time_index, 0)
        seq = _take(codes, rows, cols)
        mask = _like(codes, self.valid_mask)
        return _where(mask, seq, special_token), mask

    def revert(self, sequence: Any) -> Any:
        """sequence [..., K, S] -> codes [..., K, T] (special tokens dropped)."""
        _check(sequence, self.n_q, self.sequence_steps, "sequence")
        return _take(sequence, np.arange(self.n_q)[:, None], self.step_index)

    def revert_logits(self, logits: Any) -> Any:
        """logits [B, card, K, S] -> [B, card, K, T]: the prediction made for each (q, t)."""
        _check(logits, self.n_q, self.sequence_steps, "logits")
        return _take(logits, np.arange(self.n_q)[:, None], self.step_index)


def build_pattern(name: str, n_q: int, timesteps: int, delays: tuple[int, ...] | None = None):
    """The pattern `name` for K = n_q codebooks and T = timesteps frames."""
    k, t = n_q, timesteps
    if name == "parallel":
        ti = np.tile(np.arange(t), (k, 1))
    elif name == "delay":
        d = np.asarray(delays if delays is not None else range(k), np.int64)
        if len(d) != k or (d < 0).any():
            msg = f"delay pattern needs {k} non-negative delays, got {list(d)}"
            raise ValueError(msg)
        s = np.arange(t + int(d.max()))
        ti = s[None, :] - d[:, None]
        ti = np.where((ti >= 0) & (ti < t), ti, -1)
    elif name == "flatten":
        ti = np.full((k, t * k), -1, np.int64)
        for q in range(k):
            ti[q, q::k] = np.arange(t)
    elif name == "coarse_first":
        ti = np.full((k, 2 * t), -1, np.int64)
        ti[0, :t] = np.arange(t)
        ti[1:, t:] = np.arange(t)
    else:
        msg = f"unknown codebook pattern {name!r}; known: {', '.join(PATTERNS)}"
        raise ValueError(msg)
    return Pattern(name, k, t, np.ascontiguousarray(ti, dtype=np.int64))


# ---- numpy / torch without importing torch unless the caller uses it ------------------------


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _check(x: Any, k: int, n: int, what: str) -> None:
    shape = tuple(x.shape)
    assert len(shape) >= 2 and shape[-2:] == (k, n), (
        f"{what} shape {shape}, expected [..., {k}, {n}]"
    )


def _take(x: Any, rows: np.ndarray, cols: np.ndarray) -> Any:
    rows, cols = np.broadcast_arrays(rows, cols)
    if _is_torch(x):
        import torch

        r = torch.as_tensor(rows, device=x.device)
        c = torch.as_tensor(cols, device=x.device)
        return x[..., r, c]
    return np.asarray(x)[..., rows, cols]


def _like(x: Any, mask: np.ndarray) -> Any:
    if _is_torch(x):
        import torch

        return torch.as_tensor(mask, device=x.device)
    return mask


def _where(mask: Any, seq: Any, special: int) -> Any:
    if _is_torch(seq):
        import torch

        return torch.where(mask, seq, torch.full_like(seq, special))
    return np.where(mask, seq, np.asarray(special, dtype=seq.dtype))
