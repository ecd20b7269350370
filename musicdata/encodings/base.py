"""The one interface every encoding implements, and the MidiTok-backed base most of them share.

An encoding is: paper defaults + user overrides -> a resolved parameter dict, whose hash (with the
encoding's code version) keys its shards in lineage; encode(score) -> token array; decode back to
a score, so round-trip fidelity can be measured; and a config file saved beside the shards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.fidelity import EPS, Resolution, grid_tolerance
from musicdata.encodings.normalize import PARAM as NORMALIZE_PARAM
from musicdata.encodings.normalize import apply_params
from musicdata.schemas.config import config_hash

# Real corpora have cut time, 3/2 chorales, 6/8 jigs and 7/8 dances; MidiTok's default range has
# no x/2 meters (PerTok then raised KeyError 'TimeSig_2/2' on a real piece). Shared by all
# beat-based encodings; TOML keys are strings ("2" = denominator).
TIME_SIGNATURE_RANGE: dict[str, list[int]] = {
    "2": [1, 2, 3, 4, 5, 6],
    "4": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "8": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    "16": [3, 5, 6, 7, 9, 12, 15],
}

# Multi-track pieces in one stream (programs as tokens), 88-key pitch range, the special tokens
# every model here uses. Each encoding adds its paper's own settings on top.
MULTITRACK: dict[str, Any] = {
    "pitch_range": (21, 109),
    "special_tokens": ["PAD", "BOS", "EOS", "MASK"],
    "use_programs": True,
    "one_token_stream_for_programs": True,
    "use_time_signatures": True,
    "time_signature_range": TIME_SIGNATURE_RANGE,
    "use_sustain_pedals": False,
    "use_pitch_bends": False,
}


# The beat grid, velocity and tempo bins of the beat-based encodings: REMI's paper values (32
# velocity bins, 32 tempo bins in 40-250 bpm) on MidiTok's grid (8 positions per beat for
# durations up to 4 beats, 4 up to 12), extended by whole beats up to 64 beats. Deviation: MidiTok
# (and REMI's 2 bars) stop at 12 beats, and real scores hold notes longer (tied whole notes,
# pedal tones in quartets: 11k notes in 39 of 172 music21 files were clipped to 12 beats). 64 beats
# cover 32 quarters in any meter up to x/8, the cap of `normalize.normalize_notes`.
BEAT_GRID: dict[str, Any] = {
    "beat_res": {"0-4": 8, "4-12": 4, "12-64": 1},
    "num_velocities": 32,
    "use_tempos": True,
    "num_tempos": 32,
    "tempo_range": (40, 250),
}


class EncodingError(ValueError):
    """A piece this encoding cannot represent; the message is the quarantine detail."""


class Encoding(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]  # "flat": int32 [T]; "compound": int16 [T, F]
    version: ClassVar[int]  # bump when encode() output changes for the same params
    paper: ClassVar[str]  # where the defaults come from
    defaults: ClassVar[Mapping[str, Any]]
    lossless: ClassVar[bool] = True  # lossless in principle (up to its time resolution)
    time_unit: ClassVar[str] = "quarters"  # fidelity compares onsets/durations in this unit
    note_offs: ClassVar[bool] = False  # durations come from pairing note-off events

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        # `normalize` (a workspace's [ingest] normalization, normalize.normalization_params) is
        # accepted by every encoding: hashed with its params, applied by `prepare`.
        unknown = set(overrides or {}) - set(self.defaults) - {NORMALIZE_PARAM}
        if unknown:
            msg = (
                f"[encodings.{self.name}]: unknown parameter(s) {sorted(unknown)}; "
                f"known: {', '.join(sorted(self.defaults))}"
            )
            raise ValueError(msg)
        self.params: dict[str, Any] = {**self.defaults, **(overrides or {})}

    @cached_property
    def config_hash(self) -> str:
        return config_hash({"encoding": self.name, "version": self.version, "params": self.params})

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    def prepare(self, score: Any) -> Any:
        """The score this encoding tokenizes: normalized when its params say so, else as is."""
        return apply_params(score, self.params.get(NORMALIZE_PARAM))

    @abstractmethod
    def encode(self, score: Any) -> np.ndarray:
        """symusic.Score -> int32 [T] (flat) or int16 [T, F] (compound)."""

    @abstractmethod
    def decode(self, tokens: np.ndarray) -> Any:
        """Token array -> symusic.Score."""

    @abstractmethod
    def save_config(self, directory: Path) -> Path:
        """Write what it takes to rebuild this tokenizer; returns the file written."""

    @property
    def sub_tokens(self) -> list[str] | None:
        """Field names of a compound token, in order (None for flat encodings)."""
        return None

    @property
    def sub_vocab_sizes(self) -> list[int] | None:
        return None

    def reference_notes(self, score: Any) -> np.ndarray:
        """The notes this encoding promises to keep, float64 [N, 3]: pitch, onset, duration in
        `time_unit`. Fidelity is measured against these."""
        from musicdata.encodings.fidelity import score_notes

        return score_notes(score, self.time_unit)

    @abstractmethod
    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """Per-note half-step tolerances and longest writable duration (in `time_unit`): the
        encoding's own grid at each note, so fidelity is strict per encoding."""

    def pitch_in_range(self, pitches: np.ndarray) -> np.ndarray:
        """Which pitches the encoding can write (bool per note); MidiTok ranges are inclusive."""
        lo, hi = self.params.get("pitch_range", (0, 127))
        return (pitches >= lo) & (pitches <= hi)


