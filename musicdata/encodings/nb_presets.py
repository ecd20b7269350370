"""Named NB presets and the official NMT step-1 note reduction they use (arXiv 2408.01180).

The Nested Music Transformer's reference preprocessing (github.com/JudeJiwoo/nmt,
`data_representation/step1_midi2corpus.py` + `step2_corpus2event.py`, commit ed0418a) reduces a
file before encoding it. `reduce_score` reproduces that reduction on a symusic Score, so the NB
presets give the paper's data:

- `pop`: the BachChorale / Pop909 / LakhClean settings: 4 positions per quarter, 14 duration bins
  up to 8 quarters, 5 velocity bins (score MIDI);
- `sod`: the Symbolic Orchestral Database settings: 12 positions per quarter, 19 duration bins
  up to 8 quarters, 5 velocity bins;
- `musicdata` (the default): 12 positions per quarter, MidiTok's duration grid to 12 beats, 32
  velocity bins, every program, every empty bar: the note content as written (no reduction).

What the reduction does, in the official order: drum tracks merged into one; programs outside the
official instrument table dropped; at most 16 tracks (a track past the cap merges into a kept one
of its program, else it is dropped); programs mapped to their instrument category (all pianos to
0, ...) and same-category tracks merged; leading empty bars removed; pitches outside 12..119 and
notes shorter than half a grid step dropped; onsets on the grid, durations to the nearest bin
(capped at 8 quarters), velocities to the nearest bin; notes of one instrument that land in one
grid cell from different onsets pruned (semitone neighbours and notes sharing < 80% of the shorter
one: the longer kept); then, per onset across instruments, notes a semitone apart pruned (the
longer kept, from every instrument). The tokenizer then keeps at most `max_empty_bars` empty bars
in a row.

Deviations, on purpose: the official loop over bars ends before the bar line that the last note
starts on, so a final note starting exactly on a bar line is dropped (a bug, not copied); its bars
run on past the last note when leading bars were removed (up to 4 empty bars at the end; here a
piece ends at its last note); irregular meters (5/4, 7/8) keep their own bars where the official
code splits them into regular ones.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np

# Positions per quarter, duration bins (grid steps) and velocity bins of the official step 1.
DURATION_BINS = {
    4: [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 32],
    12: [1, 2, 3, 4, 6, 9, 12, 15, 18, 24, 30, 36, 42, 48, 54, 60, 72, 84, 96],
}
SCORE_VELOCITIES = [40, 60, 80, 100, 120]

# Program -> instrument-category program of the official code (constants.py, from MMT by Dong et
# al.); programs absent here (pipes, synth effects, sound effects, ...) are dropped by it.
CATEGORY: dict[int, int] = {
    **{p: 0 for p in (0, 1, 2, 3)},
    **{4: 4, 5: 4, 6: 6, 7: 7},
    **{p: p for p in range(8, 16)},
    **{16: 16, 17: 16, 18: 16, 19: 19, 20: 16, 21: 21, 22: 22, 23: 23},
    **{24: 24, 25: 25, **{p: 26 for p in range(26, 32)}},
    **{32: 32, 33: 33, 34: 33, 35: 33, 36: 36, 37: 36, 38: 38, 39: 38},
    **{40: 40, 41: 41, 42: 42, 43: 43, 44: 49, 45: 49, 46: 46, 47: 47, 48: 49, 49: 49},
    **{50: 50, 51: 50, 52: 52, 53: 52, 54: 52, 55: 55, 56: 56, 57: 57, 58: 58, 59: 56},
    **{60: 60, 61: 61, 62: 62, 63: 62, **{p: p for p in range(64, 76)}, 79: 79},
    **{p: 80 for p in range(80, 88)},
    **{p: 88 for p in range(88, 96)},
    **{p: p for p in range(104, 110)},
    **{110: 40, 111: 111, 114: 114, 117: 117, 118: 118, 119: 118},
}
DRUMS = 114  # the official code merges drum tracks into one track of program 114

_OFFICIAL = {
    "pitch_range": (12, 119),  # the official code drops pitches < 12 and >= 120
    "use_chords": False,  # 5 features: type, beat, instrument, pitch, duration
    "use_tempos": False,
    "num_velocities": len(SCORE_VELOCITIES),
    "nmt_reduction": True,
    "max_empty_bars": 4,
    "max_tracks": 16,
    "programs": sorted(set(CATEGORY.values())),  # instrument categories only
}

PRESETS: dict[str, dict[str, Any]] = {
    "musicdata": {},
    "pop": {
        **_OFFICIAL,
        "positions_per_quarter": 4,
        # MidiTok's grid must hold the official one in every meter: 8 per beat is 4 per quarter in
        # x/2; durations to 16 beats are 8 quarters in x/8
        "beat_res": {"0-16": 8},
        "duration_bins": DURATION_BINS[4],
    },
    "sod": {
        **_OFFICIAL,
        "positions_per_quarter": 12,
        "beat_res": {"0-16": 24},
        "duration_bins": DURATION_BINS[12],
    },
}


def apply_preset(overrides: dict[str, Any]) -> dict[str, Any]:
    """Expand `preset = "<name>"` into the preset's settings; explicit keys still win."""
    name = overrides.get("preset", "musicdata")
    if name not in PRESETS:
        msg = f"[encodings.nb-*]: preset = {name!r}; known presets: {', '.join(PRESETS)}"
        raise ValueError(msg)
    return {**PRESETS[name], **overrides}


