"""models/data on real shards (the fixture MIDI tokenized with remi and nb-pf)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from musicdata.models.data import (
    PitchTransposer,
    ShardIntegrityError,
    SplitReader,
    TrainBatches,
    collate,
    eval_batches,
    eval_windows,
    make_transposer,
    plan_windows,
    shard_for_rank,
)
from musicdata.schemas.manifest import ShardManifest


def piece_tokens(manifest: ShardManifest, split: str) -> list[np.ndarray]:
    """All pieces of a split read whole with pyarrow: the oracle for the streaming reader."""
    out = []
    for f in manifest.split(split):
        for toks in pq.read_table(manifest.abspath(f), columns=["tokens"]).column("tokens"):
            out.append(np.asarray(toks.as_py(), dtype=np.int64))
    return out


@pytest.mark.parametrize("which", ["remi_manifest", "nb_manifest"])
def test_reader_matches_whole_table(which: str, request: pytest.FixtureRequest) -> None:
    manifest: ShardManifest = request.getfixturevalue(which)
    want = piece_tokens(manifest, "train")
    reader = SplitReader(manifest, "train", cache_row_groups=1)  # 2 rows per group: evictions
    assert len(reader) == len(want) == 5
    assert reader.lengths.tolist() == [len(w) for w in want]
    for i in [4, 0, 3, 1, 2, 0]:
        got = reader.piece(i)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want[i].reshape(got.shape))
        if manifest.kind == "compound":
            assert got.shape[1] == manifest.n_fields
    np.testing.assert_array_equal(
        reader.window(2, 5, 9), want[2].reshape(reader.piece(2).shape)[5:9]
    )


def _copy(manifest: ShardManifest, dest: Path) -> ShardManifest:
    shutil.copytree(manifest.root, dest)
    return replace(manifest, root=str(dest))


def test_changed_shard_is_refused_naming_the_file(
    remi_manifest: ShardManifest, tmp_path: Path
) -> None:
    m = _copy(remi_manifest, tmp_path / "shards")
    path = m.abspath(m.split("train")[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ShardIntegrityError, match=str(path.name)):
        SplitReader(m, "train")
    path.unlink()
    with pytest.raises(ShardIntegrityError, match="does not exist"):
        SplitReader(m, "train")
    with pytest.raises(ValueError, match="no 'test' shards"):
        SplitReader(m, "test")


@pytest.mark.parametrize("strategy", ["stride", "effective", "random"])
def test_plans_are_deterministic_and_in_range(strategy: str) -> None:
    lengths = np.array([1, 2, 7, 40, 130, 600])
    max_len, q = 32, 8
    a = plan_windows(lengths, strategy, max_len, seed=3, epoch=0, query_len=q)
    b = plan_windows(lengths, strategy, max_len, seed=3, epoch=0, query_len=q)
    c = plan_windows(lengths, strategy, max_len, seed=3, epoch=1, query_len=q)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "another epoch must draw other windows"
    assert 0 not in a[:, 0], "a one-token piece gives no window"
    piece, start, end = a.T
    n = lengths[piece]
    assert ((start >= 0) & (start < end) & (end <= n) & (end - start <= max_len + 1)).all()
    if strategy == "effective":
        assert (end >= np.minimum(q + 1, n)).all()
        assert (start == np.maximum(0, end - max_len - 1)).all()
    if strategy == "random":
        assert (end - start == np.minimum(n, max_len + 1)).all()
    if strategy == "stride":
        for p in np.unique(piece):
            rows = a[piece == p]
            rows = rows[np.argsort(rows[:, 1])]
            assert rows[0, 1] == 0 and rows[-1, 2] == lengths[p], "stride covers the piece"
            steps = np.diff(rows[:, 1])
            assert ((steps >= max_len // 2) & (steps <= max_len)).all(), steps


@pytest.mark.parametrize("pad_side,hop", [("right", None), ("left", 8), ("left", 32)])
def test_eval_windows_score_each_target_once(pad_side: str, hop: int | None) -> None:
    lengths = np.array([2, 9, 33, 34, 100])
    max_len = 32
    scored = {i: [] for i in range(len(lengths))}
    for p, s, e in eval_windows(lengths, max_len, pad_side=pad_side, hop=hop):
        targets = list(range(s + 1, e))
        if pad_side == "left":
            targets = targets[-(hop or max_len) :]  # a Perceiver scores its last hop positions
        scored[int(p)] += targets
    for i, n in enumerate(lengths):
        assert sorted(scored[i]) == list(range(1, n)), f"piece {i}"


def test_rank_shards_are_disjoint_and_even() -> None:
    w = plan_windows(np.array([50, 70, 90]), "stride", 16, seed=0, epoch=0)
    parts = [shard_for_rank(w, r, 3) for r in range(3)]
    assert len({len(p) for p in parts}) == 1
    rows = {tuple(r) for p in parts for r in p}
    assert len(rows) == sum(len(p) for p in parts) and len(rows) >= len(w) - 2


def test_collate_pads_right_and_left() -> None:
    s = [np.array([5, 6, 7]), np.array([8])]
    right = collate(s, pad_value=0)
    assert right["tokens"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["mask"].tolist() == [[True, True, True], [True, False, False]]
    left = collate(s, pad_value=0, pad_side="left", length=4)
    assert left["tokens"].tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    assert left["mask"].tolist() == [[False, True, True, True], [False, False, False, True]]
    comp = collate([np.ones((3, 4), dtype=np.int64), np.ones((2, 4), dtype=np.int64)], pad_value=0)
    assert comp["tokens"].shape == (2, 3, 4) and comp["tokens"].dtype == torch.long
    assert comp["tokens"][1, 2].tolist() == [0, 0, 0, 0]


def test_transposition_moves_pitches_only(remi_manifest: ShardManifest) -> None:
    vocab = remi_manifest.extra["vocab"]
    tr = make_transposer(remi_manifest, 4)
    assert tr is not None
    piece = SplitReader(remi_manifest, "train").piece(0)
    names = np.array(vocab[0])
    shifts = tr.allowed_shifts(piece)
    assert 0 in shifts and len(shifts) == 9  # chorale pitches sit far from the 21..108 edges
    out = tr.shift(piece, 3)
    is_pitch = np.char.startswith(names[piece].astype(str), "Pitch_")
    assert is_pitch.any()
    np.testing.assert_array_equal(out[~is_pitch], piece[~is_pitch])
    before = [int(t.split("_")[1]) for t in names[piece[is_pitch]]]
    after = [int(t.split("_")[1]) for t in names[out[is_pitch]]]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3] * len(before)


def test_transposition_keeps_pitches_in_vocab_and_skips_drums() -> None:
    vocab = [["PAD_None", "Pitch_60", "Pitch_61", "Pitch_62", "PitchDrum_36", "PitchDrum_37"]]
    tr = PitchTransposer(vocab, 3)
    window = np.array([1, 3, 4, 0])  # Pitch_60, Pitch_62, PitchDrum_36, PAD
    assert tr.allowed_shifts(window) == [0]
    assert tr.allowed_shifts(np.array([1, 4])) == [0, 1, 2]
    np.testing.assert_array_equal(tr.shift(np.array([1, 4, 2]), 1), [2, 4, 3])
    rng = np.random.default_rng(0)
    seen = {tr(np.array([2, 4]), rng)[1] for _ in range(50)}
    assert seen == {-1, 0, 1}


def test_transposition_of_performance_note_events() -> None:
    """The performance encoding (PerceiverS) names pitches NOTE_ON_n / NOTE_OFF_n."""
    vocab = [
        ["PAD", "EOS"]
        + [f"NOTE_ON_{i}" for i in range(128)]
        + [f"NOTE_OFF_{i}" for i in range(128)]
        + ["TIME_SHIFT_1", "VELOCITY_1"]
    ]
    tr = PitchTransposer(vocab, 2)
    on, off = 2, 130
    window = np.array([258, on + 60, 259, off + 60, on + 127, off + 127, 1])
    assert tr.allowed_shifts(window) == [-2, -1, 0]
    np.testing.assert_array_equal(
        tr.shift(window, -2), [258, on + 58, 259, off + 58, on + 125, off + 125, 1]
    )


def test_transposition_of_compound_pitch_field(nb_manifest: ShardManifest) -> None:
    tr = make_transposer(nb_manifest, 2)
    assert tr is not None
    piece = SplitReader(nb_manifest, "train").piece(0)
    pitch_field = nb_manifest.sub_tokens.index("Pitch")
    out = tr.shift(piece, -2)
    others = [f for f in range(piece.shape[1]) if f != pitch_field]
    np.testing.assert_array_equal(out[:, others], piece[:, others])
    names = nb_manifest.extra["vocab"][pitch_field]
    moved = [
        (names[a], names[b])
        for a, b in zip(piece[:, pitch_field], out[:, pitch_field], strict=True)
        if names[a].startswith("Pitch_")
    ]
    assert moved and all(int(b[6:]) == int(a[6:]) - 2 for a, b in moved)


def test_train_batches_resume_from_state(remi_manifest: ShardManifest) -> None:
    def loader() -> TrainBatches:
        return TrainBatches(
            SplitReader(remi_manifest, "train"),
            strategy="stride",
            max_len=64,
            batch_size=4,
            seed=1,
            pad_value=0,
            transposer=make_transposer(remi_manifest, 3),
        )

    a = loader()
    for _ in range(9):  # crosses an epoch boundary (about 2,250 tokens / 64 per window)
        a.next_batch()
    state = a.state_dict()
    want = [a.next_batch() for _ in range(40)]
    assert a.epoch >= 1
    b = loader()
    b.load_state_dict(state)
    for x, y in zip(want, (b.next_batch() for _ in range(40)), strict=True):
        assert torch.equal(x["tokens"], y["tokens"]) and torch.equal(x["mask"], y["mask"])
    assert want[0]["tokens"].shape[1] <= 65 and want[0]["mask"][:, 0].all()


def test_eval_batches_cover_the_split(nb_manifest: ShardManifest) -> None:
    reader = SplitReader(nb_manifest, "validation")
    batches = list(eval_batches(reader, max_len=16, batch_size=3, pad_value=0))
    n_targets = sum(int(b["mask"][:, 1:].sum()) for b in batches)
    assert n_targets == int((reader.lengths - 1).sum())
    assert all(b["tokens"].shape[2] == nb_manifest.n_fields for b in batches)
