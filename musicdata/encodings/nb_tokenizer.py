"""Note-based (NB) compound tokenizer of the Nested Music Transformer, as a MidiTok tokenizer.

Ryu, Dong, Jung & Jeong, "Nested Music Transformer" (ISMIR 2024, arXiv 2408.01180). One compound
token per note; sub-tokens (metric-first order, `nb-mf`):

    type, beat, [chord], [tempo], instrument, pitch, duration, velocity

`type` is the metric sub-token: `NewTimeSig_<n>/<d>` (a new time signature starts a new bar and
beat), `NewBar` (same time signature, new bar + new beat), `NewBeat` (same bar, new beat),
`SameBeat` (same onset as the previous note), plus `EmptyBar`, `SOS` and `EOS`. `beat` is the
onset position in the bar on a grid of `positions_per_quarter` (per quarter, as the reference
code: in x/2 meters a per-beat grid of 12 could not hold 16ths). With `duration_bins` the duration
sub-token is the official bin in grid steps; `max_empty_bars` keeps at most that many empty bars
in a row (the reference code keeps 4). Pitch-first (`nb-pf`) reorders the fields to
pitch, duration, velocity, type, beat, ... and applies the paper's compound shift: step t carries
the metric sub-tokens of note t and the pitch/duration/velocity of note t-1 (so step 0, SOS, has
no note and the EOS step carries the last note).

As in the paper's preprocessing, notes with the same onset, instrument and pitch are merged into
one (the longest is kept): NB is lossy by design and the fidelity measure reports it. The
reference code's other reductions (semitone-collision pruning, instrument categories, ...) belong
to the `pop`/`sod` presets (nb_presets.py), applied before this tokenizer. The pitch range is
inclusive, as MidiTok's. One extension,
documented: when a time signature changes on a bar without notes, a note-less
`NewTimeSig_<n>/<d>` token marks it, so decoding keeps bar lengths exact.

Subclassing `miditok.MusicTokenizer` gives NB MidiTok's vocabulary handling, ids <-> tokens,
`save`/`params=` loading and Hugging Face Hub mixin, like every other MidiTok tokenizer.
"""

from __future__ import annotations

from typing import Any

import miditok
from miditok.classes import Event, TokSequence
from miditok.constants import DEFAULT_VELOCITY, MIDI_INSTRUMENTS, TIME_SIGNATURE
from miditok.utils import compute_ticks_per_bar
from symusic import Note, Score, Tempo, TimeSignature, Track

IGNORE = "Ignore_None"
METRIC_TYPES = ("SOS", "EOS", "EmptyBar", "NewBar", "NewBeat", "SameBeat")
NOTE_FIELDS = ("Pitch", "Duration", "Velocity")


