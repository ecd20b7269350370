"""MidiTok's Octuple with two fixes for real scores: segments instead of a silent clip, and time
signature changes on bars without notes.

1. **Segments.** MusicBERT has `max_bar_embedding` (256) bar embeddings; MidiTok clips a longer
   piece to its first 256 bars (with a warning) and the rest of the notes are gone. Here bar
   numbers restart every `max_bar_embedding` bars: bar b is written `Bar_{b mod 256}` inside
   segment b // 256, and every segment after the first opens with a *meter row* at its bar 0.
   Cutting the sequence at those rows (`segment_starts`) gives pieces of at most 256 bars that
   each decode on their own, as MusicBERT's preprocessing chunks long pieces; decoding the whole
   sequence adds 256 bars at each segment row, so nothing is dropped.
2. **Meter rows.** Octuple carries the time signature on each note, so a change on a bar with no
   onset only shows at the next note, and MidiTok's decoder (like MusicBERT's, which gives empty
   bars the previous bar's signature) counts the bars in between with the old bar length: every
   later note moves. A meter row `[Meter, Position_0, Bar_b, Meter, Meter, Meter, Tempo,
   TimeSig_n/d]` marks the change at its own bar. It is written only where needed (the next note
   is not on that bar with that signature) and at segment starts. `Meter` is one extra special
   token, present in every field's vocabulary.

One token stream (programs as a field) only, as every encoding here is configured.
"""

from __future__ import annotations

from typing import Any

import miditok
import numpy as np
from miditok.classes import Event
from miditok.constants import DEFAULT_VELOCITY, MIDI_INSTRUMENTS, TIME_SIGNATURE
from miditok.utils import compute_ticks_per_bar, compute_ticks_per_beat
from symusic import Note, Score, Tempo, TimeSignature, Track

METER = "Meter"
SPECIAL_PREFIXES = ("PAD_", "BOS_", "EOS_", "MASK_")


