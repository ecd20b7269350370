"""Round-trip fidelity: the share of a piece's notes that survive encode -> decode.

A source note counts as recovered when the decoded piece has a note of the same pitch whose onset
and duration are within the encoding's resolution (`Encoding.tolerances`); each decoded note is
matched at most once. Velocity, program and track layout are not compared: the question is
whether the music's notes come back, which is what lossless-in-principle encodings promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-6


@dataclass(frozen=True)
class Fidelity:
    notes: int  # reference notes in the source piece
    recovered: int  # of those, found again in the decoded piece
    decoded: int  # notes in the decoded piece
    error: str | None = None  # decode failure, if any (then recovered = 0)

    @property
    def ratio(self) -> float:
        return self.recovered / self.notes if self.notes else 1.0


def score_notes(score: Any, unit: str = "quarters") -> np.ndarray:
    """All notes of a symusic Score as float64 [N, 3]: pitch, onset, duration in `unit`
    ("quarters" or "seconds")."""
    if unit == "seconds":
        score = score.to("second")
        scale = 1.0
    else:
        scale = 1.0 / score.ticks_per_quarter
    parts = []
    for track in score.tracks:
        arr = track.notes.numpy()
        if len(arr["pitch"]):
            parts.append(
                np.stack(
                    [
                        arr["pitch"].astype(np.float64),
                        arr["time"].astype(np.float64) * scale,
                        arr["duration"].astype(np.float64) * scale,
                    ],
                    axis=1,
                )
            )
    return np.concatenate(parts) if parts else np.zeros((0, 3))


def count_recovered(ref: np.ndarray, dec: np.ndarray, onset_tol: float, dur_tol: np.ndarray) -> int:
    """Greedy one-to-one matching per pitch, in onset order (both arrays [N, 3])."""
    if len(ref) == 0 or len(dec) == 0:
        return 0
    found = 0
    ref_order = np.lexsort((ref[:, 1], ref[:, 0]))
    dec_order = np.lexsort((dec[:, 1], dec[:, 0]))
    ref, tol = ref[ref_order], dur_tol[ref_order]
    dec = dec[dec_order]
    r_bounds = _pitch_bounds(ref[:, 0])
    d_bounds = _pitch_bounds(dec[:, 0])
    for pitch, (r0, r1) in r_bounds.items():
        if pitch not in d_bounds:
            continue
        d0, d1 = d_bounds[pitch]
        cand = dec[d0:d1]
        used = np.zeros(len(cand), dtype=bool)
        for i in range(r0, r1):
            onset, dur = ref[i, 1], ref[i, 2]
            lo = np.searchsorted(cand[:, 1], onset - onset_tol - EPS, side="left")
            hi = np.searchsorted(cand[:, 1], onset + onset_tol + EPS, side="right")
            for j in range(lo, hi):
                if not used[j] and abs(cand[j, 2] - dur) <= tol[i] + EPS:
                    used[j] = True
                    found += 1
                    break
    return found


def _pitch_bounds(pitches: np.ndarray) -> dict[float, tuple[int, int]]:
    values, starts = np.unique(pitches, return_index=True)
    ends = [*starts[1:], len(pitches)]
    return {float(v): (int(s), int(e)) for v, s, e in zip(values, starts, ends, strict=True)}


def measure(encoding: Any, score: Any, tokens: np.ndarray) -> Fidelity:
    """Decode `tokens` and compare with the encoding's reference notes of `score`."""
    ref = encoding.reference_notes(score)
    try:
        decoded = encoding.decode(tokens)
        dec = score_notes(decoded, encoding.time_unit)
    except (KeyError, ValueError, IndexError, RuntimeError, AssertionError) as exc:
        return Fidelity(len(ref), 0, 0, f"decode failed: {type(exc).__name__}: {exc}")
    onset_tol, dur_tol = encoding.tolerances(score, ref)
    return Fidelity(len(ref), count_recovered(ref, dec, onset_tol, dur_tol), len(dec))