class NBTokenizer(miditok.MusicTokenizer):
    """MidiTok tokenizer for NB; `config.additional_params["nb_order"]` is "mf" or "pf"."""

    def _tweak_config_before_creating_voc(self) -> None:
        cfg = self.config
        cfg.additional_params.setdefault("nb_order", "mf")
        extra = cfg.additional_params
        extra.setdefault("positions_per_quarter", cfg.max_num_pos_per_beat)
        per_q = int(extra["positions_per_quarter"])
        assert cfg.max_num_pos_per_beat % (2 * per_q) == 0 or cfg.max_num_pos_per_beat == per_q, (
            f"NB: MidiTok's grid ({cfg.max_num_pos_per_beat} per beat) must hold "
            f"{per_q} per quarter in x/2 meters: use {2 * per_q} per beat in beat_res"
        )
        assert cfg.additional_params["nb_order"] in {"mf", "pf"}, "nb_order is 'mf' or 'pf'"
        cfg.use_rests = cfg.use_sustain_pedals = cfg.use_pitch_bends = False
        cfg.use_control_changes = cfg.use_pitch_intervals = cfg.use_key_signatures = False
        cfg.program_changes = False
        cfg.use_velocities = True
        cfg.use_note_duration_programs = cfg.programs
        self._disable_attribute_controls()
        metric = ["Type", "Beat"]
        if cfg.use_chords:
            metric.append("Chord")
        if cfg.use_tempos:
            metric.append("Tempo")
        metric.append("Program")
        self.metric_fields = metric
        notes = list(NOTE_FIELDS)
        order = notes + metric if self.pitch_first else metric + notes
        self.field_names: list[str] = order
        self.vocab_types_idx = {name: i for i, name in enumerate(order)}
        self.vocab_types_idx["PitchDrum"] = self.vocab_types_idx["Pitch"]

    @property
    def per_quarter(self) -> int:
        return int(self.config.additional_params.get("positions_per_quarter", 12))

    @property
    def duration_bins(self) -> list[int] | None:
        return self.config.additional_params.get("duration_bins") or None

    @property
    def pitch_first(self) -> bool:
        return self.config.additional_params.get("nb_order", "mf") == "pf"

    # ---- vocabulary ----------------------------------------------------------------------------

    def _create_base_vocabulary(self) -> list[list[str]]:
        cfg = self.config
        bar_positions = max(n * 4 * self.per_quarter // d for n, d in self.time_signatures)
        bins = self.duration_bins
        per_field: dict[str, list[str]] = {
            "Type": [f"Type_{t}" for t in METRIC_TYPES]
            + [f"Type_NewTimeSig_{n}/{d}" for n, d in self.time_signatures],
            "Beat": [f"Beat_{i}" for i in range(bar_positions)],
            "Program": [f"Program_{p}" for p in cfg.programs],
            # MidiTok's pitch ranges are inclusive (its preprocessing keeps pitch_range[1])
            "Pitch": [f"Pitch_{i}" for i in range(cfg.pitch_range[0], cfg.pitch_range[1] + 1)],
            "Duration": [f"Duration_{b}" for b in bins]
            if bins
            else [f"Duration_{'.'.join(map(str, d))}" for d in self.durations],
            "Velocity": [f"Velocity_{v}" for v in self.velocities],
        }
        if cfg.use_pitchdrum_tokens:
            lo, hi = cfg.drums_pitch_range
            per_field["Pitch"] += [f"PitchDrum_{i}" for i in range(lo, hi + 1)]
        if cfg.use_chords:
            per_field["Chord"] = ["Chord_N", *self._create_chords_tokens()]
        if cfg.use_tempos:
            per_field["Tempo"] = [f"Tempo_{t}" for t in self.tempos]
        return [[IGNORE, *per_field[name]] for name in self.field_names]

    def _create_token_types_graph(self) -> dict[str, set[str]]:
        return {"Type": {"Type"}}  # one compound kind: any metric type may follow any other

    # ---- encoding ------------------------------------------------------------------------------

    def _add_time_events(self, events: list[Event], time_division: int) -> list[list[Event]]:
        """Global + note events (sorted by time) -> NB compound tokens, one per note."""
        cur_ts = TIME_SIGNATURE
        pending_ts: dict[int, tuple[int, int]] = {0: cur_ts}  # bar -> signature not yet shown
        ts_bar = ts_tick = 0  # bar index and tick where the current time signature began
        ticks_bar = compute_ticks_per_bar(TimeSignature(0, *cur_ts), time_division)
        tempos = self.tempos
        tempo = next((e.value for e in events if e.type_ == "Tempo"), None)
        if tempo is None:  # the closest tempo in the vocabulary to MidiTok's default
            tempo = float(tempos[abs(tempos - self.default_tempo).argmin()])
        chord, program = "N", 0
        prev_bar, prev_pos = -1, -1
        step = time_division // self.per_quarter  # ticks per grid position
        cap = int(self.config.additional_params.get("max_empty_bars", 0))
        out: list[dict[str, Any]] = [{"Type": "SOS"}]
        merged: dict[tuple[int, int, int], dict[str, Any]] = {}

        for i, ev in enumerate(events):
            if ev.type_ == "TimeSig":
                cur_ts = tuple(map(int, ev.value.split("/")))
                ts_bar += (ev.time - ts_tick) // ticks_bar
                ts_tick = ev.time
                pending_ts[ts_bar] = cur_ts
                ticks_bar = compute_ticks_per_bar(TimeSignature(0, *cur_ts), time_division)
            elif ev.type_ == "Tempo":
                tempo = ev.value
            elif ev.type_ == "Chord":
                chord = ev.value
            elif ev.type_ == "Program":
                program = ev.value
            elif ev.type_ in {"Pitch", "PitchDrum"}:
                # onset on the per-quarter grid (MidiTok's grid is finer in x/4 and x/8)
                t = ts_tick + (2 * (ev.time - ts_tick) + step) // (2 * step) * step
                bar = ts_bar + (t - ts_tick) // ticks_bar
                pos = (t - ts_tick - (bar - ts_bar) * ticks_bar) // step
                vel, dur = events[i + 1].value, events[i + 2].value
                length = _dur_beats(dur) * 4 / cur_ts[1]  # quarters
                if self.duration_bins:
                    dur = self._nearest_bin(length)
                key = (t, program, int(ev.value) if ev.type_ == "Pitch" else -1 - ev.value)
                if key in merged:  # NB de-duplication: same onset, instrument and pitch
                    if length > merged[key]["length"]:
                        merged[key]["Duration"], merged[key]["Velocity"] = dur, vel
                        merged[key]["length"] = length
                    continue
                if bar > prev_bar:
                    run = 0  # empty bars in a row; a time signature change is always shown
                    for empty in range(prev_bar + 1, bar):  # bars without notes
                        ts = pending_ts.pop(empty, None)
                        if ts is None and cap and run >= cap:
                            continue
                        run += 1
                        kind = f"NewTimeSig_{ts[0]}/{ts[1]}" if ts else "EmptyBar"
                        out.append({"Type": kind})
                    ts = pending_ts.pop(bar, None)
                    kind = f"NewTimeSig_{ts[0]}/{ts[1]}" if ts else "NewBar"
                else:
                    kind = "NewBeat" if pos != prev_pos else "SameBeat"
                token = {
                    "Type": kind,
                    "Beat": pos,
                    "Chord": chord,
                    "Tempo": tempo,
                    "Program": program,
                    "PitchKind": ev.type_,
                    "Pitch": ev.value,
                    "Duration": dur,
                    "Velocity": vel,
                    "length": length,
                }
                merged[key] = token
                out.append(token)
                prev_bar, prev_pos = bar, pos
        out.append({"Type": "EOS"})
        return self._to_events(out)

    def _nearest_bin(self, quarters: float) -> str:
        """A duration in quarters -> the nearest official bin (grid steps; first on ties)."""
        bins = self.duration_bins or []
        steps = quarters * self.per_quarter
        return str(min(bins, key=lambda b: abs(b - steps)))

    def _to_events(self, tokens: list[dict[str, Any]]) -> list[list[Event]]:
        """Dict tokens -> MidiTok compound Events in field order (with the PF shift). Events are
        shared per (type, value): a compound sequence only reads their type and value, and
        building ~8 dataclasses per note was most of NB's own encoding time."""
        cache: dict[tuple[str, Any], Event] = {}

        def ev(type_: str, value: Any) -> Event:
            key = (type_, value)
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = Event(type_, value, 0)
            return hit

        ignore = ev("Ignore", "None")
        no_note = [ignore] * len(NOTE_FIELDS)
        no_metric = [ignore] * (len(self.metric_fields) - 1)
        rest = self.metric_fields[1:]
        rows: list[list[Event]] = []
        prev_notes = no_note
        for tok in tokens:
            if "Pitch" in tok:
                metric = [ev("Type", tok["Type"])] + [ev(name, tok[name]) for name in rest]
                notes = [
                    ev(tok["PitchKind"], tok["Pitch"]),
                    ev("Duration", tok["Duration"]),
                    ev("Velocity", tok["Velocity"]),
                ]
            else:
                metric, notes = [ev("Type", tok["Type"]), *no_metric], no_note
            if self.pitch_first:
                rows.append(prev_notes + metric)
                prev_notes = notes
            else:
                rows.append(metric + notes)
        return rows

    def complete_sequence(self, seq: TokSequence, complete_bytes: bool = False) -> None:
        """MidiTok's completion, with tokens and ids looked up once per distinct shared Event
        (see `_to_events`) instead of once per sub-token."""
        if len(seq.tokens) == 0 and len(seq.events) > 0 and isinstance(seq.events[0], list):
            names: dict[int, str] = {}
            ids: list[dict[int, int]] = [{} for _ in self.vocab]
            tokens, id_rows = [], []
            for row in seq.events:
                tok_row, id_row = [], []
                for i, ev in enumerate(row):
                    key = id(ev)
                    name = names.get(key)
                    if name is None:
                        name = names[key] = str(ev)
                    idx = ids[i].get(key)
                    if idx is None:
                        idx = ids[i][key] = self.vocab[i][name]
                    tok_row.append(name)
                    id_row.append(idx)
                tokens.append(tok_row)
                id_rows.append(id_row)
            seq.tokens, seq.ids = tokens, id_rows
        super().complete_sequence(seq, complete_bytes)

    # ---- decoding ------------------------------------------------------------------------------

    def _tokens_to_score(
        self, tokens: TokSequence | list[TokSequence], programs: Any = None
    ) -> Score:
        del programs
        seq = tokens[0] if isinstance(tokens, list) else tokens
        rows = [list(row) for row in seq.tokens]
        if self.pitch_first:  # undo the compound shift: note fields of row t belong to row t-1
            k = len(NOTE_FIELDS)
            rows = [
                r[k:] + (rows[i + 1][:k] if i + 1 < len(rows) else [IGNORE] * k)
                for i, r in enumerate(rows)
            ]
            idx = {name: i for i, name in enumerate(self.metric_fields + list(NOTE_FIELDS))}
        else:
            idx = self.vocab_types_idx
        tpq = self.time_division
        score = Score(tpq)
        tracks: dict[int, Track] = {}
        cur_ts = TimeSignature(0, *TIME_SIGNATURE)
        ts_changes: list[TimeSignature] = []
        tempos: list[Tempo] = []
        bar, bar_tick, ticks_bar = -1, 0, compute_ticks_per_bar(cur_ts, tpq)
        ticks_pos = tpq // self.per_quarter
        for row in rows:
            kind = _value(row[idx["Type"]])
            if kind in {"SOS", "PAD", "BOS", "MASK", None}:
                continue
            if kind == "EOS":
                break
            if kind == "EmptyBar" or kind == "NewBar" or kind.startswith("NewTimeSig_"):
                bar += 1
                bar_tick = 0 if bar == 0 else bar_tick + ticks_bar
                if kind.startswith("NewTimeSig_"):
                    num, den = map(int, kind.split("_", 1)[1].split("/"))
                    if (num, den) != (cur_ts.numerator, cur_ts.denominator) or not ts_changes:
                        cur_ts = TimeSignature(bar_tick, num, den)
                        ts_changes.append(cur_ts)
                    ticks_bar = compute_ticks_per_bar(cur_ts, tpq)
            pitch_tok = row[idx["Pitch"]]
            if _value(pitch_tok) is None:
                continue
            bar = max(bar, 0)
            tick = bar_tick + int(_value(row[idx["Beat"]]) or 0) * ticks_pos
            if self.config.use_tempos:
                tempo = float(_value(row[idx["Tempo"]]))
                if not tempos or round(tempos[-1].qpm, 2) != tempo:
                    tempos.append(Tempo(tick, tempo))
            program = int(_value(row[idx["Program"]]) or 0)
            if self.duration_bins:
                duration = int(_value(row[idx["Duration"]])) * ticks_pos
            else:
                beat_ticks = self._tpb_per_ts[cur_ts.denominator]
                duration = self._tpb_tokens_to_ticks[beat_ticks][_value(row[idx["Duration"]])]
            velocity = int(_value(row[idx["Velocity"]]) or DEFAULT_VELOCITY)
            pitch = int(_value(pitch_tok))
            if program not in tracks:
                tracks[program] = Track(
                    program=max(program, 0),
                    is_drum=program == -1 or pitch_tok.startswith("PitchDrum"),
                    name="Drums" if program == -1 else MIDI_INSTRUMENTS[program]["name"],
                )
            tracks[program].notes.append(Note(tick, duration, pitch, velocity))
        score.tracks = list(tracks.values())
        score.time_signatures = ts_changes or [TimeSignature(0, *TIME_SIGNATURE)]
        score.tempos = tempos or [Tempo(0, self.default_tempo)]
        return score


def _value(token: str) -> str | None:
    """'Pitch_60' -> '60'; 'Ignore_None' / 'PAD_None' -> None."""
    name, _, value = token.partition("_")
    if name in {"Ignore", "PAD", "BOS", "EOS", "MASK"} or value == "None":
        return None if name != "Type" else value
    return value


def _dur_beats(value: str) -> float:
    beat, pos, res = map(int, value.split("."))
    return beat + pos / res
