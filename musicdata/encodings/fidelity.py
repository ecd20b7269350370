"""Round-trip fidelity: the share of a piece's notes that survive encode -> decode, strictly.

A source note counts as recovered when the decoded piece has a note of the same pitch whose onset
and duration are each within *half a grid step* of the source, where the grid is the encoding's
own resolution at that note (`Encoding.resolution`): the time signature in force at the note
sets the beat for beat-based encodings, quarters for PerTok, 10 ms for `performance`. A duration
longer than the encoding's largest duration token gets no extra tolerance, so a clipped note is
lost, not "recovered". Each decoded note is matched at most once (closest onset first).

Besides the ratio, every measurement records the onset error in milliseconds of the notes found
at their onset (mapped through the *source* tempo map, so tempo-token binning does not hide grid
error), and a reason for every lost note, so a figure below 100% says why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-4  # in time units: symusic stores seconds as float32 (~4e-6 s at 60 s)
# Why a source note was not recovered. pitch_range and too_long first; a note found at its onset
# is "duration" (or overlap/restruck when the encoding pairs note-offs); a note not found is the
# first of unison, overlap, restruck, onset, missing that applies.
REASONS = (
    "decode_error",  # decoding raised: every note is lost
    "pitch_range",  # pitch outside the encoding's range
    "too_long",  # longer than the largest duration the encoding can write
    "unison",  # another note of the same pitch starts at the same time (merged by most encodings)
    "overlap",  # starts while an earlier note of the same pitch still sounds
    "restruck",  # its pitch is struck again before its note-off
    "duration",  # found at its onset, duration off by more than its tolerance (the grid's doing,
    # unless the encoding pairs note-offs: then an overlap or re-strike is named instead)
    "onset",  # a note of that pitch is nearby, but not within half a grid step
    "missing",  # nothing of that pitch within 4 quarters / 2 s
)
NEARBY = {"quarters": 4.0, "seconds": 2.0}


@dataclass(frozen=True)
class Resolution:
    """Per source note, in the encoding's `time_unit`: half-step tolerances and the longest
    duration the encoding can write (inf when unbounded)."""

    onset_tol: np.ndarray
    dur_tol: np.ndarray
    max_dur: np.ndarray


@dataclass(frozen=True)
class Fidelity:
    notes: int  # reference notes in the source piece
    recovered: int  # of those, found again in the decoded piece (strict)
    decoded: int  # notes in the decoded piece
    error: str | None = None  # decode failure, if any (then recovered = 0)
    onset_matched: int = 0  # notes found at their onset (duration aside): onset-error sample size
    onset_err_ms_mean: float | None = None  # mean |decoded - source onset| of those, in ms
    onset_err_ms_p95: float | None = None
    onset_err_ms_max: float | None = None
    lost: dict[str, int] = field(default_factory=dict, hash=False)  # reason -> notes (REASONS)

    @property
    def ratio(self) -> float:
        return self.recovered / self.notes if self.notes else 1.0


@dataclass(frozen=True)
class Comparison:
    """Per-note detail of one measurement (benchmarks aggregate these across pieces)."""

    fidelity: Fidelity
    onset_err_ms: np.ndarray  # one value per onset-matched note
    reasons: np.ndarray  # str per source note: "" when recovered


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


def grid_tolerance(values: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """Half the local step of a sorted grid of representable values, per value, and the grid's
    largest value. Beyond the largest the last step applies (so a clipped value fails); below
    the smallest, the smallest value itself is the only choice."""
    grid = np.unique(np.asarray(grid, dtype=np.float64))
    if len(grid) == 1:
        return np.maximum(np.abs(values - grid[0]), 0.0), float(grid[0])
    gaps = np.diff(grid)
    idx = np.clip(np.searchsorted(grid, values, side="right") - 1, 0, len(gaps) - 1)
    tol = gaps[idx] / 2
    below = values < grid[0]
    tol[below] = np.maximum(tol[below], grid[0] - values[below])
    return tol, float(grid[-1])


def seconds_at(score: Any, quarters: np.ndarray) -> np.ndarray:
    """Quarter positions -> seconds through `score`'s tempo map (120 bpm when it has none)."""
    tpq = score.ticks_per_quarter
    tempos = sorted((t.time / tpq, t.qpm) for t in score.tempos) or [(0.0, 120.0)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0.0, tempos[0][1]))
    starts = np.array([q for q, _ in tempos])
    spq = np.array([60.0 / qpm for _, qpm in tempos])
    offsets = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spq[:-1])])
    i = np.clip(np.searchsorted(starts, quarters, side="right") - 1, 0, len(starts) - 1)
    return offsets[i] + (quarters - starts[i]) * spq[i]


