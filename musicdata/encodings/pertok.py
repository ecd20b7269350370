"""PerTok (Lenz & Mani 2024, Cadenza, arXiv 2410.02060) through MidiTok, at the paper's settings.

PerTok separates the score-level grid from the performance: time shifts and durations on a grid
that admits both straight and triplet subdivisions, plus MicroTiming tokens for the remainder
(here +-1/8 quarter in 30 bins), velocity and duration tokens, and Bar tokens. 480 ticks per
quarter admits 16ths (120) and eighth triplets (160) exactly. PerTok counts in quarters, whatever
the meter. Durations (and time shifts): 16ths and triplets up to 4 quarters, whole quarters up to
64. Deviations: programs in one stream and time signatures for real multi-track files (Cadenza
models single-instrument ideas); the wide time-signature range keeps 2/2 and 3/2 pieces (MidiTok's
default raised KeyError 'TimeSig_2/2' on a real cut-time piece); durations to 64 quarters where
this encoding had 15 (MidiTok's PerTok ranges exclude their end, so "4-16" stopped at 15 and a
longer note was written as 15): "4-65" covers the 32-quarter cap of `normalize` and tied notes.

Fixed MidiTok defects (`pertok_tokenizer.PerTokTokenizer`): its preprocessing quantized onsets
to 4 per beat in pieces with two time-signature denominators, erasing microtiming (769 of 88,640
notes of the music21 benchmark moved); and its bars were denominator/4 * numerator quarters (12
for 6/8, 1 for 2/2) counted from the start of the piece, so Bar tokens missed the bar lines.
Bars here are 4/denominator * numerator quarters from the last bar line.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.base import MULTITRACK, MidiTokEncoding
from musicdata.encodings.fidelity import Resolution, grid_tolerance


class PerTok(MidiTokEncoding):
    name = "pertok"
    kind = "flat"
    version = 3  # 2: durations to 64 quarters; 3: bars on the score's bar lines
    paper = "Lenz & Mani 2024, Cadenza/PerTok (arXiv 2410.02060)"
    tokenizer_class = "PerTok"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        "beat_res": {"0-4": 4, "0-3": 3, "4-65": 1},
        "num_velocities": 32,
        "use_velocities": True,
        "use_note_duration_programs": list(range(-1, 128)),
        "use_chords": False,
        "use_tempos": False,
        "use_rests": False,
        "use_microtiming": True,
        "ticks_per_quarter": 480,
        "max_microtiming_shift": 0.125,
        "num_microtiming_bins": 30,
    }

    def _tokenizer_class(self) -> Any:
        from musicdata.encodings.pertok_tokenizer import PerTokTokenizer

        return PerTokTokenizer

    def duration_grid(self) -> np.ndarray:
        """PerTok's duration tuples are (quarters, ticks, ticks per quarter): in quarters."""
        return np.array([b + t / tpq for b, t, tpq in self.tokenizer.durations], dtype=np.float64)

    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """PerTok works in quarters, whatever the meter: onsets to half a MicroTiming bin,
        durations to half the local step of its duration tokens (no microtiming on them), each
        plus half a tick of its `ticks_per_quarter` (the score is resampled to it first)."""
        del score
        tok = self.tokenizer
        tpq = tok.tpq
        if tok.use_microtiming:
            onset_step = float(np.diff(tok.microtiming_tick_values).max()) / tpq
        else:
            onset_step = float(np.diff(tok.timeshift_tick_values).min()) / tpq
        dur_tol, max_q = grid_tolerance(notes[:, 2], self.duration_grid())
        n, half_tick = len(notes), 0.5 / tpq
        return Resolution(
            np.full(n, onset_step / 2 + half_tick), dur_tol + half_tick, np.full(n, max_q)
        )