class OctupleTokenizer(miditok.Octuple):
    """Octuple with segments and meter rows (see the module docstring)."""

    def _tweak_config_before_creating_voc(self) -> None:
        super()._tweak_config_before_creating_voc()
        assert self.config.one_token_stream_for_programs, "OctupleTokenizer is one stream"
        assert f"{METER}_None" in self.config.special_tokens, (
            f"OctupleTokenizer needs the special token {METER!r} (meter rows)"
        )

    @property
    def max_bar(self) -> int:
        return int(self.config.additional_params["max_bar_embedding"])

    def _score_to_tokens(self, score: Score, attribute_controls_indexes: Any = None) -> Any:
        """No clip: long pieces become segments (skips miditok.Octuple's override)."""
        del attribute_controls_indexes
        return miditok.MusicTokenizer._score_to_tokens(self, score)

    def _add_time_events(self, events: list[Event], time_division: int) -> list[list[Event]]:
        """MidiTok's loop (bar/position from the time signature in force), plus meter rows."""
        rows: list[tuple[list[Event], bool, int]] = []  # (row, segment start, absolute bar)
        bar = bar_from_ts = tick_from_ts = pos = previous_tick = 0
        ts = tuple(TIME_SIGNATURE)
        tempo, program = self.default_tempo, 0
        ticks_bar = compute_ticks_per_bar(TimeSignature(0, *ts), time_division)
        ticks_pos = compute_ticks_per_beat(ts[1], time_division) // self.config.max_num_pos_per_beat
        segment = 0
        offset = (1 if self.config.use_velocities else 0) + (
            1 if self.config.using_note_duration_tokens else 0
        )

        def meter_row(at_bar: int) -> list[Event]:
            row = [Event(METER, "None"), Event("Position", 0), Event("Bar", at_bar % self.max_bar)]
            row += [Event(METER, "None")] * (len(self.vocab) - 3)
            if self.config.use_tempos:
                row[self.vocab_types_idx["Tempo"]] = Event("Tempo", tempo)
            if self.config.use_time_signatures:
                row[self.vocab_types_idx["TimeSig"]] = Event("TimeSig", f"{ts[0]}/{ts[1]}")
            return row

        def open_segments(at_bar: int) -> None:
            nonlocal segment
            while at_bar // self.max_bar > segment:
                segment += 1
                rows.append((meter_row(segment * self.max_bar), True, segment * self.max_bar))

        for e, event in enumerate(events):
            if event.time != previous_tick:
                bar = bar_from_ts + (event.time - tick_from_ts) // ticks_bar
                bar_tick = tick_from_ts + (bar - bar_from_ts) * ticks_bar
                pos = (event.time - bar_tick) // ticks_pos
                previous_tick = event.time
            if event.type_ == "TimeSig":
                ts = tuple(map(int, event.value.split("/")))
                bar_from_ts, tick_from_ts = bar, previous_tick
                ticks_bar = compute_ticks_per_bar(TimeSignature(event.time, *ts), time_division)
                ticks_pos = (
                    compute_ticks_per_beat(ts[1], time_division) // self.config.max_num_pos_per_beat
                )
                open_segments(bar)
                if not self.config.use_time_signatures:
                    continue
                if rows and rows[-1][0][0].type_ == METER and rows[-1][2] == bar:
                    rows[-1] = (meter_row(bar), rows[-1][1], bar)  # the newest signature
                else:
                    rows.append((meter_row(bar), False, bar))
            elif event.type_ == "Tempo":
                tempo = event.value
            elif event.type_ == "Program":
                program = event.value
            elif event.type_ in {"Pitch", "PitchDrum"} and e + offset < len(events):
                open_segments(bar)
                row = [
                    Event(event.type_, event.value),
                    Event("Position", pos),
                    Event("Bar", bar % self.max_bar),
                ]
                if self.config.use_velocities:
                    row.append(Event("Velocity", events[e + 1].value))
                if self.config.using_note_duration_tokens:
                    row.append(Event("Duration", events[e + offset].value))
                if self.config.use_programs:
                    row.append(Event("Program", program))
                if self.config.use_tempos:
                    row.append(Event("Tempo", tempo))
                if self.config.use_time_signatures:
                    row.append(Event("TimeSig", f"{ts[0]}/{ts[1]}"))
                rows.append((row, False, bar))
        ts_field = self.vocab_types_idx.get("TimeSig")
        return _drop_redundant_meter_rows(rows, ts_field)

    def _tokens_to_score(self, tokens: Any, programs: Any = None) -> Score:
        del programs
        seq = tokens[0] if isinstance(tokens, list) else tokens
        tpq = self.time_division
        idx = self.vocab_types_idx
        score = Score(tpq)
        tracks: dict[int, Track] = {}
        ts_changes: list[TimeSignature] = []
        tempos: list[Tempo] = []
        cur = None  # (numerator, denominator) in force
        bar_at_ts = tick_at_ts = 0
        ticks_bar = ticks_beat = ticks_pos = 0
        segment, seen = 0, False

        def set_ts(at_bar: int, num: int, den: int) -> None:
            nonlocal cur, bar_at_ts, tick_at_ts, ticks_bar, ticks_beat, ticks_pos
            if cur == (num, den):
                return
            if cur is not None:
                tick_at_ts += (at_bar - bar_at_ts) * ticks_bar
                bar_at_ts = at_bar
            cur = (num, den)
            ts_changes.append(TimeSignature(tick_at_ts, num, den))
            ticks_bar = compute_ticks_per_bar(ts_changes[-1], tpq)
            ticks_beat = self._tpb_per_ts[den]
            ticks_pos = ticks_beat // self.config.max_num_pos_per_beat

        for row in seq.tokens:
            head = row[0]
            if head.startswith(SPECIAL_PREFIXES) or any(t.endswith("_None") for t in row[1:3]):
                continue
            local = int(row[2].split("_")[1])
            sig = row[idx["TimeSig"]].split("_")[1] if self.config.use_time_signatures else "4/4"
            if head == f"{METER}_None":
                if local == 0 and seen:
                    segment += 1
                seen = True
                set_ts(segment * self.max_bar + local, *map(int, sig.split("/")))
                continue
            seen = True
            bar = segment * self.max_bar + local
            if sig != "None":
                set_ts(bar, *map(int, sig.split("/")))
            elif cur is None:
                set_ts(bar, *TIME_SIGNATURE)
            pos = int(row[1].split("_")[1])
            tick = tick_at_ts + (bar - bar_at_ts) * ticks_bar + pos * ticks_pos
            program = int(row[idx["Program"]].split("_")[1]) if self.config.use_programs else 0
            if self.config.using_note_duration_tokens:
                dur = self._tpb_tokens_to_ticks[ticks_beat][row[idx["Duration"]].split("_")[1]]
            else:
                dur = int(self.config.default_note_duration * ticks_beat)
            vel = (
                int(row[idx["Velocity"]].split("_")[1])
                if self.config.use_velocities
                else DEFAULT_VELOCITY
            )
            if self.config.use_tempos:
                tempo = float(row[idx["Tempo"]].split("_")[1])
                if not tempos or round(tempos[-1].qpm, 2) != tempo:
                    tempos.append(Tempo(tick, tempo))
            if program not in tracks:
                tracks[program] = Track(
                    program=0 if program == -1 else program,
                    is_drum=program == -1,
                    name="Drums" if program == -1 else MIDI_INSTRUMENTS[program]["name"],
                )
            pitch = int(head.split("_")[1])
            tracks[program].notes.append(Note(tick, dur, pitch, vel))
        score.tracks = list(tracks.values())
        score.time_signatures = ts_changes or [TimeSignature(0, *TIME_SIGNATURE)]
        if not tempos or tempos[0].time != 0:
            tempos.insert(0, Tempo(0, tempos[0].qpm if tempos else self.default_tempo))
        score.tempos = tempos
        return score

    def segment_starts(self, ids: np.ndarray) -> list[int]:
        """Row indices where a segment begins (0 first): cut there to get pieces of at most
        `max_bar_embedding` bars that decode on their own."""
        ids = np.asarray(ids)
        if len(ids) == 0:
            return [0]
        meter = self.vocab[0][f"{METER}_None"]
        bar0 = self.vocab[2]["Bar_0"]
        starts = np.flatnonzero((ids[:, 0] == meter) & (ids[:, 2] == bar0)).tolist()
        return sorted({0, *(s for s in starts if s > 0)})


def _drop_redundant_meter_rows(
    rows: list[tuple[list[Event], bool, int]], ts_field: int | None
) -> list[list[Event]]:
    """A meter row is needed at a segment start, or when the next row is not a note on its bar
    with its signature (the change would otherwise be seen late); never after the last note."""
    out: list[list[Event]] = []
    for i, (row, segment_start, bar) in enumerate(rows):
        if row[0].type_ == METER and not segment_start:
            if i + 1 == len(rows):
                continue
            nxt, _, nxt_bar = rows[i + 1]
            same_ts = ts_field is None or nxt[ts_field].value == row[ts_field].value
            if nxt[0].type_ != METER and nxt_bar == bar and same_ts:
                continue
        out.append(row)
    return out
