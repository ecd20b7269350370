"""Per-piece features of the mgeval / PerceiverS suite, vectorized over a whole set of pieces.

All pieces of a set are concatenated into one note table (piece index, onset, offset, pitch,
length in beats) and every feature is computed with array operations over that table
(bincount / unique / searchsorted), so the cost is a few passes over the notes of the whole set,
not a Python loop per note or per piece. `musicdata.testing.loops` holds the straightforward
per-note definitions the tests and the benchmark compare against.

Definitions (notes of all non-drum tracks merged, ordered by onset then pitch):
- pc: number of distinct MIDI pitches; nc: number of notes; pr: highest - lowest pitch.
- pch: pitch-class histogram weighted by note duration in seconds, summing to 1.
- pctm: pitch-class transitions counted, as pretty_midi does, for every ordered pair of notes
  (a, b) with |offset(a) - onset(b)| < 50 ms; normalised to sum to 1 over the 12 x 12 matrix.
- pi: mean absolute pitch difference of consecutive notes (0 with fewer than 2 notes).
- ioi: mean time in seconds between consecutive distinct onsets (0 with fewer than 2).
- nlh / nltm: each note's length in beats (one beat = one MIDI quarter note, i.e. ticks divided
  by ticks-per-quarter, which follows the file's tempo map; performance MIDI has no bars, so
  mgeval's bar/96 unit is replaced by the beat) is snapped to the nearest of 12 classes
  (whole, half, quarter, 8th, 16th, their dotted forms, half/quarter/8th triplets);
  nlh is the class histogram, nltm counts consecutive-note class transitions; both sum to 1.
- *_seg: the span [0, end of last note] is cut into `n_segments` equal-duration segments
  (no bars in performance data); a note belongs to the segment of its onset. pc_seg, nc_seg,
  ioi_seg are pc, nc, ioi per segment; pch_seg weights each pitch class by the note time that
  sounds inside the segment (notes are clipped at segment borders), each row summing to 1 or 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "FEATURES",
    "NOTE_LENGTH_CLASSES",
    "FeatureConfig",
    "Notes",
    "extract_features",
    "feature_shapes",
    "notes_from_midi",
    "notes_from_score",
]

FEATURES = (
    "pc",
    "nc",
    "pch",
    "pctm",
    "pr",
    "pi",
    "ioi",
    "nlh",
    "nltm",
    "pc_seg",
    "nc_seg",
    "pch_seg",
    "ioi_seg",
)

# In beats (quarter notes), mgeval's order: whole, half, quarter, 8th, 16th, dotted half,
# dotted quarter, dotted 8th, dotted 16th, half triplet, quarter triplet, 8th triplet
# (mgeval: 96, 48, 24, 12, 6, 72, 36, 18, 9, 32, 16, 8 units of bar/96 in 4/4).
NOTE_LENGTH_CLASSES = np.array([96, 48, 24, 12, 6, 72, 36, 18, 9, 32, 16, 8], dtype=np.float64) / 24


@dataclass(frozen=True)
class FeatureConfig:
    """Knobs of the feature definitions; hashed into the evaluation id."""

    n_segments: int = 64
    pctm_time_thresh_s: float = 0.05

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def feature_shapes(config: FeatureConfig = FeatureConfig()) -> dict[str, tuple[int, ...]]:
    """Per-piece shape of each feature."""
    s = config.n_segments
    return {
        "pc": (),
        "nc": (),
        "pch": (12,),
        "pctm": (12, 12),
        "pr": (),
        "pi": (),
        "ioi": (),
        "nlh": (12,),
        "nltm": (12, 12),
        "pc_seg": (s,),
        "nc_seg": (s,),
        "pch_seg": (s, 12),
        "ioi_seg": (s,),
    }


@dataclass(frozen=True)
class Notes:
    """The notes of one piece, sorted by (onset, pitch): seconds, MIDI pitch, length in beats."""

    onset: np.ndarray  # [N] float64 seconds
    offset: np.ndarray  # [N] float64 seconds
    pitch: np.ndarray  # [N] int64
    beats: np.ndarray  # [N] float64 note length in quarter notes

    @classmethod
    def from_arrays(
        cls,
        onset: np.ndarray,
        offset: np.ndarray,
        pitch: np.ndarray,
        beats: np.ndarray | None = None,
        *,
        bpm: float = 120.0,
    ) -> Notes:
        """Sort and type-check raw arrays; `beats` defaults to the duration at a fixed `bpm`."""
        on = np.asarray(onset, dtype=np.float64).reshape(-1)
        off = np.asarray(offset, dtype=np.float64).reshape(-1)
        p = np.asarray(pitch, dtype=np.int64).reshape(-1)
        b = (off - on) * bpm / 60.0 if beats is None else np.asarray(beats, np.float64).reshape(-1)
        if not len(on) == len(off) == len(p) == len(b):
            msg = f"note arrays differ in length: {len(on)}, {len(off)}, {len(p)}, {len(b)}"
            raise ValueError(msg)
        if len(p) and (p.min() < 0 or p.max() > 127):
            msg = f"pitches must be MIDI numbers 0..127, got {p.min()}..{p.max()}"
            raise ValueError(msg)
        if np.any(off < on):
            msg = "a note ends before it starts (offset < onset); pass offsets, not durations"
            raise ValueError(msg)
        order = np.lexsort((p, on))
        return cls(on[order], off[order], p[order], b[order])

    def __len__(self) -> int:
        return len(self.pitch)


def notes_from_score(score: object) -> Notes:
    """Notes of all non-drum tracks of a symusic Score (any time unit)."""
    sec = score.to("second")  # type: ignore[attr-defined]
    qua = score.to("quarter")  # type: ignore[attr-defined]
    on, off, pitch, beats = [], [], [], []
    for ts, tq in zip(sec.tracks, qua.tracks, strict=True):
        if ts.is_drum or len(ts.notes) == 0:
            continue
        a, q = ts.notes.numpy(), tq.notes.numpy()
        t = a["time"].astype(np.float64)
        on.append(t)
        off.append(t + a["duration"].astype(np.float64))
        pitch.append(a["pitch"].astype(np.int64))
        beats.append(q["duration"].astype(np.float64))
    if not on:
        return Notes.from_arrays(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    cat = np.concatenate
    return Notes.from_arrays(cat(on), cat(off), cat(pitch), cat(beats))


def notes_from_midi(data: bytes) -> Notes:
    """Parse MIDI bytes with symusic (run untrusted files in an isolated worker)."""
    import symusic

    return notes_from_score(symusic.Score.from_midi(data))


# ---- the vectorized extractor ------------------------------------------------------------------


def _bincount(idx: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(idx, weights=weights, minlength=size).astype(np.float64)[:size]


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Divide each row (last axis) by its sum; all-zero rows stay zero."""
    s = x.sum(axis=-1, keepdims=True)
    return np.divide(x, s, out=np.zeros_like(x), where=s > 0)