class MidiTokEncoding(Encoding):
    """An encoding backed by a MidiTok tokenizer class (vocab, save/load and hub come from it)."""

    tokenizer_class: ClassVar[str]  # attribute name in the miditok package
    # Token types that carry a note; a sequence without one encodes no music (all notes outside the
    # tokenizer's pitch range, say) and is quarantined rather than written as a bar-only sequence.
    note_token_prefixes: ClassVar[tuple[str, ...]] = (
        "Pitch_",
        "PitchDrum_",
        "PitchIntervalTime_",
        "PitchIntervalChord_",
    )

    @cached_property
    def tokenizer(self) -> Any:
        import miditok

        params = {
            k: (dict(v) if isinstance(v, Mapping) else v)
            for k, v in self.params.items()
            if k != NORMALIZE_PARAM  # applied to the score by `prepare`, not a MidiTok setting
        }
        beat_res = params.pop("beat_res", None)
        if beat_res is not None:  # TOML/JSON keys are strings "0-4"; MidiTok wants (0, 4) tuples
            params["beat_res"] = {_range_key(k): v for k, v in beat_res.items()}
        ts_range = params.pop("time_signature_range", None)
        if ts_range is not None:
            params["time_signature_range"] = {int(k): list(v) for k, v in ts_range.items()}
        return self._tokenizer_class()(miditok.TokenizerConfig(**params))

    def _tokenizer_class(self) -> Any:
        import miditok

        return getattr(miditok, self.tokenizer_class)

    def encode(self, score: Any) -> np.ndarray:
        seq = self.tokenizer.encode(score)
        if isinstance(seq, list):  # one sequence per track: this config must be one stream
            msg = f"{self.name}: tokenizer returned one sequence per track; set one_token_stream"
            raise EncodingError(msg)
        if not any(str(t).startswith(self.note_token_prefixes) for t in _flatten(seq.tokens)):
            lo, hi = self.params.get("pitch_range", ("?", "?"))
            msg = f"no note tokens: no note falls in the tokenizer's pitch range {lo}..{hi}"
            raise EncodingError(msg)
        return np.asarray(seq.ids, dtype=np.int32 if self.kind == "flat" else np.int16)

    def decode(self, tokens: np.ndarray) -> Any:
        ids = np.asarray(tokens).tolist()
        return self.tokenizer.decode(ids if self.tokenizer.one_token_stream else [ids])

    def save_config(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(directory, filename="tokenizer.json")
        return directory / "tokenizer.json"

    @property
    def vocab_size(self) -> int:
        voc = self.tokenizer.vocab
        return sum(len(v) for v in voc) if isinstance(voc, list) else len(self.tokenizer)

    @property
    def sub_tokens(self) -> list[str] | None:
        if self.kind == "flat":
            return None
        names: dict[int, str] = {}
        for name, idx in self.tokenizer.vocab_types_idx.items():
            names.setdefault(idx, name)  # CPWord maps Bar and Position to one field
        return [names[i] for i in range(len(self.tokenizer.vocab))]

    @property
    def sub_vocab_sizes(self) -> list[int] | None:
        return None if self.kind == "flat" else [len(v) for v in self.tokenizer.vocab]

    def duration_grid(self) -> np.ndarray:
        """Every duration the tokenizer can write, in beats (MidiTok's (beat, pos, res) tuples)."""
        return np.array([b + p / r for b, p, r in self.tokenizer.durations], dtype=np.float64)

    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """MidiTok's grid: onsets on `max_num_pos_per_beat` positions per beat, durations on the
        duration tokens; a beat is the denominator of the time signature in force at the note
        (only signatures the tokenizer knows: MidiTok drops the others and the previous one
        stays in force)."""
        beat_q = _beat_quarters(score, notes[:, 1], set(self.tokenizer.time_signatures))
        onset_tol = beat_q / self.tokenizer.config.max_num_pos_per_beat / 2
        dur_tol, max_beats = grid_tolerance(notes[:, 2] / beat_q, self.duration_grid())
        return Resolution(onset_tol, dur_tol * beat_q, max_beats * beat_q)


def _beat_quarters(score: Any, onsets_q: np.ndarray, known: set[tuple[int, int]]) -> np.ndarray:
    """Length in quarters of the beat (4 / denominator) in force at each onset."""
    tpq = score.ticks_per_quarter
    sigs = [(0.0, 4)]
    for ts in sorted(score.time_signatures, key=lambda t: t.time):
        if (ts.numerator, ts.denominator) in known:
            sigs.append((ts.time / tpq, ts.denominator))
    times = np.array([t for t, _ in sigs])
    dens = np.array([d for _, d in sigs], dtype=np.float64)
    idx = np.searchsorted(times, onsets_q + EPS, side="right") - 1
    return 4.0 / dens[np.clip(idx, 0, len(dens) - 1)]


def _flatten(tokens: list) -> list:
    """Compound tokenizers give a list of lists of token strings; flat ones a list."""
    return [t for item in tokens for t in (item if isinstance(item, list) else [item])]


def _range_key(key: Any) -> tuple[int, int]:
    if isinstance(key, tuple):
        return key
    lo, hi = str(key).split("-")
    return int(lo), int(hi)
