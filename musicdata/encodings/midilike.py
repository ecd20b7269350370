"""MIDI-like (Oore et al. 2018, "This time with feeling") through MidiTok's MIDILike.

Paper: note-on / note-off / time-shift / velocity events. MidiTok's MIDILike keeps the event
structure with time shifts on a beat grid (8 per beat up to 4 beats, 4 up to 12) instead of the
paper's absolute 10 ms steps; the absolute-time variant is the `performance` encoding. 32
velocity bins as in the paper; programs and tempo/time-signature tokens for real multi-track files.
"""

from __future__ import annotations

from typing import Any, ClassVar

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, MidiTokEncoding


class MidiLike(MidiTokEncoding):
    name = "midilike"
    kind = "flat"
    version = 1
    paper = "Oore et al. 2018 (arXiv 1808.03715) via MidiTok"
    tokenizer_class = "MIDILike"
    note_token_prefixes = ("NoteOn_", "DrumOn_")
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "use_rests": False,
    }