def compare(
    ref: np.ndarray,
    dec: np.ndarray,
    res: Resolution,
    to_ms: Any,
    pitch_ok: np.ndarray,
    unit: str = "quarters",
    note_offs: bool = False,
) -> Comparison:
    """Match decoded notes to reference notes (both [N, 3]) per pitch; see the module docstring.
    `to_ms` maps onsets in `unit` to milliseconds; `pitch_ok` marks notes in the pitch range;
    `note_offs`: the encoding writes note-off events (durations come from pairing them), so a
    same-pitch overlap explains a wrong duration; otherwise a wrong duration is the grid's."""
    n = len(ref)
    reasons = np.full(n, "", dtype=object)
    matched_dur = np.zeros(n, dtype=bool)
    onset_pair = np.full(n, -1, dtype=np.int64)  # decoded index found at the note's onset
    near = np.zeros(n, dtype=bool)
    if n and len(dec):
        dec_order = np.lexsort((dec[:, 1], dec[:, 0]))
        dec_sorted = dec[dec_order]
        bounds = _pitch_bounds(dec_sorted[:, 0])
        used = np.zeros(len(dec), dtype=bool)
        # strict pass first (onset and duration), then onset-only for what is left
        for strict in (True, False):
            for i in np.lexsort((ref[:, 1], ref[:, 0])).tolist():
                if matched_dur[i] or onset_pair[i] >= 0 or ref[i, 0] not in bounds:
                    continue
                d0, d1 = bounds[ref[i, 0]]
                cand = dec_sorted[d0:d1, 1]
                onset, dur = ref[i, 1], ref[i, 2]
                lo = np.searchsorted(cand, onset - res.onset_tol[i] - EPS, side="left")
                hi = np.searchsorted(cand, onset + res.onset_tol[i] + EPS, side="right")
                best, best_gap = -1, np.inf
                for j in range(d0 + lo, d0 + hi):
                    if used[j]:
                        continue
                    if strict and abs(dec_sorted[j, 2] - dur) > res.dur_tol[i] + EPS:
                        continue
                    gap = abs(dec_sorted[j, 1] - onset)
                    if gap < best_gap:
                        best, best_gap = j, gap
                if best >= 0:
                    used[best] = True
                    onset_pair[i] = best
                    matched_dur[i] = strict
        for i in range(n):
            if onset_pair[i] < 0 and ref[i, 0] in bounds:
                d0, d1 = bounds[ref[i, 0]]
                near[i] = bool(np.any(np.abs(dec_sorted[d0:d1, 1] - ref[i, 1]) <= NEARBY[unit]))
        err = np.abs(
            to_ms(dec_sorted[onset_pair[onset_pair >= 0], 1]) - to_ms(ref[onset_pair >= 0, 1])
        )
    else:
        err = np.zeros(0)
    unison, overlap, restruck = _same_pitch_conflicts(ref, res.onset_tol)
    lost = ~matched_dur
    at_onset = onset_pair >= 0  # found at its onset: only its duration is off
    pairing = at_onset if note_offs else np.zeros(n, dtype=bool)
    for name, mask in (
        ("pitch_range", ~pitch_ok),
        ("too_long", ref[:, 2] > res.max_dur + res.dur_tol + EPS if n else np.zeros(0, bool)),
        ("overlap", overlap & pairing),
        ("restruck", restruck & pairing),
        ("duration", at_onset),
        ("unison", unison),
        ("overlap", overlap),
        ("restruck", restruck),
        ("onset", near),
        ("missing", np.ones(n, dtype=bool)),
    ):
        pick = lost & (reasons == "") & mask
        reasons[pick] = name
    recovered = int(matched_dur.sum())
    fid = Fidelity(
        notes=n,
        recovered=recovered,
        decoded=len(dec),
        onset_matched=len(err),
        onset_err_ms_mean=float(err.mean()) if len(err) else None,
        onset_err_ms_p95=float(np.percentile(err, 95)) if len(err) else None,
        onset_err_ms_max=float(err.max()) if len(err) else None,
        lost=dict(Counter(r for r in reasons.tolist() if r)),
    )
    return Comparison(fid, err, reasons)


