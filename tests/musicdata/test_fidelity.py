"""The strict fidelity measure: per-encoding resolution, no free pass for long notes, the time
signature in force at each note, quarters for PerTok, onset error in ms, and a reason for every
lost note. On real fixtures (tests/fixtures/midi) and copies of them changed in one known way."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import symusic

from musicdata.encodings import get_encoding
from musicdata.encodings.fidelity import (
    Resolution,
    compare,
    grid_tolerance,
    measure,
    measure_detail,
    seconds_at,
)
from musicdata.encodings.normalize import normalize_notes, note_flags
from musicdata.encodings.worker import TokenizeJob, tokenize_piece
from musicdata.testing.corpus import humanize
from tests.conftest import FIXTURES


@cache
def enc(name: str, **overrides: object):
    return get_encoding(name, overrides or None)


def real(name: str) -> symusic.Score:
    return symusic.Score.from_midi((FIXTURES / name).read_bytes())


def _first_note_longer(score: symusic.Score, quarters: float) -> symusic.Score:
    """The chorale's first soprano note held for `quarters` (a fermata held on, say)."""
    s = score.copy()
    note = s.tracks[0].notes[0]
    note.duration = int(quarters * s.ticks_per_quarter)
    return s


def test_grid_tolerance_is_half_the_local_step_and_strict_past_the_end() -> None:
    grid = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    tol, top = grid_tolerance(np.array([0.75, 2.5, 4.0, 16.0, 0.1]), grid)
    assert top == 4.0
    np.testing.assert_allclose(tol[:4], [0.25, 0.5, 0.5, 0.5])
    assert tol[4] == pytest.approx(0.4), "below the smallest value, only the smallest fits"


def test_compare_counts_a_clipped_note_as_lost_with_its_reason() -> None:
    ref = np.array([[60, 0.0, 16.0], [62, 0.0, 1.0], [64, 1.0, 1.0]])
    dec = np.array([[60, 0.0, 12.0], [62, 0.0, 1.0], [64, 1.3, 1.0]])
    res = Resolution(np.full(3, 1 / 16), np.full(3, 0.125), np.full(3, 12.0))
    cmp = compare(ref, dec, res, lambda q: np.asarray(q) * 500.0, np.ones(3, bool))
    f = cmp.fidelity
    assert (f.notes, f.recovered, f.decoded) == (3, 1, 3)
    assert f.lost == {"too_long": 1, "onset": 1}
    assert cmp.reasons.tolist() == ["too_long", "", "onset"]
    assert f.onset_matched == 2 and f.onset_err_ms_max == 0.0  # 64 at 1.3 is not matched


@pytest.mark.parametrize("name", ["remi", "octuple", "cp"])
def test_long_note_is_kept_up_to_64_beats_and_reported_beyond(name: str) -> None:
    """The old measure let a 16-quarter note decoded as 12 count as recovered; now the grid
    reaches 64 beats, and a longer note is lost as `too_long`, not hidden."""
    e = enc(name)
    held = _first_note_longer(real("chorale_4_4.mid"), 40)
    f = measure(e, held, e.encode(held))
    assert f.ratio == 1.0, f"{name}: {f}"
    too_long = _first_note_longer(real("chorale_4_4.mid"), 80)
    f = measure(e, too_long, e.encode(too_long))
    assert f.recovered == f.notes - 1 and f.lost == {"too_long": 1}, f"{name}: {f}"
    old = get_encoding(name, {"beat_res": {"0-4": 8, "4-12": 4}})  # the previous range
    f = measure(old, held, old.encode(held))
    assert f.lost == {"too_long": 1}, "a 40-quarter note decoded as 12 is not recovered"


def test_pertok_writes_64_quarters_and_counts_in_quarters() -> None:
    e = enc("pertok")
    held = _first_note_longer(real("chorale_4_4.mid"), 40)
    assert measure(e, held, e.encode(held)).ratio == 1.0
    folk = real("folk_6_8.mid")  # 6/8: a beat-based tolerance would use eighths
    ref = e.reference_notes(folk)
    res = e.resolution(folk, ref)
    assert np.allclose(res.onset_tol, res.onset_tol[0]), "PerTok's grid does not follow meter"
    assert res.onset_tol[0] == pytest.approx(2.5 / 480), "half a 4-tick bin + half a tick"


def test_onset_tolerance_follows_the_time_signature_at_the_note() -> None:
    """Cut time (2/2): a beat is a half note, so REMI's grid is 8 per half note there; a 4/4
    section of the same piece gets 8 per quarter."""
    s = real("cut_time_2_2.mid")
    e = enc("remi")
    ref = e.reference_notes(s)
    assert np.allclose(e.resolution(s, ref).onset_tol, 2 / 8 / 2)
    s.time_signatures.append(symusic.TimeSignature(8 * s.ticks_per_quarter, 4, 4))
    tol = e.resolution(s, ref).onset_tol
    before, after = ref[:, 1] < 8, ref[:, 1] >= 8
    assert np.allclose(tol[before], 1 / 8) and np.allclose(tol[after], 1 / 16)