def _mean_by(idx: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    total = _bincount(idx, size, values)
    count = _bincount(idx, size)
    return np.divide(total, count, out=np.zeros(size), where=count > 0)


def extract_features(
    pieces: Sequence[Notes], config: FeatureConfig = FeatureConfig()
) -> dict[str, np.ndarray]:
    """All features for a set of pieces: name -> array [P, *feature_shapes()[name]]."""
    n_p, n_s = len(pieces), config.n_segments
    counts = np.array([len(p) for p in pieces], dtype=np.int64)
    piece = np.repeat(np.arange(n_p), counts)
    cat = (lambda a: np.concatenate(a)) if n_p else (lambda a: np.zeros(0))
    onset = cat([p.onset for p in pieces]).astype(np.float64)
    offset = cat([p.offset for p in pieces]).astype(np.float64)
    pitch = cat([p.pitch for p in pieces]).astype(np.int64)
    beats = cat([p.beats for p in pieces]).astype(np.float64)
    pc12 = pitch % 12
    out: dict[str, np.ndarray] = {}

    # pitch content
    present = np.zeros((n_p, 128), dtype=bool)
    present[piece, pitch] = True
    out["pc"] = present.sum(axis=1).astype(np.float64)
    out["nc"] = counts.astype(np.float64)
    any_note = counts > 0
    lowest = np.argmax(present, axis=1)
    highest = 127 - np.argmax(present[:, ::-1], axis=1)
    out["pr"] = np.where(any_note, highest - lowest, 0).astype(np.float64)
    out["pch"] = _normalise_rows(
        _bincount(piece * 12 + pc12, n_p * 12, offset - onset).reshape(n_p, 12)
    )

    # consecutive notes (same piece) in (onset, pitch) order
    same = piece[1:] == piece[:-1]
    first = piece[1:][same]
    out["pi"] = _mean_by(first, np.abs(np.diff(pitch))[same].astype(np.float64), n_p)

    # note-length classes (ties go to the earlier class, like argmin)
    cls = np.argmin(np.abs(beats[:, None] - NOTE_LENGTH_CLASSES[None, :]), axis=1)
    out["nlh"] = _normalise_rows(_bincount(piece * 12 + cls, n_p * 12).reshape(n_p, 12))
    pair = first * 144 + cls[:-1][same] * 12 + cls[1:][same]
    out["nltm"] = _normalise_rows(_bincount(pair, n_p * 144).reshape(n_p, 144)).reshape(n_p, 12, 12)

    out["pctm"] = _pctm(piece, onset, offset, pc12, n_p, config.pctm_time_thresh_s)

    # distinct onsets -> IOI
    new_onset = np.ones(len(onset), dtype=bool)
    new_onset[1:] = ~same | (onset[1:] != onset[:-1])
    u_piece, u_onset = piece[new_onset], onset[new_onset]
    u_same = u_piece[1:] == u_piece[:-1]
    u_diff = np.diff(u_onset)
    out["ioi"] = _mean_by(u_piece[1:][u_same], u_diff[u_same], n_p)

    # equal-duration segments over [0, end of the last note]
    end = np.zeros(n_p)
    if len(offset):
        starts = np.cumsum(counts) - counts
        end[any_note] = np.maximum.reduceat(offset, starts[any_note])
    seg_len = np.where(end > 0, end, 1.0) / n_s
    L = seg_len[piece]
    seg = np.minimum(np.floor(onset / L), n_s - 1).astype(np.int64)
    cell = piece * n_s + seg
    out["nc_seg"] = _bincount(cell, n_p * n_s).reshape(n_p, n_s)
    keys = np.unique(cell * 128 + pitch)
    out["pc_seg"] = _bincount(keys // 128, n_p * n_s).reshape(n_p, n_s)
    u_seg = seg[new_onset]
    ok = u_same & (u_seg[1:] == u_seg[:-1])
    out["ioi_seg"] = _mean_by(u_piece[1:][ok] * n_s + u_seg[1:][ok], u_diff[ok], n_p * n_s).reshape(
        n_p, n_s
    )
    out["pch_seg"] = _pch_seg(piece, onset, offset, pc12, seg, L, n_p, n_s)
    return {k: out[k] for k in FEATURES}


def _pch_seg(
    piece: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    pc12: np.ndarray,
    seg: np.ndarray,
    L: np.ndarray,
    n_p: int,
    n_s: int,
) -> np.ndarray:
    """Sounding time per (piece, segment, pitch class): each note is split at segment borders."""
    last = np.minimum(np.floor(offset / L), n_s - 1).astype(np.int64)
    span = last - seg + 1
    rep = np.repeat(np.arange(len(seg)), span)
    k = seg[rep] + (np.arange(len(rep)) - np.repeat(np.cumsum(span) - span, span))
    lo = np.maximum(onset[rep], k * L[rep])
    hi = np.minimum(offset[rep], (k + 1) * L[rep])
    hi = np.where(k == n_s - 1, offset[rep], hi)  # the last segment holds the end exactly
    w = np.maximum(hi - lo, 0.0)
    idx = (piece[rep] * n_s + k) * 12 + pc12[rep]
    return _normalise_rows(_bincount(idx, n_p * n_s * 12, w).reshape(n_p, n_s, 12))


def _pctm(
    piece: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    pc12: np.ndarray,
    n_p: int,
    thresh: float,
) -> np.ndarray:
    """pretty_midi's transition rule without its N x N matrix: for each note's offset, find the
    onsets within the threshold by binary search on (piece, onset)-ordered keys."""
    if len(onset) == 0:
        return np.zeros((n_p, 12, 12))
    stride = float(max(offset.max(), onset.max())) + 4 * thresh + 1.0
    base = piece * stride
    key_on = base + onset  # sorted: notes are ordered by piece, then onset
    key_off = base + offset
    eps = 1e-6 + 1e-12 * stride * max(n_p, 1)  # widen, then filter exactly below
    lo = np.searchsorted(key_on, key_off - thresh - eps, side="left")
    hi = np.searchsorted(key_on, key_off + thresh + eps, side="right")
    n = hi - lo
    src = np.repeat(np.arange(len(onset)), n)
    dst = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(len(src))
    keep = (piece[src] == piece[dst]) & (np.abs(offset[src] - onset[dst]) < thresh)
    src, dst = src[keep], dst[keep]
    idx = piece[src] * 144 + pc12[src] * 12 + pc12[dst]
    return _normalise_rows(_bincount(idx, n_p * 144).reshape(n_p, 144)).reshape(n_p, 12, 12)
