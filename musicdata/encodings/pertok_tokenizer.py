"""MidiTok's PerTok with two defects fixed: downsampled onsets, and bars off the bar lines.

1. MidiTok's preprocessing quantizes note onsets to `max_num_pos_per_beat` per beat whenever a
   piece has time signatures with two denominators (2/4 and 6/8, say): that downsampling suits the
   grid tokenizers, but PerTok keeps 480 ticks per quarter precisely to keep microtiming, and it
   moved 763 of 4,105 notes of one Schumann quartet movement by up to a 32nd. Here it is off.
2. MidiTok 3.1's PerTok computes a bar as denominator/4 * numerator quarters (12 quarters for
   6/8, 24 for 12/8, 1 for 2/2) and counts bars from the start of the piece with the bar length
   in force now. Encoder and decoder share that arithmetic, so notes come back, but Bar tokens do
   not mark bars, and in x/8 meters the time since the last "bar" grows past 4 quarters, where
   time shifts are whole quarters and MicroTiming (+-1/8 quarter) must cover the rest. Here a bar
   is 4/denominator * numerator quarters, counted from the last bar line, as in the score.

Everything else (time shifts, MicroTiming, velocity and duration tokens, their order) is
MidiTok's. Decoding reads one token stream with programs, velocities, durations and optional
tempo and time-signature tokens, as configured here.
"""

from __future__ import annotations

from typing import Any

import miditok
from miditok.classes import Event
from miditok.constants import DEFAULT_VELOCITY, MIDI_INSTRUMENTS, TIME_SIGNATURE
from symusic import Note, Score, Tempo, TimeSignature, Track


def _bar_ticks(num: int, den: int, tpq: int) -> int:
    return round(4 / den * num * tpq)


class PerTokTokenizer(miditok.PerTok):
    """PerTok with score bar lines (see the module docstring)."""

    def _tweak_config_before_creating_voc(self) -> None:
        super()._tweak_config_before_creating_voc()
        assert self.config.one_token_stream_for_programs, "PerTokTokenizer is one stream"
        assert not self.config.additional_params.get("use_position_toks"), "time shifts only"

    def _get_score_resampling_factor(self, score: Score) -> None:
        """No onset downsampling, whatever the meters (defect 1 of the module docstring)."""
        del score

    def _add_time_events(self, events: list[Event], _time_division: int) -> list[Event]:
        out: list[Event] = []
        previous_tick = bar_time = 0
        ticks_bar = _bar_ticks(*TIME_SIGNATURE, self.tpq)
        for event in events:
            while event.time > bar_time + ticks_bar - self.min_timeshift:
                bar_time += ticks_bar
                out.append(Event("Bar", None, bar_time, desc=f"Bar {bar_time}"))
                previous_tick = bar_time
            if event.type_ == "TimeSig":
                ticks_bar = _bar_ticks(*self._parse_token_time_signature(event.value), self.tpq)
            delta = event.time - previous_tick
            microtiming = 0
            if event.type_ in self.microtime_events:
                shift = 0
                if delta >= self.min_timeshift:
                    tup = self._get_closest_duration_tuple(delta)
                    value = ".".join(str(x) for x in tup)
                    out.append(Event("TimeShift", value, event.time, desc=f"timeshift {value}"))
                    shift = tup[0] * tup[-1] + tup[1]
                    previous_tick += shift
                microtiming = delta - shift
            out.append(event)
            if self.use_microtiming and event.type_ in self.microtime_events:
                mt = int(self._get_closest_array_value(microtiming, self.microtiming_tick_values))
                out.append(Event("MicroTiming", mt, event.time, desc=f"{mt} microtiming"))
        return out

    def _tokens_to_score(self, tokens: Any, programs: Any = None) -> Score:
        del programs
        seq = tokens[0] if isinstance(tokens, list) else tokens
        toks = list(seq.tokens)
        tpq = self.tpq
        score = Score(tpq)
        tracks: dict[int, Track] = {}
        tempos: list[Tempo] = []
        ts_changes: list[TimeSignature] = []
        ticks_bar = _bar_ticks(*TIME_SIGNATURE, tpq)
        bar_time = tick = program = 0
        for i, token in enumerate(toks):
            kind, _, value = token.partition("_")
            if kind == "Bar":
                bar_time += ticks_bar
                tick = bar_time
            elif kind == "TimeShift":
                tick += self._convert_durations_to_ticks(value)
            elif kind == "TimeSig":
                num, den = self._parse_token_time_signature(value)
                ticks_bar = _bar_ticks(num, den, tpq)
                ts_changes.append(TimeSignature(tick, num, den))
            elif kind == "Tempo":
                tempos.append(Tempo(tick, float(value)))
            elif kind == "Program":
                program = int(value)
            elif kind in {"Pitch", "PitchDrum"}:
                note = self._read_note(toks, i, tick, int(value))
                if note is None:
                    continue
                if program not in tracks:
                    tracks[program] = Track(
                        program=0 if program == -1 else program,
                        is_drum=program == -1 or kind == "PitchDrum",
                        name="Drums" if program == -1 else MIDI_INSTRUMENTS[program]["name"],
                    )
                tracks[program].notes.append(note)
        score.tracks = list(tracks.values())
        score.time_signatures = ts_changes or [TimeSignature(0, *TIME_SIGNATURE)]
        if not tempos or tempos[0].time != 0:
            tempos.insert(0, Tempo(0, self.default_tempo))
        score.tempos = tempos
        return score

    def _read_note(self, toks: list[str], i: int, tick: int, pitch: int) -> Note | None:
        """The MicroTiming, Velocity and Duration tokens after a Pitch (in MidiTok's order)."""
        fields: dict[str, str] = {}
        for tok in toks[i + 1 : i + 4]:
            kind, _, value = tok.partition("_")
            if kind not in {"MicroTiming", "Velocity", "Duration"} or kind in fields:
                break
            fields[kind] = value
        if self.config.use_velocities and "Velocity" not in fields:
            return None  # a truncated or generated sequence
        mt = int(fields.get("MicroTiming", 0))
        vel = int(fields.get("Velocity", DEFAULT_VELOCITY))
        if "Duration" in fields:
            dur = self._convert_durations_to_ticks(fields["Duration"])
        else:
            dur = int(self.config.default_note_duration * self.tpq)
        return Note(tick + mt, dur, pitch, vel)