def _same_pitch_conflicts(
    ref: np.ndarray, onset_tol: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per note: another note of its pitch starts at the same grid onset (unison); an earlier
    note of its pitch still sounds at its onset (overlap); the next note of its pitch starts
    before its note-off (restruck)."""
    n = len(ref)
    unison, overlap, restruck = (np.zeros(n, dtype=bool) for _ in range(3))
    if n < 2:
        return unison, overlap, restruck
    order = np.lexsort((ref[:, 1], ref[:, 0]))
    p, on, end = ref[order, 0], ref[order, 1], ref[order, 1] + ref[order, 2]
    same = p[1:] == p[:-1]
    close = same & (np.abs(on[1:] - on[:-1]) <= onset_tol[order][1:] + EPS)
    unison[order[1:][close]] = unison[order[:-1][close]] = True
    # running max of note ends within each pitch, shifted by one
    run_end = end.copy()
    for k in range(1, n):
        if same[k - 1]:
            run_end[k] = max(run_end[k], run_end[k - 1])
    sounding = same & (run_end[:-1] > on[1:] + onset_tol[order][1:] + EPS)
    overlap[order[1:][sounding]] = True
    cut = same & (end[:-1] > on[1:] + onset_tol[order][1:] + EPS)
    restruck[order[:-1][cut]] = True
    return unison, overlap, restruck


def _pitch_bounds(pitches: np.ndarray) -> dict[float, tuple[int, int]]:
    values, starts = np.unique(pitches, return_index=True)
    ends = [*starts[1:], len(pitches)]
    return {float(v): (int(s), int(e)) for v, s, e in zip(values, starts, ends, strict=True)}


def measure_detail(encoding: Any, score: Any, tokens: np.ndarray) -> Comparison:
    """Decode `tokens` and compare with the encoding's reference notes of `score`."""
    ref = encoding.reference_notes(score)
    unit = encoding.time_unit
    pitch_ok = encoding.pitch_in_range(ref[:, 0])
    try:
        decoded = encoding.decode(tokens)
        dec = score_notes(decoded, unit)
    except (KeyError, ValueError, IndexError, RuntimeError, AssertionError, TypeError) as exc:
        error = f"decode failed: {type(exc).__name__}: {exc}"
        fid = Fidelity(len(ref), 0, 0, error, lost={"decode_error": len(ref)})
        return Comparison(fid, np.zeros(0), np.full(len(ref), "decode_error", dtype=object))
    res = encoding.resolution(score, ref)
    if unit == "seconds":
        to_ms = lambda s: np.asarray(s) * 1000.0  # noqa: E731 - a one-line unit map
    else:
        to_ms = lambda q: seconds_at(score, np.asarray(q)) * 1000.0  # noqa: E731
    return compare(ref, dec, res, to_ms, pitch_ok, unit, encoding.note_offs)


def measure(encoding: Any, score: Any, tokens: np.ndarray) -> Fidelity:
    """The worker's call: strict fidelity, onset error in ms and reasons for lost notes."""
    return measure_detail(encoding, score, tokens).fidelity
