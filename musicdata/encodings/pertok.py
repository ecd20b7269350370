"""PerTok (Lenz & Mani 2024, Cadenza, arXiv 2410.02060) through MidiTok, at the paper's settings.

PerTok separates the score-level grid from the performance: time shifts and durations on a grid
that admits both straight and triplet subdivisions, plus MicroTiming tokens for the remainder
(here +-1/8 quarter in 30 bins), velocity and duration tokens, and Bar tokens. 480 ticks per
quarter admits 16ths (120) and eighth triplets (160) exactly. Durations: 16ths and triplets up to
4 beats, whole beats up to 16. Deviations: programs in one stream and time signatures for real
multi-track files (Cadenza models single-instrument ideas); the wide time-signature range keeps
2/2 and 3/2 pieces (MidiTok's default raised KeyError 'TimeSig_2/2' on a real cut-time piece).
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import MULTITRACK, MidiTokEncoding


class PerTok(MidiTokEncoding):
    name = "pertok"
    kind = "flat"
    version = 1
    paper = "Lenz & Mani 2024, Cadenza/PerTok (arXiv 2410.02060)"
    tokenizer_class = "PerTok"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        "beat_res": {"0-4": 4, "0-3": 3, "4-16": 1},
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