def test_seconds_at_follows_the_tempo_map() -> None:
    s = real("multitrack_tempo_change.mid")  # 80 bpm introduction, then 120 bpm
    tempos = sorted((t.time / s.ticks_per_quarter, t.qpm) for t in s.tempos)
    change = next(q for q, qpm in tempos if qpm > 100)
    t = seconds_at(s, np.array([change, change + 2.0]))
    assert t[1] - t[0] == pytest.approx(2 * 60 / 120, rel=1e-3)


def test_onset_error_in_ms_shows_pertoks_microtiming_on_performance_timing() -> None:
    """A real chorale rendered with 12 ms onset jitter: REMI snaps onsets to its beat grid,
    PerTok keeps them to a MicroTiming bin. The difference is PerTok's whole point."""
    s = symusic.Score.from_midi(humanize((FIXTURES / "chorale_4_4.mid").read_bytes(), seed=1))
    errs = {}
    for name in ("remi", "pertok", "performance"):
        e = enc(name)
        f = measure(e, s, e.encode(s))
        assert f.onset_matched > 0.5 * f.notes, f"{name}: {f}"
        errs[name] = f.onset_err_ms_mean
    assert errs["pertok"] < 3.0 < errs["remi"], errs
    assert errs["performance"] <= 5.0 + 1e-3, "10 ms steps: at most half a step"


def test_reasons_for_unison_overlap_and_pitch_range() -> None:
    s = real("folk_6_8.mid")
    t = s.tracks[0]
    first, second = t.notes[0], t.notes[1]
    t.notes.append(symusic.Note(first.time, first.duration // 2, first.pitch, 70))  # unison
    t.notes.append(symusic.Note(second.time, 3 * s.ticks_per_quarter, 110, 70))  # above 109
    e = enc("performance")  # one piano roll: a unison collapses
    f = measure(e, s, e.encode(s))
    assert f.lost.get("unison", 0) >= 1, f
    r = enc("remi")
    f = measure(r, s, r.encode(s))
    assert f.lost.get("pitch_range") == 1, f


def test_normalize_trims_restruck_notes_and_caps() -> None:
    s = real("folk_6_8.mid")
    tpq = s.ticks_per_quarter
    notes = s.tracks[0].notes
    pitch = notes[0].pitch
    later = next(n for n in notes[1:] if n.pitch == pitch)
    notes[0].duration = later.time - notes[0].time + tpq  # still sounding when struck again
    notes[-1].duration = 100 * tpq
    flags = note_flags(s)
    assert (flags.restruck, flags.capped, flags.duplicates) == (1, 1, 0)
    out, again = normalize_notes(s, max_quarters=32)
    assert again == flags and s.tracks[0].notes[-1].duration == 100 * tpq, "input unchanged"
    on = out.tracks[0].notes
    assert on[0].time + on[0].duration == later.time
    assert max(n.duration for n in on) == 32 * tpq
    assert note_flags(out).to_dict() == {**flags.to_dict(), "restruck": 0, "capped": 0}


def test_worker_record_carries_onset_error_and_reasons(tmp_path) -> None:
    path = tmp_path / "held.mid"
    _first_note_longer(real("chorale_4_4.mid"), 80).dump_midi(str(path))
    out = tokenize_piece(TokenizeJob("p1", str(path), "remi", {}))
    f = out["fidelity"]
    assert out["status"] == "ok" and f.lost == {"too_long": 1}
    assert f.onset_err_ms_mean == 0.0 and f.onset_err_ms_p95 == 0.0
    assert f.onset_matched == f.notes


def test_every_lost_note_has_a_reason_and_decode_errors_are_named() -> None:
    e = enc("remi")
    s = real("waltz_3_4.mid")  # two piano staves: some unisons and overlaps of its own
    cmp = measure_detail(e, s, np.array([e.tokenizer.vocab["Bar_None"]] * 3, dtype=np.int32))
    assert cmp.fidelity.recovered == 0 and cmp.fidelity.decoded == 0
    assert all(cmp.reasons), "every lost note has a reason"
    assert sum(cmp.fidelity.lost.values()) == cmp.fidelity.notes
    assert cmp.fidelity.lost["missing"] > 0.8 * cmp.fidelity.notes
    broken = measure_detail(e, s, np.array([10**6], dtype=np.int32))
    assert broken.fidelity.error and broken.fidelity.error.startswith("decode failed")
    assert broken.fidelity.lost == {"decode_error": broken.fidelity.notes}


def test_pertok_keeps_microtiming_when_meters_have_two_denominators() -> None:
    """MidiTok's preprocessing snapped onsets to 4 per beat as soon as a piece had 4/4 and 6/8;
    PerTokTokenizer keeps them (a real Schumann quartet movement lost 763 notes this way)."""
    from musicdata.encodings.pertok import PerTok

    class MidiTokPerTok(PerTok):
        def _tokenizer_class(self):
            import miditok

            return miditok.PerTok

    s = symusic.Score.from_midi(humanize((FIXTURES / "chorale_4_4.mid").read_bytes(), seed=2))
    s.time_signatures.append(symusic.TimeSignature(8 * s.ticks_per_quarter, 6, 8))
    fixed = measure(enc("pertok"), s, enc("pertok").encode(s))
    assert fixed.ratio >= 0.99 and fixed.onset_err_ms_mean < 1.5, fixed
    old = MidiTokPerTok()
    f_old = measure(old, s, old.encode(s))
    assert f_old.lost.get("onset", 0) > 0.5 * f_old.notes, f_old
