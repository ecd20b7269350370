"""Compound Word (Hsiao et al. 2021, "Compound Word Transformer") through MidiTok's CPWord.

Paper: tokens grouped into compound words of two families, metric (bar / beat position, tempo,
chord) and note (pitch, duration, velocity), each sub-token with its own vocabulary. We keep the
paper's families, tempo and chord sub-tokens, 32 velocity bins; MidiTok's grid of 8 positions per
beat. Deviations: program and time-signature sub-tokens (the paper is piano-only in 4/4);
durations to 64 beats (`base.BEAT_GRID`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding


class CompoundWord(MidiTokEncoding):
    name = "cp"
    kind = "compound"
    version = 2  # 2: durations to 64 beats
    paper = "Hsiao et al. 2021 (arXiv 2101.02402)"
    tokenizer_class = "CPWord"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "use_chords": True,
        "use_rests": False,
    }
