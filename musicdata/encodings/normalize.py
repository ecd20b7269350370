"""A documented note normalization for real MIDI: trim re-struck same-pitch notes, cap durations.

Real files re-strike a pitch before its note-off (music21's conversion of a Beethoven quartet
movement holds over a thousand such overlaps, from ties that never end, giving notes hundreds of
quarters long). No duration vocabulary covers those, and on/off encodings pair them differently.
`normalize_notes` makes them explicit and bounded, per track and pitch:

- two notes starting together: the longest is kept (a duplicate, not music);
- a note still sounding when its pitch is struck again ends at the new onset (what a keyboard
  does: one key, one sound);
- a duration longer than `max_quarters` is cut to it.

It returns the counts as quality flags: ingest records them per piece (`pieces.duplicate_notes`,
`overlapping_notes`, `long_notes`, `longest_note_quarters`). It is opt-in per workspace
(`[ingest] normalize = "trim-overlaps"`, `max_duration_quarters`): `normalization_params` turns
that setting into the `normalize` parameter every encoding hashes into its config, and the
tokenize worker applies it before encoding. The fidelity measure compares against the notes the
encoding was given (normalized or not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_QUARTERS = 32.0  # covered by every beat-based encoding's duration range (base.py)
PARAM = "normalize"  # the encoding parameter that carries a workspace's normalization


@dataclass(frozen=True)
class NoteFlags:
    notes: int  # notes before normalization
    duplicates: int  # same track, pitch and onset: dropped (the longest kept)
    restruck: int  # trimmed at the next onset of their pitch
    capped: int  # durations cut to max_quarters

    def to_dict(self) -> dict[str, int]:
        return {
            "notes": self.notes,
            "duplicates": self.duplicates,
            "restruck": self.restruck,
            "capped": self.capped,
        }


def normalization_params(mode: str, max_quarters: float) -> dict[str, Any]:
    """Encoding overrides for a workspace's `[ingest] normalize` setting: {} for "none" (so
    existing config hashes do not change), else {"normalize": {...}}, hashed with the encoding."""
    if mode == "none":
        return {}
    if mode != "trim-overlaps":
        msg = f"normalize = {mode!r}: use 'none' or 'trim-overlaps' ([ingest] in musicdata.toml)"
        raise ValueError(msg)
    return {PARAM: {"mode": mode, "max_quarters": float(max_quarters)}}


def apply_params(score: Any, spec: Any) -> Any:
    """The score an encoding with parameter `normalize = spec` tokenizes (spec None: unchanged)."""
    if not spec:
        return score
    return normalize_notes(score, float(spec["max_quarters"]))[0]


def longest_note_quarters(score: Any) -> float:
    """The longest note as written, in quarters (0 for a score without notes)."""
    durations = [int(t.notes.numpy()["duration"].max()) for t in score.tracks if t.notes]
    longest = max(durations, default=0)
    return longest / score.ticks_per_quarter


def note_flags(score: Any, max_quarters: float = DEFAULT_MAX_QUARTERS) -> NoteFlags:
    """What `normalize_notes` would change, without changing anything."""
    return _run(score.copy(), max_quarters)


def normalize_notes(
    score: Any, max_quarters: float = DEFAULT_MAX_QUARTERS
) -> tuple[Any, NoteFlags]:
    """A normalized copy of a symusic Score (ticks) and the flags; the input is not modified."""
    out = score.copy()
    flags = _run(out, max_quarters)
    return out, flags


def _run(score: Any, max_quarters: float) -> NoteFlags:
    from symusic import Note

    cap = round(max_quarters * score.ticks_per_quarter)
    total = dup = cut = capped = 0
    for track in score.tracks:
        soa = track.notes.numpy()
        n = len(soa["pitch"])
        total += n
        if n == 0:
            continue
        # longest first among equal (pitch, onset), so the kept duplicate is the longest
        order = np.lexsort((-soa["duration"], soa["time"], soa["pitch"]))
        t, d = soa["time"][order].astype(np.int64), soa["duration"][order].astype(np.int64)
        p = soa["pitch"][order]
        same = p[1:] == p[:-1]
        is_dup = np.concatenate([[False], same & (t[1:] == t[:-1])])
        keep = ~is_dup
        dup += int(is_dup.sum())
        t, d, p = t[keep], d[keep], p[keep]
        idx = order[keep]
        same = p[1:] == p[:-1]
        ends = t + d
        over = np.concatenate([same & (ends[:-1] > t[1:]), [False]])
        d[over] = t[1:][over[:-1]] - t[over]
        cut += int(over.sum())
        long = d > cap
        d[long] = cap
        capped += int(long.sum())
        back = np.argsort(idx, kind="stable")  # restore the track's original note order
        track.notes = Note.from_numpy(
            time=t[back].astype(np.int32),
            duration=d[back].astype(np.int32),
            pitch=p[back].astype(np.int8),
            velocity=soa["velocity"][idx][back].astype(np.int8),
        )
    return NoteFlags(total, dup, cut, capped)
