"""Note-level transcription scores (mir_eval) for the audio stage: how well a transcription of
audio recovers the notes of a reference MIDI.

`note_scores` takes plain arrays (intervals in seconds, pitches as MIDI numbers) so any
transcriber can be scored; `score_midi_pair` does it for two symusic scores.

Conventions (documented because mir_eval's own are surprising at the edges):
- onset-only scores (`precision`, `recall`, `f1`) use `offset_ratio=None`: a note counts when its
  onset is within `onset_tolerance` seconds and its pitch within 50 cents;
- `f1_with_offsets` (and its precision/recall) additionally require the offset within
  max(0.2 * reference duration, 50 ms), mir_eval's default;
- empty inputs never crash: both sets empty scores 1.0 (nothing to find, nothing spurious), one
  side empty scores 0.0 (mir_eval would warn and return 0 in both cases).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import symusic

__all__ = ["midi_to_hz", "note_arrays", "note_scores", "score_midi_pair"]


def midi_to_hz(pitches: np.ndarray) -> np.ndarray:
    """MIDI note numbers -> Hz (A4 = 69 = 440 Hz), vectorized."""
    return 440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0)


def _check(intervals: np.ndarray, pitches: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(pitches, dtype=np.float64).reshape(-1)
    if len(iv) != len(p):
        msg = f"{side}: {len(iv)} intervals but {len(p)} pitches; pass one pitch per note"
        raise ValueError(msg)
    # mir_eval rejects zero-length notes; a transcriber can emit them, so give them 1 ms.
    iv = iv.copy()
    iv[:, 1] = np.maximum(iv[:, 1], iv[:, 0] + 1e-3)
    return iv, p


def note_scores(
    ref_intervals: np.ndarray,
    ref_pitches_midi: np.ndarray,
    est_intervals: np.ndarray,
    est_pitches_midi: np.ndarray,
    *,
    onset_tolerance: float = 0.05,
) -> dict[str, float]:
    """Onset-only and onset+offset precision/recall/F1 of estimated notes against reference notes.

    Returns keys precision, recall, f1 (onset only), precision_with_offsets, recall_with_offsets,
    f1_with_offsets, n_ref, n_est.
    """
    ref_iv, ref_p = _check(ref_intervals, ref_pitches_midi, "reference")
    est_iv, est_p = _check(est_intervals, est_pitches_midi, "estimate")
    out: dict[str, float] = {"n_ref": float(len(ref_p)), "n_est": float(len(est_p))}
    keys = ("precision", "recall", "f1")
    if len(ref_p) == 0 or len(est_p) == 0:
        value = 1.0 if len(ref_p) == len(est_p) else 0.0
        for k in keys:
            out[k] = value
            out[f"{k}_with_offsets"] = value
        return out

    from mir_eval.transcription import precision_recall_f1_overlap

    ref_hz, est_hz = midi_to_hz(ref_p), midi_to_hz(est_p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        onset = precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance, offset_ratio=None
        )
        full = precision_recall_f1_overlap(
            ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance
        )
    for k, v in zip(keys, onset[:3], strict=True):
        out[k] = float(v)
    for k, v in zip(keys, full[:3], strict=True):
        out[f"{k}_with_offsets"] = float(v)
    return out


def note_arrays(score: symusic.Score) -> tuple[np.ndarray, np.ndarray]:
    """(intervals [N, 2] in seconds, MIDI pitches [N]) of all non-drum notes, sorted by onset.

    Drum tracks are left out: a pitched transcriber does not produce them.
    """
    sec = score.to("second")
    starts, durs, pitches = [], [], []
    for track in sec.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        starts.append(arr["time"].astype(np.float64))
        durs.append(arr["duration"].astype(np.float64))
        pitches.append(arr["pitch"].astype(np.int64))
    if not starts:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    s, d, p = np.concatenate(starts), np.concatenate(durs), np.concatenate(pitches)
    order = np.lexsort((p, s))
    s, d, p = s[order], d[order], p[order]
    return np.stack([s, s + d], axis=1), p


def score_midi_pair(
    ref: symusic.Score, est: symusic.Score, *, onset_tolerance: float = 0.05
) -> dict[str, float]:
    """`note_scores` for two symusic scores (any time unit; compared in seconds)."""
    ref_iv, ref_p = note_arrays(ref)
    est_iv, est_p = note_arrays(est)
    return note_scores(ref_iv, ref_p, est_iv, est_p, onset_tolerance=onset_tolerance)
