"""REMI (Huang & Yang 2020, "Pop Music Transformer") through MidiTok, with the REMI+ extensions.

Paper: bar / position (16th-note grid in 4/4) / tempo / chord / velocity (32 bins) / pitch /
duration tokens. We keep its 32 velocity bins, tempo and chord tokens, and take MidiTok's finer
grid (8 positions per beat for the first 4 beats of a duration, 4 up to 12, whole beats up to 64:
the paper and MidiTok stop short of real scores' long notes, see `base.BEAT_GRID`). Deviation:
the paper is single-track piano in 4/4; real corpora are multi-track with odd meters, so we enable
program tokens in one stream and time-signature tokens (REMI+, von Rütte et al. 2023, FIGARO).
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding


class Remi(MidiTokEncoding):
    name = "remi"
    kind = "flat"
    version = 3  # 3: durations to 64 beats
    paper = "Huang & Yang 2020 (arXiv 2002.00212); REMI+ of von Rütte et al. 2023"
    tokenizer_class = "REMI"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "use_chords": True,
        "use_rests": False,
    }
