"""`nb-mf` and `nb-pf`: the Nested Music Transformer's note-based encoding (arXiv 2408.01180).

The tokenizer itself is `nb_tokenizer.NBTokenizer` (a MidiTok tokenizer); these registry entries
hold the paper's settings: 8 sub-tokens (type, beat, chord, tempo, instrument, pitch, duration,
velocity), 12 positions per beat (the paper's in-beat resolution, which admits 16ths and
triplets), 32 velocity bins, tempo and chord sub-tokens. Deviation: MidiTok's chord detection and
tempo bins (32 between 40 and 250 bpm) stand in for the paper's chord annotations and raw tempo.
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding

NB_DEFAULTS: dict[str, Any] = {
    **MULTITRACK,
    **BEAT_GRID,
    "beat_res": {"0-4": 12, "4-12": 4},
    "use_chords": True,
    "use_rests": False,
}


class _NoteBased(MidiTokEncoding):
    kind = "compound"
    version = 2  # 2: pitch range inclusive as MidiTok's (pitch 109 raised KeyError)
    paper = "Ryu et al. 2024, Nested Music Transformer (arXiv 2408.01180)"
    tokenizer_class = "NBTokenizer"
    lossless = False  # merges notes with the same onset, instrument and pitch (paper's de-dup)

    def _tokenizer_class(self) -> Any:
        from musicdata.encodings.nb_tokenizer import NBTokenizer

        return NBTokenizer


class NoteBasedMetricFirst(_NoteBased):
    name = "nb-mf"
    defaults: ClassVar[dict[str, Any]] = {**NB_DEFAULTS, "nb_order": "mf"}


class NoteBasedPitchFirst(_NoteBased):
    name = "nb-pf"
    defaults: ClassVar[dict[str, Any]] = {**NB_DEFAULTS, "nb_order": "pf"}
