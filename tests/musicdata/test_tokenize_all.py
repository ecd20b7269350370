"""`tokenize --all` as a library call: every encoding's shards, schemas, fidelity and compression
rows, per-encoding quarantine, and a resumable rerun."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import symusic

from musicdata.encodings import REGISTRY, get_encoding
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.store import read_shard_metadata
from musicdata.workspace import Workspace
from tests.conftest import REAL

ALL = sorted(REGISTRY)


def _drum_only(path: Path) -> None:
    s = symusic.Score(480)
    t = symusic.Track(program=0, is_drum=True)
    for i in range(8):
        t.notes.append(symusic.Note(i * 240, 120, 36 + (i % 2) * 2, 100))
    s.tracks.append(t)
    s.dump_midi(str(path))


def test_all_encodings_shards_fidelity_compression_and_rerun(ws: Workspace, corpus: Path) -> None:
    _drum_only(corpus / "drums_only.mid")
    ingest_paths(ws, [corpus], run_id="ingest-1")
    run_ids = {n: f"t1:{n}" for n in ALL}
    summaries = {s.encoding: s for s in tokenize_encodings(ws, ALL, run_ids=run_ids)}
    pieces = len(REAL)  # 6 distinct real pieces (one near duplicate left out) + the drum piece
    for name, s in summaries.items():
        if name == "performance":  # no drum events in its vocabulary: quarantined for it alone
            assert (s.tokenized, s.quarantined, s.reasons) == (pieces - 1, 1, {"unencodable": 1})
        else:
            assert (s.tokenized, s.quarantined) == (pieces, 0), name

    for name in ALL:
        enc = get_encoding(name)
        files = sorted((ws.root / "shards" / name / enc.config_hash).rglob("*.parquet"))
        assert files, name
        for f in files:
            table = pq.read_table(f)
            tokens_type = table.schema.field("tokens").type
            meta = read_shard_metadata(f)
            assert meta["encoding"] == name and meta["config_hash"] == enc.config_hash
            if enc.kind == "flat":
                assert tokens_type == pa.list_(pa.field("item", pa.int32(), nullable=False))
                assert "sub_tokens" not in meta
            else:
                item = tokens_type.value_type
                assert pa.types.is_fixed_size_list(item) and item.value_type == pa.int16()
                assert item.list_size == len(enc.sub_tokens)
                assert meta["sub_tokens"].split(",") == enc.sub_tokens
            decoded = enc.decode(table.column("tokens")[0].values.to_numpy(zero_copy_only=False))
            assert sum(len(t.notes) for t in decoded.tracks) > 0

    q = ws.catalog.query
    fid = {r["encoding"]: r for r in q("SELECT * FROM fidelity").to_pylist()}
    assert set(fid) == set(ALL)
    for name, row in fid.items():
        assert row["decode_errors"] == 0
        assert row["fidelity"] >= (0.99 if row["lossless"] else 0.85), (name, row)
    comp = {r["encoding"]: r for r in q("SELECT * FROM compression").to_pylist()}
    assert set(comp) == set(ALL)
    common = pieces - 1  # the drum piece is not in every encoding
    assert all(r["pieces"] == common for r in comp.values())
    assert comp["remi"]["length_vs_remi"] == 1.0
    assert comp["nb-mf"]["length_vs_remi"] < 0.5  # one compound token per note
    assert comp["nb-mf"]["mean_length"] == comp["nb-pf"]["mean_length"]
    enc_rows = q("SELECT encoding, sub_tokens, sub_vocab_sizes FROM encodings").to_pylist()
    for row in enc_rows:
        assert (row["sub_tokens"] is None) == (REGISTRY[row["encoding"]].kind == "flat")
    quarantined = q("SELECT stage, reason FROM quarantine WHERE stage LIKE 'tokenize:%'")
    assert quarantined.to_pylist() == [{"stage": "tokenize:performance", "reason": "unencodable"}]

    again = tokenize_encodings(ws, ALL, run_ids={n: f"t2:{n}" for n in ALL})
    assert all(s.tokenized == s.quarantined == s.shards_written == 0 for s in again)
    per_piece = q("SELECT count(*) AS n FROM core.fidelity").to_pylist()[0]["n"]
    assert per_piece == sum(s.tokenized for s in summaries.values())


def test_learned_bpe_trains_on_train_split_saves_hashes_and_decodes(
    ws: Workspace, corpus: Path
) -> None:
    ingest_paths(ws, [corpus], run_id="ingest-1")
    base, bpe = tokenize_encodings(ws, ["remi", "remi-bpe"], run_ids={"remi": "r", "remi-bpe": "b"})
    assert bpe.tokenized == base.tokenized and bpe.quarantined == 0
    assert bpe.tokens < base.tokens  # merges shorten the sequences
    row = ws.catalog.query(
        "SELECT config_hash, config_path, config_json, vocab_size FROM encodings "
        "WHERE encoding = 'remi-bpe'"
    ).to_pylist()[0]
    trained = ws.root / row["config_path"]
    import json

    from musicdata.fsutil import sha256_file

    params = json.loads(row["config_json"])
    assert params["tokenizer_sha256"] == sha256_file(trained)
    assert params["training_set"] and row["vocab_size"] > get_encoding("remi").vocab_size
    train_ids = {
        r["piece_id"]
        for r in ws.catalog.query(
            "SELECT piece_id FROM pieces WHERE split = 'train' AND near_duplicate_of IS NULL"
        ).to_pylist()
    }
    from musicdata.encodings.learned import training_set_hash

    assert params["training_set"] == training_set_hash(sorted(train_ids))  # train split only
    fid = ws.catalog.query("SELECT fidelity FROM fidelity WHERE encoding = 'remi-bpe'")
    assert fid.to_pylist()[0]["fidelity"] >= 0.99  # BPE is lossless over its base encoding
    again = tokenize_encodings(ws, ["remi-bpe"], run_ids={"remi-bpe": "b2"})[0]
    assert again.config_hash == row["config_hash"] and again.tokenized == 0
