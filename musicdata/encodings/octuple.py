"""Octuple (Zeng et al. 2021, "MusicBERT") through MidiTok.

Paper: one 8-tuple per note: time signature, tempo, bar, position, instrument, pitch, duration,
velocity. We keep all eight, MusicBERT's 256 bar embeddings (MidiTok's default is 60), 32
velocity bins and MidiTok's 8-per-beat grid. A piece longer than 256 bars loses the notes after
bar 256: the fidelity measure reports it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding


class Octuple(MidiTokEncoding):
    name = "octuple"
    kind = "compound"
    version = 1
    paper = "Zeng et al. 2021, MusicBERT (arXiv 2106.05630)"
    tokenizer_class = "Octuple"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "max_bar_embedding": 256,
    }
