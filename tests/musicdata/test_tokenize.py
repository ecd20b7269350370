"""REMI shards: schema, order, decode, stats, idempotence, determinism, crash recovery."""

from __future__ import annotations

import shutil
from pathlib import Path

import mido
import pyarrow.parquet as pq
import pytest
import symusic

from musicdata.encodings import get_encoding
from musicdata.schemas.shards import FLAT_TOKENS
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.store import read_shard_metadata, shard_relpath
from musicdata.workspace import Workspace
from tests.conftest import REAL, make_workspace


@pytest.fixture
def ingested(ws: Workspace, corpus: Path) -> Workspace:
    ingest_paths(ws, [corpus], run_id="ingest-1")
    return ws


def _shards(ws: Workspace) -> list[Path]:
    return sorted((ws.root / "shards").rglob("*.parquet"))


def test_remi_shards_schema_order_and_stats(ingested: Workspace) -> None:
    ws = ingested
    s = tokenize_encoding(ws, "remi", run_id="tok-1")
    assert s.tokenized == len(REAL) - 1  # the near duplicate adds no music
    assert s.quarantined == 0
    files = _shards(ws)
    assert files and all(f.parent.name in {"train", "validation", "test"} for f in files)
    total_rows, total_tokens = 0, 0
    for f in files:
        table = pq.read_table(f)
        assert table.schema.remove_metadata() == FLAT_TOKENS
        ids = table.column("piece_id").to_pylist()
        assert ids == sorted(ids)
        assert set(table.column("split").to_pylist()) == {f.parent.name}
        lengths = table.column("length").to_pylist()
        assert lengths == [len(t) for t in table.column("tokens").to_pylist()]
        meta = read_shard_metadata(f)
        assert meta["encoding"] == "remi" and meta["config_hash"] == s.config_hash
        assert pq.ParquetFile(f).metadata.row_group(0).column(3).compression == "ZSTD"
        total_rows += table.num_rows
        total_tokens += sum(lengths)
    stats = ws.catalog.query(
        "SELECT sum(pieces) AS pieces, sum(tokens) AS tokens, any_value(vocab_size) AS vocab "
        "FROM token_stats WHERE encoding = 'remi'"
    ).to_pylist()[0]
    assert (
        (stats["pieces"], stats["tokens"]) == (total_rows, total_tokens) == (s.tokenized, s.tokens)
    )
    assert stats["vocab"] == get_encoding("remi").vocab_size
    # the tokenizer config is saved beside the shards and its hash recorded
    enc = ws.catalog.query("SELECT config_path, config_hash FROM encodings").to_pylist()[0]
    assert (ws.root / enc["config_path"]).exists() and enc["config_hash"] == s.config_hash


def test_tokens_decode_back_to_the_notes(ingested: Workspace) -> None:
    ws = ingested
    tokenize_encoding(ws, "remi", run_id="tok-1")
    enc = get_encoding("remi")
    rows = ws.catalog.query(
        "SELECT p.piece_id, p.blob_path, p.n_notes FROM pieces p WHERE p.near_duplicate_of IS NULL"
    ).to_pylist()
    tokens = {}
    for f in _shards(ws):
        t = pq.read_table(f)
        tokens.update(
            zip(t.column("piece_id").to_pylist(), t.column("tokens").to_pylist(), strict=True)
        )
    for r in rows:
        decoded = enc.decode(tokens[r["piece_id"]])
        original = symusic.Score.from_midi((ws.root / r["blob_path"]).read_bytes())
        # REMI keeps every note in its pitch range (21..108); these pieces lie inside it
        assert decoded.note_num() == original.note_num() == r["n_notes"]