def _round_half_even(num: np.ndarray, den: int) -> np.ndarray:
    """round(num / den) as Python rounds a Fraction (half to even), exactly in integers."""
    q, r = np.divmod(num, den)
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


def reduce_score(score: Any, params: dict[str, Any]) -> Any:
    """The official step-1 reduction of a symusic Score (ticks); a new Score with one tick per
    grid step (ticks per quarter = positions_per_quarter), the input is not modified."""
    from symusic import Note, Score, TimeSignature, Track

    per_q = int(params["positions_per_quarter"])
    bins = np.asarray(params["duration_bins"], dtype=np.int64)
    vel_bins = np.asarray(SCORE_VELOCITIES, dtype=np.int64)
    lo, hi = params["pitch_range"]
    tpq = score.ticks_per_quarter
    tracks = _official_tracks(score, int(params["max_tracks"]))
    out = Score(per_q)
    if not tracks:
        return out
    offset = leading_offset(score, params, tracks)
    cells: dict[int, dict[int, list[tuple[int, int, int, int]]]] = defaultdict(dict)
    for program, n in tracks:
        keep = (n["pitch"] >= lo) & (n["pitch"] <= hi)
        start = np.maximum(n["time"][keep].astype(np.int64) - offset, 0)
        end = np.maximum((n["time"] + n["duration"])[keep].astype(np.int64) - offset, 0)
        units = _round_half_even((end - start) * per_q, tpq)
        ok = units > 0
        units = np.minimum(units[ok], per_q * 8)
        dur = bins[np.abs(bins[None, :] - units[:, None]).argmin(axis=1)]
        vel = n["velocity"][keep][ok].astype(np.int64)
        vel = vel_bins[np.abs(vel_bins[None, :] - vel[:, None]).argmin(axis=1)]
        onset = _round_half_even(start[ok] * per_q, tpq)
        raw = zip(
            onset.tolist(),
            start[ok].tolist(),
            (end[ok] - start[ok]).tolist(),
            n["pitch"][keep][ok].tolist(),
            dur.tolist(),
            vel.tolist(),
            strict=True,
        )
        by_cell: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
        for cell, s, length, pitch, d, v in raw:
            by_cell[cell].append((s, length, pitch, d, v))
        for cell, notes in by_cell.items():
            cells[cell][program] = (
                _prune_cell(notes) if len(notes) > 1 else [(p, d, v, s) for s, _, p, d, v in notes]
            )
    kept: dict[int, list[Any]] = defaultdict(list)
    for cell in sorted(cells):
        for program, notes in _prune_semitones(cells[cell]).items():
            for pitch, dur, vel in notes:
                kept[program].append(Note(cell, dur, pitch, vel))
    out.tracks = [Track(program=p, is_drum=False, notes=kept[p]) for p in sorted(kept) if kept[p]]
    sigs = []
    for ts in sorted(score.time_signatures, key=lambda t: t.time):
        t = _round_half_even(np.array([max(ts.time - offset, 0) * per_q]), tpq)[0]
        sigs.append(TimeSignature(int(t), ts.numerator, ts.denominator))
    out.time_signatures = sigs
    return out


