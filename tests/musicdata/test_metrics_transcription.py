"""Note-level transcription scores (mir_eval) with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from musicdata.metrics.transcription import midi_to_hz, note_arrays, note_scores, score_midi_pair
from tests.conftest import FIXTURES

REF_IV = np.array([[0.0, 0.5], [0.5, 1.0], [1.0, 2.0], [2.0, 2.5]])
REF_P = np.array([60, 64, 67, 72])


def test_midi_to_hz() -> None:
    np.testing.assert_allclose(midi_to_hz([69, 81, 60]), [440.0, 880.0, 261.6255653], rtol=1e-7)


def test_perfect_transcription_scores_1() -> None:
    s = note_scores(REF_IV, REF_P, REF_IV, REF_P)
    assert s["precision"] == s["recall"] == s["f1"] == s["f1_with_offsets"] == 1.0


def test_onset_tolerance_pitch_and_offsets_by_hand() -> None:
    est_iv = REF_IV.copy()
    est_iv[0] += 0.04  # within 50 ms: still a hit
    est_iv[1, 0] += 0.08  # onset 80 ms late: a miss
    est_iv[2, 1] = 1.3  # onset right, offset far too early: hit onset-only, miss with offsets
    est_p = REF_P.copy()
    est_p[3] = 73  # wrong pitch: a miss
    extra_iv = np.vstack([est_iv, [[3.0, 3.5]]])  # one spurious note
    extra_p = np.append(est_p, 50)
    s = note_scores(REF_IV, REF_P, extra_iv, extra_p)
    assert s["recall"] == pytest.approx(2 / 4)  # notes 0 and 2
    assert s["precision"] == pytest.approx(2 / 5)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert s["recall_with_offsets"] == pytest.approx(1 / 4)  # only note 0
    assert s["f1_with_offsets"] == pytest.approx(2 * 0.25 * 0.2 / 0.45)
    wider = note_scores(REF_IV, REF_P, extra_iv, extra_p, onset_tolerance=0.1)
    assert wider["recall"] == pytest.approx(3 / 4)


def test_empty_sets_do_not_crash() -> None:
    empty = np.zeros((0, 2))
    assert note_scores(empty, [], empty, [])["f1"] == 1.0  # nothing to find, nothing spurious
    assert note_scores(REF_IV, REF_P, empty, [])["f1"] == 0.0
    s = note_scores(empty, [], REF_IV, REF_P)
    assert s["precision"] == 0.0 and s["n_est"] == 4


def test_mismatched_lengths_are_reported() -> None:
    with pytest.raises(ValueError, match="4 intervals but 3 pitches"):
        note_scores(REF_IV, REF_P[:3], REF_IV, REF_P)


def test_score_midi_pair_on_a_real_file() -> None:
    ref = symusic.Score.from_midi((FIXTURES / "multitrack_tempo_change.mid").read_bytes())
    iv, p = note_arrays(ref)
    assert len(p) > 0 and (np.diff(iv[:, 0]) >= 0).all()
    assert score_midi_pair(ref, ref)["f1_with_offsets"] == 1.0
    up = ref.shift_pitch(1)  # every pitch a semitone off: nothing matches
    assert score_midi_pair(ref, up)["f1"] == 0.0
    late = ref.shift_time(ref.tpq // 2)  # eighth note late: onsets miss
    assert score_midi_pair(ref, late)["recall"] < 0.2