def test_rerun_is_a_no_op_and_new_pieces_go_to_new_shards(
    ingested: Workspace, corpus: Path
) -> None:
    ws = ingested
    tokenize_encoding(ws, "remi", run_id="tok-1")
    before = {f: f.read_bytes() for f in _shards(ws)}
    again = tokenize_encoding(ws, "remi", run_id="tok-2")
    assert (again.tokenized, again.shards_written) == (0, 0)
    assert {f: f.read_bytes() for f in _shards(ws)} == before
    extra = corpus.parent / "extra"
    extra.mkdir()
    mid = mido.MidiFile(corpus / "folk_6_8.mid")
    for track in mid.tracks:
        for msg in track:
            if msg.type == "note_on":
                msg.note = min(msg.note + 2, 108)  # a real tune, transposed: new music
    mid.save(extra / "folk_6_8_transposed.mid")
    ingest_paths(ws, [extra], run_id="ingest-2")
    third = tokenize_encoding(ws, "remi", run_id="tok-3")
    assert third.tokenized == 1 and third.shards_written == 1
    assert {f: f.read_bytes() for f in before} == before  # old shards untouched


def test_same_inputs_give_byte_identical_shards(tmp_path: Path, corpus: Path) -> None:
    digests = []
    for name in ("a", "b"):
        ws = make_workspace(tmp_path / name)
        ingest_paths(ws, [corpus], run_id=f"i-{name}")
        tokenize_encoding(ws, "remi", run_id=f"t-{name}")
        digests.append({f.relative_to(ws.root): f.read_bytes() for f in _shards(ws)})
    assert digests[0] == digests[1]


def test_crash_leftovers_are_adopted_or_deleted(ingested: Workspace, tmp_path: Path) -> None:
    ws = ingested
    first = tokenize_encoding(ws, "remi", run_id="tok-1")
    files = _shards(ws)
    # Simulate a crash between rename and catalog write in a fresh workspace with the same input.
    other = make_workspace(tmp_path / "other")
    shutil.copytree(ws.root / "objects", other.root / "objects")
    ingest_paths(other, [ws.root / "objects"], run_id="i")  # no: objects are not .mid files
    assert other.catalog.query("SELECT count(*) AS n FROM pieces").to_pylist()[0]["n"] == 0
    ingest_paths(other, [tmp_path / "corpus"], run_id="i2")
    enc = get_encoding("remi")
    for f in files:
        dest = other.root / f.relative_to(ws.root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    torn = other.root / shard_relpath(enc, "train", 7)
    torn.write_bytes(b"PAR1 torn write")
    tmp_left = torn.with_name(".part-00008.parquet.abcd1234.tmp")
    tmp_left.write_bytes(b"half")
    s = tokenize_encoding(other, "remi", run_id="tok-other")
    assert s.shards_adopted == len(files) and s.tokenized == 0
    assert not torn.exists() and not tmp_left.exists()
    stats = other.catalog.query("SELECT sum(tokens) AS t FROM token_stats").to_pylist()[0]["t"]
    assert stats == first.tokens


def test_unencodable_piece_is_quarantined_per_encoding(ws: Workspace, tmp_path: Path) -> None:
    # Notes all below REMI's pitch range (21..108): valid MIDI, nothing to encode.
    low = tmp_path / "low" / "sub_bass.mid"
    low.parent.mkdir()
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for note in (12, 14, 16):
        track += [
            mido.Message("note_on", note=note, velocity=80, time=0),
            mido.Message("note_off", note=note, velocity=0, time=480),
        ]
    mid.tracks.append(track)
    mid.save(low)
    ingest_paths(ws, [low.parent], run_id="i")
    s = tokenize_encoding(ws, "remi", run_id="t")
    assert s.quarantined == 1 and s.tokenized == 0
    q = ws.catalog.query("SELECT path, stage, reason, detail FROM quarantine").to_pylist()
    assert q[0]["path"] == str(low) and q[0]["stage"] == "tokenize:remi"
    assert q[0]["reason"] == "unencodable" and "pitch range" in q[0]["detail"]
    assert tokenize_encoding(ws, "remi", run_id="t2").quarantined == 0  # done, not retried