def leading_offset(score: Any, params: dict[str, Any], tracks: list | None = None) -> int:
    """Ticks of the leading empty bars the reduction removes: whole bars of the first time
    signature before the first note (its onset on the grid), as the official step 1."""
    per_q, tpq = int(params["positions_per_quarter"]), score.ticks_per_quarter
    tracks = _official_tracks(score, int(params["max_tracks"])) if tracks is None else tracks
    if not tracks:
        return 0
    ts0 = min(score.time_signatures, key=lambda t: t.time) if score.time_signatures else None
    num, den = (ts0.numerator, ts0.denominator) if ts0 else (4, 4)
    bar_ticks = int(tpq * num * (4 / den))
    first = min(int(n["time"].min()) for _, n in tracks)
    first_q = _round_half_even(np.array([first * per_q]), tpq)[0]  # in grid steps
    return int((first_q * tpq) // per_q // bar_ticks * bar_ticks) if bar_ticks else 0


def _official_tracks(score: Any, max_tracks: int) -> list[tuple[int, dict[str, np.ndarray]]]:
    """Drums merged, unknown programs dropped, the track cap, then same-category tracks merged:
    (category program, note arrays sorted by onset) per kept instrument."""
    tracks: list[tuple[int, bool, dict[str, np.ndarray]]] = []
    drums: list[dict[str, np.ndarray]] = []
    for t in score.tracks:
        n = t.notes.numpy()
        if len(n["time"]) == 0:
            continue
        if t.is_drum:
            drums.append(n)
        elif int(t.program) in CATEGORY:
            tracks.append((int(t.program), False, n))
    if drums:  # one percussion track, exact duplicates removed
        cat = {k: np.concatenate([d[k] for d in drums]) for k in drums[0]}
        rows = np.unique(
            np.stack([cat[k] for k in ("time", "duration", "pitch", "velocity")], 1), axis=0
        )
        merged = {k: rows[:, i] for i, k in enumerate(("time", "duration", "pitch", "velocity"))}
        tracks.append((DRUMS, True, merged))
    tracks.sort(key=lambda x: (not x[1], -len(x[2]["time"])))
    if len(tracks) > max_tracks:
        kept = tracks[:max_tracks]
        for program, drum, n in tracks[max_tracks:]:
            kept.sort(key=lambda x: len(x[2]["time"]))
            for i, (p, d, m) in enumerate(kept):
                if (p, d) == (program, drum):
                    kept[i] = (p, d, {k: np.concatenate([m[k], n[k]]) for k in m})
                    break
        tracks = kept
    by_cat: dict[int, list[dict[str, np.ndarray]]] = defaultdict(list)
    for program, _, n in tracks:
        by_cat[CATEGORY[program]].append(n)
    out = []
    for program, parts in by_cat.items():
        n = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        order = np.lexsort((-n["pitch"].astype(np.int64), n["time"]))
        out.append((program, {k: v[order] for k, v in n.items()}))
    return out


def _prune_cell(notes: list[tuple[int, int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The official pruning of one instrument's notes that share a grid cell (its own rules,
    including their order effects): notes from one onset stay; from different onsets, a semitone
    neighbour or a note sharing < 80% of the shorter one's length loses to the longer."""
    notes = sorted(notes, key=lambda x: x[2])  # by pitch (stable, as the official sort)
    out: list[tuple[int, int, int, int, int]] = []
    for a, b in itertools.pairwise(notes):
        if a[0] == b[0]:
            out += [a, b]
        elif b[2] - a[2] in (0, 1):
            out.append(a if a[1] > b[1] else b)
        else:
            shared = min(a[0] + a[1], b[0] + b[1]) - max(a[0], b[0])
            shorter = min(a[1], b[1])
            if shorter == 0 or shared / shorter < 0.8:  # the official code divides by it
                out.append(a if a[1] > b[1] else b)
            elif not out:
                out += [a, b]
            else:
                out.append(b)
    return [(p, d, v, s) for s, _, p, d, v in out]


def _prune_semitones(
    cell: dict[int, list[tuple[int, int, int, int]]],
) -> dict[int, list[tuple[int, int, int]]]:
    """One onset across instruments: one note per (instrument, pitch) (the longest bin, first
    on ties), then of two pitches a semitone apart (scanning down from the top) the one with the
    longer note stays, in every instrument."""
    notes: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for program in sorted(cell):
        for pitch, dur, vel, _ in cell[program]:
            notes.setdefault(program, {}).setdefault(pitch, []).append((dur, vel))
    longest: dict[int, int] = {}
    for by_pitch in notes.values():
        for pitch, dv in by_pitch.items():
            longest[pitch] = max(longest.get(pitch, 0), max(d for d, _ in dv))
    pitches = sorted(longest, reverse=True)
    final, i = set(), 0
    while i < len(pitches) - 1:
        hi_p, lo_p = pitches[i], pitches[i + 1]
        if hi_p - lo_p == 1:
            final.add(lo_p if longest[hi_p] < longest[lo_p] else hi_p)
            i += 2
        else:
            final.add(hi_p)
            i += 1
    if i == len(pitches) - 1:
        final.add(pitches[-1])
    out: dict[int, list[tuple[int, int, int]]] = {}
    for program, by_pitch in notes.items():
        kept = [(p, *max(dv, key=lambda x: x[0])) for p, dv in by_pitch.items() if p in final]
        if kept:
            out[program] = kept
    return out
