"""Octuple (Zeng et al. 2021, "MusicBERT") through MidiTok; long pieces and meter changes fixed.

Paper: one 8-tuple per note: time signature, tempo, bar, position, instrument, pitch, duration,
velocity. We keep all eight, MusicBERT's 256 bar embeddings (MidiTok's default is 60), 32
velocity bins and MidiTok's 8-per-beat grid, with the shared duration range (to 64 beats, see
`base.BEAT_GRID`). Deviations, both in `octuple_tokenizer.OctupleTokenizer`:

- a piece longer than 256 bars is written as segments of at most 256 bars (bar numbers restart;
  each later segment opens with a meter row), where MidiTok clips it to its first 256 bars and
  MusicBERT's preprocessing chunks it; `segment_starts(tokens)` gives the cut points, so a row
  per segment (piece id + segment index) can be stored, and the whole sequence decodes whole;
- a time signature change on a bar without onsets gets a meter row (one extra special token,
  `Meter`), where MidiTok and MusicBERT shift every later note.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding


class Octuple(MidiTokEncoding):
    name = "octuple"
    kind = "compound"
    version = 2
    paper = "Zeng et al. 2021, MusicBERT (arXiv 2106.05630)"
    tokenizer_class = "Octuple"
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "special_tokens": [*MULTITRACK["special_tokens"], "Meter"],
        "max_bar_embedding": 256,
    }

    def _tokenizer_class(self) -> Any:
        from musicdata.encodings.octuple_tokenizer import OctupleTokenizer

        return OctupleTokenizer

    def segment_starts(self, tokens: np.ndarray) -> list[int]:
        """Row indices where each segment of at most `max_bar_embedding` bars begins."""
        return self.tokenizer.segment_starts(tokens)
