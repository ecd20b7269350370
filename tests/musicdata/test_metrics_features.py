"""Per-piece features: hand-computed values on tiny hand-written pieces, and the vectorized
extractor against the per-note loop definitions on real and random pieces."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from musicdata.metrics.features import (
    FEATURES,
    FeatureConfig,
    Notes,
    extract_features,
    feature_shapes,
    notes_from_midi,
    notes_from_score,
)
from musicdata.testing.loops import piece_features_loop
from tests.conftest import FIXTURES, REAL

TPQ = 480


def score(notes: list[tuple[float, float, int]], bpm: float = 120.0, drums: bool = False):
    """A one-track score from (onset beat, length in beats, pitch), through real MIDI bytes."""
    s = symusic.Score(TPQ)
    s.tempos.append(symusic.Tempo(0, bpm))
    t = symusic.Track("piano", 0, False)
    for on, dur, p in notes:
        t.notes.append(symusic.Note(round(on * TPQ), round(dur * TPQ), p, 80))
    s.tracks.append(t)
    if drums:
        d = symusic.Track("drums", 0, True)
        for i in range(8):
            d.notes.append(symusic.Note(i * TPQ // 2, TPQ // 4, 36 + i % 3, 100))
        s.tracks.append(d)
    return symusic.Score.from_midi(s.dumps_midi())


def features_of(s) -> dict[str, np.ndarray]:
    f = extract_features([notes_from_score(s)])
    return {k: v[0] for k, v in f.items()}


def test_c_e_g_quarters_at_120_bpm_by_hand() -> None:
    f = features_of(score([(0, 1, 60), (1, 1, 64), (2, 1, 67)]))
    assert f["pc"] == 3 and f["nc"] == 3 and f["pr"] == 7
    assert f["pi"] == pytest.approx(3.5)  # |64-60|, |67-64|
    assert f["ioi"] == pytest.approx(0.5)  # seconds
    want_pch = np.zeros(12)
    want_pch[[0, 4, 7]] = 1 / 3  # 0.5 s each
    np.testing.assert_allclose(f["pch"], want_pch)
    # C ends where E starts, E ends where G starts: C->E and E->G, half each
    want_pctm = np.zeros((12, 12))
    want_pctm[0, 4] = want_pctm[4, 7] = 0.5
    np.testing.assert_allclose(f["pctm"], want_pctm)
    assert f["nlh"][2] == 1 and f["nlh"].sum() == 1  # all quarters (class 2)
    assert f["nltm"][2, 2] == 1 and f["nltm"].sum() == 1
    # 64 segments of 1.5 s / 64: onsets 0, 0.5, 1.0 fall in segments 0, 21, 42
    onsets_in = np.zeros(64)
    onsets_in[[0, 21, 42]] = 1
    np.testing.assert_array_equal(f["nc_seg"], onsets_in)
    np.testing.assert_array_equal(f["pc_seg"], onsets_in)
    np.testing.assert_array_equal(f["ioi_seg"], np.zeros(64))
    # segment 21 is [0.4921875, 0.515625): 0.0078125 s of C then 0.015625 s of E
    assert f["pch_seg"][21, 0] == pytest.approx(1 / 3)
    assert f["pch_seg"][21, 4] == pytest.approx(2 / 3)
    assert f["pch_seg"][0, 0] == 1 and f["pch_seg"][63, 7] == 1
    np.testing.assert_allclose(f["pch_seg"].sum(axis=1), np.ones(64))


def test_chord_then_note_by_hand() -> None:
    f = features_of(score([(0, 1, 60), (0, 1, 64), (0, 1, 67), (1, 1, 72)]))
    assert f["pc"] == 4 and f["pr"] == 12
    assert f["pi"] == pytest.approx((4 + 3 + 5) / 3)  # order: onset, then pitch
    assert f["ioi"] == pytest.approx(0.5)  # distinct onsets 0 and 0.5 s only
    want = np.zeros((12, 12))
    want[0, 0] = want[4, 0] = want[7, 0] = 1 / 3  # three chord offsets meet the C5 onset
    np.testing.assert_allclose(f["pctm"], want)


def test_note_length_classes_follow_beats_not_seconds() -> None:
    # at 60 bpm: half note, dotted quarter, 8th-note triplet, whole note
    f = features_of(score([(0, 2, 60), (2, 1.5, 62), (3.5, 1 / 3, 64), (4, 4, 65)], bpm=60))
    want = np.zeros(12)
    want[[1, 6, 11, 0]] = 0.25
    np.testing.assert_allclose(f["nlh"], want)
    assert f["ioi"] == pytest.approx(np.mean([2.0, 1.5, 0.5]))  # seconds at 60 bpm
    want_tm = np.zeros((12, 12))
    want_tm[1, 6] = want_tm[6, 11] = want_tm[11, 0] = 1 / 3
    np.testing.assert_allclose(f["nltm"], want_tm)


def test_drum_tracks_are_left_out() -> None:
    melody = [(0, 1, 60), (1, 1, 64), (2, 1, 67)]
    with_drums, without = features_of(score(melody, drums=True)), features_of(score(melody))
    for k in FEATURES:
        np.testing.assert_array_equal(with_drums[k], without[k], err_msg=k)


def test_tempo_change_moves_seconds_not_beats() -> None:
    s = score([(0, 1, 60), (1, 1, 62), (2, 1, 64)])
    s.tempos.append(symusic.Tempo(TPQ, 60.0))  # from beat 1 on, one beat lasts 1 s
    f = features_of(symusic.Score.from_midi(s.dumps_midi()))
    assert f["ioi"] == pytest.approx((0.5 + 1.0) / 2)
    assert f["nlh"][2] == 1  # still three quarter notes


def test_empty_and_single_note_pieces_are_zero_not_nan() -> None:
    empty = Notes.from_arrays(np.zeros(0), np.zeros(0), np.zeros(0))
    one = Notes.from_arrays([1.0], [1.5], [60])
    f = extract_features([empty, one])
    for k, v in f.items():
        assert np.isfinite(v).all(), k
        assert v.shape[1:] == feature_shapes()[k], k
        assert not v[0].any(), f"empty piece has non-zero {k}"
    assert f["pc"][1] == 1 and f["pi"][1] == 0 and f["ioi"][1] == 0 and f["pr"][1] == 0


def test_bad_note_arrays_are_rejected_with_the_fix() -> None:
    with pytest.raises(ValueError, match="MIDI numbers"):
        Notes.from_arrays([0.0], [1.0], [200])
    with pytest.raises(ValueError, match="offset < onset"):
        Notes.from_arrays([1.0], [0.5], [60])
    with pytest.raises(ValueError, match="differ in length"):
        Notes.from_arrays([0.0, 1.0], [1.0], [60])


@pytest.mark.parametrize("name", REAL)
def test_vectorized_matches_loops_on_real_files(name: str) -> None:
    notes = notes_from_midi((FIXTURES / name).read_bytes())
    assert len(notes) > 0
    vec = extract_features([notes])
    loop = piece_features_loop(notes)
    for k in FEATURES:
        np.testing.assert_allclose(vec[k][0], loop[k], atol=1e-9, err_msg=f"{name}: {k}")


def test_vectorized_matches_loops_on_random_sets() -> None:
    rng = np.random.default_rng(7)
    pieces = []
    for _ in range(40):
        n = int(rng.integers(0, 80))
        on = np.round(rng.uniform(0, 20, n), 2)  # rounded: shared onsets, chords, ties
        dur = rng.choice([0.0, 0.05, 0.125, 0.25, 0.5, 1.0, 4.0], n)
        pieces.append(Notes.from_arrays(on, on + dur, rng.integers(21, 109, n)))
    cfg = FeatureConfig(n_segments=16, pctm_time_thresh_s=0.05)
    vec = extract_features(pieces, cfg)
    for i, p in enumerate(pieces):
        loop = piece_features_loop(p, cfg)
        for k in FEATURES:
            np.testing.assert_allclose(vec[k][i], loop[k], atol=1e-9, err_msg=f"piece {i}: {k}")


def test_a_piece_does_not_depend_on_its_neighbours_in_the_batch() -> None:
    a = notes_from_midi((FIXTURES / REAL[0]).read_bytes())
    b = notes_from_midi((FIXTURES / REAL[3]).read_bytes())
    alone = extract_features([b])
    batched = extract_features([a, b, a])
    for k in FEATURES:
        np.testing.assert_array_equal(alone[k][0], batched[k][1], err_msg=k)
