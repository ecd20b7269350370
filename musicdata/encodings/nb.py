"""`nb-mf` and `nb-pf`: the Nested Music Transformer's note-based encoding (arXiv 2408.01180).

The tokenizer itself is `nb_tokenizer.NBTokenizer` (a MidiTok tokenizer). Settings come as named
presets (`[encodings.nb-pf] preset = "pop"`; `nb_presets.PRESETS`), each hashed into the config:

- `musicdata` (default): 8 sub-tokens (type, beat, chord, tempo, instrument, pitch, duration,
  velocity); 12 positions per quarter in every meter (16ths and triplets, in x/2 meters too);
  MidiTok's duration grid to 12 beats, 32 velocity bins, 32 tempo bins (40-250 bpm), MidiTok's
  chord detection, every program, every empty bar. Deviation from the paper's code: no note
  reduction (the notes as written, up to NB's own merge of same onset/instrument/pitch).
- `pop` / `sod`: the official preprocessing's settings (4 / 12 positions per quarter), its note
  reduction (`nb_presets.reduce_score`) and 5 features' worth of sub-tokens (no chord, no tempo;
  velocity in 5 bins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding
from musicdata.encodings.fidelity import Resolution, grid_tolerance, score_notes
from musicdata.encodings.nb_presets import apply_preset, leading_offset, reduce_score

NB_DEFAULTS: dict[str, Any] = {
    **MULTITRACK,
    **BEAT_GRID,
    # MidiTok's grid holds 12 per quarter in every meter (24 per beat: 12 per quarter in x/2);
    # NB places onsets on `positions_per_quarter`
    "beat_res": {"0-1": 24, "1-4": 12, "4-12": 4},
    "use_chords": True,
    "use_rests": False,
    "programs": list(range(-1, 128)),  # MidiTok's default; -1 is drums
    "preset": "musicdata",
    "positions_per_quarter": 12,
    "duration_bins": None,  # grid steps; None: MidiTok's duration tokens
    "max_empty_bars": 0,  # 0: every empty bar
    "nmt_reduction": False,  # the official step-1 note reduction (nb_presets.reduce_score)
    "max_tracks": 16,  # used by the reduction only
}


class _NoteBased(MidiTokEncoding):
    kind = "compound"
    # 2: pitch range inclusive as MidiTok's (pitch 109 raised KeyError); 3: grid per quarter
    # (x/2 meters hold 16ths), presets
    version = 3
    paper = "Ryu et al. 2024, Nested Music Transformer (arXiv 2408.01180)"
    tokenizer_class = "NBTokenizer"
    lossless = False  # merges notes with the same onset, instrument and pitch (paper's de-dup)

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        super().__init__(apply_preset(dict(overrides or {})))

    def _tokenizer_class(self) -> Any:
        from musicdata.encodings.nb_tokenizer import NBTokenizer

        return NBTokenizer

    def _notes_of(self, score: Any) -> Any:
        """The score NB encodes: the official reduction for the paper presets, else as is."""
        return reduce_score(score, self.params) if self.params["nmt_reduction"] else score

    def encode(self, score: Any) -> np.ndarray:
        return super().encode(self._notes_of(score))

    def reference_notes(self, score: Any) -> np.ndarray:
        """The notes as written; the paper presets' reduction counts as loss (pruned notes,
        pitches outside 12..119, onsets off the grid), measured from where it starts the piece
        (after the leading empty bars it removes)."""
        notes = score_notes(score, self.time_unit)
        if self.params["nmt_reduction"] and len(notes):
            notes[:, 1] -= leading_offset(score, self.params) / score.ticks_per_quarter
        return notes

    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """Onsets on `positions_per_quarter`; durations on the bins (presets) or MidiTok's grid."""
        onset_tol = np.full(len(notes), 0.5 / self.params["positions_per_quarter"])
        bins = self.params["duration_bins"]
        if bins:
            grid = np.asarray(bins, dtype=np.float64) / self.params["positions_per_quarter"]
            dur_tol, longest = grid_tolerance(notes[:, 2], grid)
            return Resolution(onset_tol, dur_tol, np.full(len(notes), longest))
        base = super().resolution(score, notes)
        return Resolution(onset_tol, base.dur_tol, base.max_dur)


class NoteBasedMetricFirst(_NoteBased):
    name = "nb-mf"
    defaults: ClassVar[dict[str, Any]] = {**NB_DEFAULTS, "nb_order": "mf"}


class NoteBasedPitchFirst(_NoteBased):
    name = "nb-pf"
    defaults: ClassVar[dict[str, Any]] = {**NB_DEFAULTS, "nb_order": "pf"}
