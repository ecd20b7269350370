"""MIDI-like (Oore et al. 2018, "This time with feeling") through MidiTok's MIDILike.

Paper: note-on / note-off / time-shift / velocity events. MidiTok's MIDILike keeps the event
structure with time shifts on a beat grid (the shared `base.BEAT_GRID`) instead of the paper's
absolute 10 ms steps; the absolute-time variant is the `performance` encoding. 32 velocity bins as
in the paper; program, tempo and time-signature tokens for real multi-track files.

Deviation, so that it stays lossless: one event stream *per track*, the tracks concatenated one
after another, each opened by a `Track` special token (as MMM, Ens & Pasquier 2020, lays tracks
out). In a single stream, tracks of the same program (two violins) are merged and a note-off can
only name (program, pitch): when one violin re-strikes a pitch the other still holds, note-offs
pair with the wrong note-ons and durations change. Per track, the events are the track's own MIDI
events, so first-in-first-out pairing gives back exactly the notes the MIDI file held. Tempo and
time-signature tokens are repeated in each track; the first track's are decoded. The single
stream stays available (`one_token_stream_for_programs = true`), marked lossy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.base import BEAT_GRID, MULTITRACK, EncodingError, MidiTokEncoding
from musicdata.encodings.fidelity import Resolution

TRACK = "Track_None"


class MidiLike(MidiTokEncoding):
    name = "midilike"
    kind = "flat"
    version = 2
    paper = "Oore et al. 2018 (arXiv 1808.03715) via MidiTok; tracks laid out as in MMM"
    tokenizer_class = "MIDILike"
    note_token_prefixes = ("NoteOn_", "DrumOn_")
    note_offs = True
    defaults: ClassVar[dict[str, Any]] = {
        **MULTITRACK,
        **BEAT_GRID,
        "special_tokens": [*MULTITRACK["special_tokens"], "Track"],
        "one_token_stream_for_programs": False,
        "use_rests": False,
    }

    @property
    def lossless(self) -> bool:  # type: ignore[override]
        """The single-stream variant (`one_token_stream_for_programs = true`) is MidiTok's
        default layout and lossy on same-program tracks (see the module docstring)."""
        return not self.params["one_token_stream_for_programs"]

    def encode(self, score: Any) -> np.ndarray:
        if self.tokenizer.one_token_stream:
            return super().encode(score)
        seqs = self.tokenizer.encode(score)
        seqs = seqs if isinstance(seqs, list) else [seqs]
        track = self.tokenizer.vocab[TRACK]
        ids: list[int] = []
        for seq in seqs:
            if any(str(t).startswith(self.note_token_prefixes) for t in seq.tokens):
                ids += [track, *seq.ids]
        if not ids:
            lo, hi = self.params["pitch_range"]
            msg = f"no note tokens: no note falls in the tokenizer's pitch range {lo}..{hi}"
            raise EncodingError(msg)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, tokens: np.ndarray) -> Any:
        if self.tokenizer.one_token_stream:
            return super().decode(tokens)
        ids = np.asarray(tokens).tolist()
        track = self.tokenizer.vocab[TRACK]
        tracks: list[list[int]] = []
        for i in ids:
            if i == track:
                tracks.append([])
            elif tracks:
                tracks[-1].append(i)
        tracks = [t for t in tracks if t]
        if not tracks:
            msg = f"{self.name}: no {TRACK} token, nothing to decode"
            raise ValueError(msg)
        return self.tokenizer.decode(tracks)

    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """Note-on and note-off are both quantized to the onset grid, so a duration may move by
        a whole step; time shifts chain, so there is no longest duration."""
        res = super().resolution(score, notes)
        step = 2 * res.onset_tol
        return Resolution(res.onset_tol, step, np.full(len(notes), np.inf))
