"""`performance`: the Music Transformer event vocabulary (Oore et al. 2018; Huang et al. 2018),
which PerceiverS trains on (MAESTRO).

Events, in absolute time (seconds, not beats): 128 NOTE_ON, 128 NOTE_OFF, 100 TIME_SHIFT of 10 ms
(1..100 steps; longer gaps chain shifts), 32 VELOCITY bins (emitted only when the bin changes, as
in Magenta's `PerformanceOneHotEncoding`), plus PAD (0) and EOS (1) as in Music Transformer's
vocabulary: 2 + 388 = 390 ids. The sustain pedal (CC64) is folded into note durations: a note
released while the pedal is down sounds until the pedal is lifted, or until the same pitch is
struck again. All non-drum tracks are merged into one piano-roll stream (the vocabulary has no
instruments); drum tracks are left out by design, so fidelity is measured on non-drum notes.
Onsets and offsets are rounded to the 10 ms grid in absolute time, so time shifts never drift.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from musicdata.encodings.base import Encoding, EncodingError
from musicdata.encodings.fidelity import Resolution

PAD, EOS = 0, 1
MIN_VELOCITY, MAX_VELOCITY = 1, 127


class Performance(Encoding):
    name = "performance"
    kind = "flat"
    version = 1
    paper = "Oore et al. 2018; Huang et al. 2018 (Music Transformer); PerceiverS (arXiv 2411.08307)"
    time_unit = "seconds"
    note_offs = True
    lossless = False  # tracks merge into one stream: unisons and same-pitch overlaps collapse
    defaults: ClassVar[dict[str, Any]] = {
        "steps_per_second": 100,  # 10 ms time shifts
        "max_shift_steps": 100,  # up to 1 s per TIME_SHIFT event
        "num_velocity_bins": 32,
        "sustain_pedal": True,  # fold CC64 into durations
    }

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(overrides)
        p = self.params
        self.note_on = 2
        self.note_off = self.note_on + 128
        self.shift = self.note_off + 128  # TIME_SHIFT of k steps is shift + k - 1
        self.velocity = self.shift + int(p["max_shift_steps"])  # VELOCITY bin b is velocity + b - 1
        self._size = self.velocity + int(p["num_velocity_bins"])
        self._bin_size = math.ceil((MAX_VELOCITY - MIN_VELOCITY + 1) / p["num_velocity_bins"])

    @property
    def vocab_size(self) -> int:
        return self._size

    def vocabulary(self) -> list[str]:
        """Token names by id (saved beside the shards)."""
        p = self.params
        return (
            ["PAD", "EOS"]
            + [f"NOTE_ON_{i}" for i in range(128)]
            + [f"NOTE_OFF_{i}" for i in range(128)]
            + [f"TIME_SHIFT_{k}" for k in range(1, p["max_shift_steps"] + 1)]
            + [f"VELOCITY_{b}" for b in range(1, p["num_velocity_bins"] + 1)]
        )

    # ---- notes as the encoding sees them -----------------------------------------------------

    def reference_notes(self, score: Any) -> np.ndarray:
        """Non-drum notes in seconds with the sustain pedal folded in: pitch, onset, duration."""
        return self._notes(score)[:, :3]

    def _notes(self, score: Any) -> np.ndarray:
        """float64 [N, 4]: pitch, onset s, duration s, velocity (non-drum, pedal folded)."""
        sec = score.to("second")
        parts = []
        for track in sec.tracks:
            if track.is_drum:
                continue
            arr = track.notes.numpy()
            if not len(arr["pitch"]):
                continue
            notes = np.stack(
                [
                    arr["pitch"].astype(np.float64),
                    arr["time"].astype(np.float64),
                    arr["duration"].astype(np.float64),
                    arr["velocity"].astype(np.float64),
                ],
                axis=1,
            )
            if self.params["sustain_pedal"] and len(track.pedals):
                ped = track.pedals.numpy()
                notes = _fold_sustain(notes, ped["time"], ped["time"] + ped["duration"])
            parts.append(notes)
        return np.concatenate(parts) if parts else np.zeros((0, 4))

    def resolution(self, score: Any, notes: np.ndarray) -> Resolution:
        """Onsets round to the 10 ms grid (half a step); a duration is the difference of two
        rounded times, so it may move by a whole step. No longest duration."""
        step = 1.0 / self.params["steps_per_second"]
        n = len(notes)
        return Resolution(np.full(n, step / 2), np.full(n, step), np.full(n, np.inf))

    # ---- encode / decode ---------------------------------------------------------------------

    def encode(self, score: Any) -> np.ndarray:
        notes = self._notes(score)
        if len(notes) == 0:
            msg = "no non-drum notes: the performance vocabulary has no drum events"
            raise EncodingError(msg)
        sps = self.params["steps_per_second"]
        on = np.round(notes[:, 1] * sps).astype(np.int64)
        off = np.maximum(np.round((notes[:, 1] + notes[:, 2]) * sps).astype(np.int64), on + 1)
        pitch = notes[:, 0].astype(np.int64)
        vbin = (notes[:, 3].astype(np.int64) - MIN_VELOCITY) * self.params["num_velocity_bins"]
        vbin = np.clip(vbin // (MAX_VELOCITY - MIN_VELOCITY + 1) + 1, 1, None)
        off = _monophonic_per_pitch(pitch, on, off)
        # events: (step, kind 0=off / 1=on, pitch, velocity bin); offs first at equal times
        ev = np.concatenate(
            [
                np.stack([off, np.zeros_like(off), pitch, np.zeros_like(off)], axis=1),
                np.stack([on, np.ones_like(on), pitch, vbin], axis=1),
            ]
        )
        ev = ev[np.lexsort((ev[:, 2], ev[:, 1], ev[:, 0]))]
        out: list[int] = []
        now, cur_vel, max_shift = 0, -1, self.params["max_shift_steps"]
        for step, kind, p, vb in ev.tolist():
            while step > now:
                k = min(max_shift, step - now)
                out.append(self.shift + k - 1)
                now += k
            if kind == 1:
                if vb != cur_vel:
                    out.append(self.velocity + vb - 1)
                    cur_vel = vb
                out.append(self.note_on + p)
            else:
                out.append(self.note_off + p)
        out.append(EOS)
        return np.asarray(out, dtype=np.int32)

    def decode(self, tokens: np.ndarray) -> Any:
        """Events -> one piano track at 1 ms per tick (500 ticks per quarter at 120 bpm)."""
        import symusic

        ms_per_step = 1000 // self.params["steps_per_second"]
        now, vel = 0, 64
        active: dict[int, tuple[int, int]] = {}
        notes: list[tuple[int, int, int, int]] = []
        for t in np.asarray(tokens).tolist():
            if t == EOS:
                break
            if self.note_on <= t < self.note_off:
                p = t - self.note_on
                if p in active:  # re-struck: the sounding note ends here
                    start, v = active.pop(p)
                    notes.append((start, now - start, p, v))
                active[p] = (now, vel)
            elif self.note_off <= t < self.shift:
                p = t - self.note_off
                if p in active:
                    start, v = active.pop(p)
                    notes.append((start, now - start, p, v))
            elif self.shift <= t < self.velocity:
                now += (t - self.shift + 1) * ms_per_step
            elif self.velocity <= t < self._size:
                vel = MIN_VELOCITY + (t - self.velocity) * self._bin_size
        for p, (start, v) in active.items():  # still sounding at the end
            notes.append((start, max(now - start, ms_per_step), p, v))
        score = symusic.Score(500)
        score.tempos.append(symusic.Tempo(0, 120.0))
        track = symusic.Track(program=0, name="Piano")
        for start, dur, p, v in sorted(notes):
            if dur > 0:
                track.notes.append(symusic.Note(start, dur, p, v))
        score.tracks.append(track)
        return score

    def save_config(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "tokenizer.json"
        doc = {"encoding": self.name, "params": self.params, "vocab": self.vocabulary()}
        path.write_text(json.dumps(doc, indent=1, sort_keys=True))
        return path


def _fold_sustain(notes: np.ndarray, down: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Extend each note released while the pedal is down to the pedal's release."""
    notes = notes.copy()
    ends = notes[:, 1] + notes[:, 2]
    for d, u in zip(down.tolist(), up.tolist(), strict=True):
        held = (ends >= d) & (ends < u) & (notes[:, 1] < u)
        ends[held] = u
    notes[:, 2] = ends - notes[:, 1]
    return notes


def _monophonic_per_pitch(pitch: np.ndarray, on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """A pitch sounds once at a time: a note ends no later than the next onset of its pitch."""
    off = off.copy()
    order = np.lexsort((on, pitch))
    p, o = pitch[order], on[order]
    same = p[1:] == p[:-1]
    nxt = np.where(same, o[1:], np.iinfo(np.int64).max)
    cut = np.minimum(off[order][:-1], np.maximum(nxt, o[:-1] + 1))
    off[order[:-1]] = cut
    return off
