"""Parse and validate one MIDI file; runs inside an isolated worker (see musicdata.isolate).

Returns a plain dict record (picklable, no catalog access): either status 'ok' with metadata, a
note-content hash and note quality flags, or status 'quarantined' with a reason and a detail that
names the fix.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIDI_SUFFIXES = frozenset({".mid", ".midi", ".kar", ".smf", ".rmi"})


@dataclass(frozen=True)
class MidiJob:
    """What a worker needs: where the bytes are and the caps (from IngestConfig)."""

    sha256: str
    blob_path: str
    max_notes: int
    max_duration_s: float
    max_tracks: int
    content_hash_tpq: int
    max_duration_quarters: float = 32.0  # notes longer than this count as long_notes


def _reject(job: MidiJob, reason: str, detail: str) -> dict[str, Any]:
    return {"sha256": job.sha256, "status": "quarantined", "reason": reason, "detail": detail}


def content_hash(score: Any, grid_tpq: int) -> str:
    """Hash of the notes on a beat grid (drum flag, onset, duration, pitch), sorted.

    Tempo, velocities, programs, track names and track order are left out on purpose: the same
    music re-exported with other metadata hashes the same, so it is a near duplicate and never
    lands in two splits.
    """
    scale = grid_tpq / score.ticks_per_quarter
    parts = []
    for track in score.tracks:
        n = track.notes.numpy()
        if len(n["time"]) == 0:
            continue
        cols = np.stack(
            [
                np.full(len(n["time"]), int(track.is_drum), dtype=np.int64),
                np.rint(n["time"].astype(np.float64) * scale).astype(np.int64),
                np.rint(n["duration"].astype(np.float64) * scale).astype(np.int64),
                n["pitch"].astype(np.int64),
            ],
            axis=1,
        )
        parts.append(cols)
    notes = np.concatenate(parts) if parts else np.zeros((0, 4), dtype=np.int64)
    notes = np.unique(notes, axis=0)  # sorted rows; doubled notes across tracks count once
    return hashlib.sha256(notes.tobytes()).hexdigest()


def quality_flags(score: Any, max_duration_quarters: float) -> dict[str, Any]:
    """Note quality flags of a piece (catalog `pieces` columns): what `[ingest] normalize =
    "trim-overlaps"` would change. Real files re-strike a pitch before its note-off (ties that never
    end: one music21 Beethoven quartet movement holds thousands), which no duration vocabulary
    covers and on/off encodings pair differently; a piece is kept either way, these say how much."""
    from musicdata.encodings.normalize import longest_note_quarters, note_flags

    flags = note_flags(score, max_duration_quarters)
    return {
        "duplicate_notes": flags.duplicates,
        "overlapping_notes": flags.restruck,
        "long_notes": flags.capped,
        "longest_note_quarters": longest_note_quarters(score),
    }


def inspect_midi(job: MidiJob) -> dict[str, Any]:
    """Parse, validate and describe one MIDI file."""
    import symusic  # deferred: workers import only what they need

    try:
        score = symusic.Score.from_midi(Path(job.blob_path).read_bytes())
    except Exception as exc:  # noqa: BLE001 - the parser's errors on hostile bytes are untyped
        return _reject(job, "unparseable", f"not a readable MIDI file: {exc}")
    if score.ticks_per_quarter <= 0:
        return _reject(job, "invalid_header", f"ticks per quarter is {score.ticks_per_quarter}")
    if len(score.tracks) > job.max_tracks:
        return _reject(job, "too_many_tracks", f"{len(score.tracks)} tracks > cap {job.max_tracks}")
    n_notes = 0
    pitch_min, pitch_max = 127, 0
    for i, track in enumerate(score.tracks):
        n = track.notes.numpy()
        if len(n["time"]) == 0:
            continue
        n_notes += len(n["time"])
        if n_notes > job.max_notes:
            return _reject(job, "too_many_notes", f"more than {job.max_notes} notes")
        pitch, vel = n["pitch"].astype(np.int16), n["velocity"].astype(np.int16)
        if pitch.min() < 0 or pitch.max() > 127:
            return _reject(job, "invalid_pitch", f"track {i} has pitches outside 0..127")
        if vel.min() < 1 or vel.max() > 127:
            return _reject(job, "invalid_velocity", f"track {i} has velocities outside 1..127")
        if n["time"].min() < 0 or n["duration"].min() < 0:
            return _reject(job, "invalid_time", f"track {i} has negative onsets or durations")
        pitch_min, pitch_max = min(pitch_min, int(pitch.min())), max(pitch_max, int(pitch.max()))
    if n_notes == 0:
        return _reject(job, "no_notes", "the file parses but holds no notes")
    duration_s = float(score.to("second").end())
    if not math.isfinite(duration_s) or duration_s < 0:
        return _reject(job, "invalid_time", f"duration is {duration_s}")
    if duration_s > job.max_duration_s:
        cap = f"{job.max_duration_s:.0f} s (ingest.max_duration_s)"
        return _reject(job, "too_long", f"{duration_s:.0f} s > cap {cap}")
    tempos = [float(t.qpm) for t in score.tempos]
    if any(not math.isfinite(t) or t <= 0 for t in tempos):
        return _reject(job, "invalid_tempo", f"non-positive or non-finite tempo in {tempos[:5]}")
    time_sigs: list[str] = []
    for ts in score.time_signatures:
        name = f"{ts.numerator}/{ts.denominator}"
        if name not in time_sigs:
            time_sigs.append(name)
    programs = sorted({int(t.program) for t in score.tracks if not t.is_drum and t.note_num()})
    return {
        **quality_flags(score, job.max_duration_quarters),
        "sha256": job.sha256,
        "status": "ok",
        "content_hash": content_hash(score, job.content_hash_tpq),
        "duration_s": duration_s,
        "n_notes": n_notes,
        "n_tracks": sum(1 for t in score.tracks if t.note_num()),
        "programs": programs,
        "has_drums": any(t.is_drum and t.note_num() for t in score.tracks),
        "ticks_per_quarter": int(score.ticks_per_quarter),
        "tempo_bpm": tempos[0] if tempos else None,
        "n_tempo_changes": sum(abs(a - b) > 1e-3 for a, b in itertools.pairwise(tempos)),
        "time_signatures": time_sigs,
        "pitch_min": pitch_min,
        "pitch_max": pitch_max,
    }
