"""Windows -> the batch dict of the model contract, and pitch transposition of symbolic tokens.

Batch: `tokens` LongTensor [B, L] (flat) or [B, L, F] (compound/codec), `mask` BoolTensor [B, L]
(True = real token). L is the longest window of the batch (or `length`); padded positions hold
`pad_value` (the manifest's pad_id, 0 for codec shards) on the right or, for Perceiver-style
models whose queries are the last positions, on the left.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["PitchTransposer", "collate"]

_SPAN = 1 << 10  # pitch codes: family * _SPAN + pitch (MIDI pitches are 0..127)

# Pitched-note token families: MidiTok's "Pitch_60" and the performance encoding's note-on/off.
# PitchDrum_*, PitchIntervalTime_* and the like do not match, so drums and intervals stay.
PITCH_TOKEN = re.compile(r"^(Pitch|NOTE_ON|NOTE_OFF)_(-?\d+)$")
_FAMILIES = ("Pitch", "NOTE_ON", "NOTE_OFF")


def collate(
    samples: Sequence[np.ndarray],
    *,
    pad_value: int,
    pad_side: str = "right",
    length: int | None = None,
) -> dict[str, torch.Tensor]:
    """Stack windows ([T_i] or [T_i, F]) into {'tokens': [B, L(, F)], 'mask': [B, L]}."""
    assert samples, "collate needs at least one window"
    assert pad_side in ("left", "right"), f"pad_side must be left or right, got {pad_side!r}"
    longest = max(len(s) for s in samples)
    size = longest if length is None else length
    assert size >= longest, f"a window of {longest} tokens does not fit length {size}"
    tail = tuple(samples[0].shape[1:])
    tokens = np.full((len(samples), size, *tail), pad_value, dtype=np.int64)
    mask = np.zeros((len(samples), size), dtype=bool)
    for b, s in enumerate(samples):
        assert tuple(s.shape[1:]) == tail, f"window {b} has shape {s.shape}, others {tail}"
        n = len(s)
        sl = slice(0, n) if pad_side == "right" else slice(size - n, size)
        tokens[b, sl] = s
        mask[b, sl] = True
    return {"tokens": torch.from_numpy(tokens), "mask": torch.from_numpy(mask)}


class PitchTransposer:
    """Shift every pitched-note token ("Pitch_N", "NOTE_ON_N", "NOTE_OFF_N"; never "PitchDrum_N")
    by s semitones.

    `vocab`: manifest.extra["vocab"], one list of token strings per field (index = id). A shift is
    drawn uniformly among the s in [-k, k] that keep every pitch of the window in the vocabulary
    (s = 0 always qualifies), so augmentation never produces an unknown token.
    """

    def __init__(self, vocab: Sequence[Sequence[str]], max_shift: int) -> None:
        assert max_shift >= 0, f"transposition range must be >= 0, got {max_shift}"
        self.max_shift = max_shift
        self.code_of: list[np.ndarray] = []  # per field: id -> family * _SPAN + pitch, or -1
        self.id_of: list[dict[int, int]] = []  # per field: that code -> id
        for field in vocab:
            code = np.full(len(field), -1, dtype=np.int64)
            ids: dict[int, int] = {}
            for idx, tok in enumerate(field):
                m = PITCH_TOKEN.match(str(tok))
                if m and 0 <= int(m.group(2)) < _SPAN:
                    code[idx] = _FAMILIES.index(m.group(1)) * _SPAN + int(m.group(2))
                    ids[int(code[idx])] = idx
            self.code_of.append(code)
            self.id_of.append(ids)
        assert any(self.id_of), "the vocabulary has no pitch token (Pitch_N, NOTE_ON_N)"
        self._luts: dict[tuple[int, int], np.ndarray] = {}

    def allowed_shifts(self, window: np.ndarray) -> list[int]:
        """The shifts in [-k, k] that keep every pitch of `window` ([T] or [T, F]) in range."""
        cols = window.reshape(len(window), -1)
        assert cols.shape[1] == len(self.code_of), (
            f"window has {cols.shape[1]} fields but the vocabulary {len(self.code_of)}"
        )
        ok = set(range(-self.max_shift, self.max_shift + 1))
        for f, code_of in enumerate(self.code_of):
            if not self.id_of[f]:
                continue
            ids = cols[:, f]
            valid = (ids >= 0) & (ids < len(code_of))
            present = np.unique(code_of[ids[valid]])
            present = present[present >= 0]
            have = self.id_of[f]
            ok = {s for s in ok if all(_moved(int(c), s) in have for c in present)}
        return sorted(ok)

    def _lut(self, f: int, s: int) -> np.ndarray:
        """id -> id table of field f for shift s (pitches that would leave the range stay)."""
        key = (f, s)
        lut = self._luts.get(key)
        if lut is None:
            lut = np.arange(len(self.code_of[f]), dtype=np.int64)
            have = self.id_of[f]
            for c, idx in have.items():
                if _moved(c, s) in have:
                    lut[idx] = have[_moved(c, s)]
            self._luts[key] = lut
        return lut

    def shift(self, window: np.ndarray, s: int) -> np.ndarray:
        """A copy of `window` with its pitch tokens moved by s semitones (s must be allowed)."""
        out = window.copy()
        if s == 0:
            return out
        cols = out.reshape(len(out), -1)
        for f, code_of in enumerate(self.code_of):
            if not self.id_of[f]:
                continue
            ids = cols[:, f]
            valid = (ids >= 0) & (ids < len(code_of))
            cols[valid, f] = self._lut(f, s)[ids[valid]]
        return out

    def __call__(self, window: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Transpose by a random allowed shift; returns (window, shift)."""
        if self.max_shift == 0:
            return window, 0
        choices = self.allowed_shifts(window)
        s = int(choices[int(rng.integers(len(choices)))])
        return self.shift(window, s), s


def _moved(code: int, s: int) -> int:
    """The code of the same family's pitch + s (outside the family's span: never in a vocab)."""
    fam, pitch = divmod(code, _SPAN)
    return fam * _SPAN + pitch + s if 0 <= pitch + s < _SPAN else -1
