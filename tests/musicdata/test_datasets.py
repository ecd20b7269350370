"""musicdata.load_dataset: one config pinned, named sub-token Features, torch view, collator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tokenized_ws
import torch

from musicdata.datasets import Collator, ConfigChoiceError, load_dataset
from musicdata.encodings import get_encoding
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.workspace import Workspace


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return tokenized_ws.shared(tmp_path_factory)


def _shard_rows(ws: Workspace, encoding: str) -> dict[str, np.ndarray]:
    """piece id -> tokens, read straight from the shard files the catalog lists."""
    out = {}
    paths = ws.catalog.query("SELECT path FROM shards WHERE encoding = ?", [encoding])
    for rel in paths.column("path").to_pylist():
        t = pq.read_table(ws.root / rel)
        for pid, toks in zip(t["piece_id"].to_pylist(), t["tokens"].to_pylist(), strict=True):
            out[pid] = np.asarray(toks)
    return out


def test_flat_dataset_matches_the_catalog(built: Workspace) -> None:
    dd = load_dataset(built.root, "remi")
    stats = built.catalog.query(
        "SELECT split, pieces, tokens, config_hash FROM token_stats WHERE encoding = 'remi'"
    ).to_pylist()
    assert set(dd) == {r["split"] for r in stats}
    for r in stats:
        ds = dd[r["split"]]
        assert ds.num_rows == r["pieces"] and sum(ds["length"]) == r["tokens"]
        assert set(ds["config_hash"]) == {r["config_hash"]}
        assert ds["piece_id"] == sorted(ds["piece_id"])
        assert str(ds.features["tokens"]) == "List(Value('int32'))"
    expected = _shard_rows(built, "remi")
    train = dd["train"]
    for row in train:
        assert row["tokens"] == expected[row["piece_id"]].tolist()
        assert row["length"] == len(row["tokens"])
    # one split by name, a Dataset; `musicdata.load_dataset` is the same function
    import musicdata

    assert musicdata.load_dataset is load_dataset
    assert load_dataset(built, "remi", split="train").num_rows == train.num_rows


def test_compound_features_name_every_sub_token(built: Workspace) -> None:
    ds = load_dataset(built.root, "cp", split="train")
    names = get_encoding("cp").sub_tokens
    assert list(ds.features["tokens"]) == names
    assert all(str(f) == "List(Value('int16'))" for f in ds.features["tokens"].values())
    expected = _shard_rows(built, "cp")
    row = ds[0]
    stacked = np.stack([row["tokens"][n] for n in names], axis=-1)
    assert stacked.shape == (row["length"], len(names))
    np.testing.assert_array_equal(stacked, expected[row["piece_id"]])


def test_torch_view_and_collator(built: Workspace) -> None:
    flat = load_dataset(built.root, "remi", split="train").with_format("torch")
    rows = [flat[i] for i in range(3)]
    assert isinstance(rows[0]["tokens"], torch.Tensor)
    lengths = [int(r["length"]) for r in rows]
    batch = Collator(pad_id=0)(rows)
    assert batch["input_ids"].shape == (3, max(lengths)) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for i, n in enumerate(lengths):
        assert torch.equal(batch["input_ids"][i, :n], rows[i]["tokens"].long())
        assert (batch["input_ids"][i, n:] == 0).all()
    left = Collator(pad_id=0, pad_on_left=True, max_length=50)(rows)
    assert left["input_ids"].shape == (3, 50)
    assert left["attention_mask"][:, -1].tolist() == [1, 1, 1]
    lab = Collator(0, copy_inputs_as_labels=True, shift_labels=True)(rows)
    short = lengths.index(min(lengths))
    assert lab["input_ids"].shape == lab["labels"].shape == (3, max(lengths) - 1)
    assert (lab["labels"][short, min(lengths) - 1 :] == -100).all()
    assert torch.equal(lab["labels"][:, :5], batch["input_ids"][:, 1:6])

    cp = load_dataset(built.root, "cp", split="train").with_format("torch")
    rows = [cp[i] for i in range(2)]
    assert set(rows[0]["tokens"]) == set(get_encoding("cp").sub_tokens)
    batch = Collator(pad_id=0)(rows)
    n_fields = len(get_encoding("cp").sub_tokens)
    assert batch["input_ids"].shape == (2, max(int(r["length"]) for r in rows), n_fields)
    assert batch["attention_mask"].sum(1).tolist() == [int(r["length"]) for r in rows]


def test_several_configs_are_an_error_that_lists_them(built: Workspace, tmp_path: Path) -> None:
    ws = tokenized_ws.copy(built, tmp_path / "home")
    other = tokenized_ws.with_overrides(ws, remi={"num_velocities": 16})
    tokenize_encoding(other, "remi", run_id="tok-remi-16", steps=tokenized_ws.IN_PROCESS)
    rows = ws.catalog.query(
        "SELECT config_hash, vocab_size FROM encodings WHERE encoding = 'remi' ORDER BY created_at"
    ).to_pylist()
    old, new = rows[0]["config_hash"], rows[1]["config_hash"]
    assert rows[0]["vocab_size"] != rows[1]["vocab_size"]  # two vocabularies
    with pytest.raises(ConfigChoiceError) as err:
        load_dataset(ws.root, "remi")
    assert old in str(err.value) and new in str(err.value) and "created" in str(err.value)
    latest = load_dataset(ws.root, "remi", split="train", config_hash="latest")
    assert set(latest["config_hash"]) == {new}
    pinned = load_dataset(ws.root, "remi", split="train", config_hash=old[:6])
    assert set(pinned["config_hash"]) == {old}
    with pytest.raises(ConfigChoiceError, match="no config hash starts with"):
        load_dataset(ws.root, "remi", config_hash="nope")
    with pytest.raises(ConfigChoiceError, match="tokenize --encoding octuple"):
        load_dataset(ws.root, "octuple")
    with pytest.raises(ConfigChoiceError, match="no shards for split"):
        load_dataset(ws.root, "cp", split="nonexistent")


def test_import_musicdata_stays_light() -> None:
    code = (
        "import sys, musicdata; heavy = {'datasets', 'torch', 'miditok'} & set(sys.modules); "
        "assert not heavy, heavy; assert callable(musicdata.load_dataset)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
