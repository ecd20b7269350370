"""In-place shard views: answers checked against the Parquet files read directly, flat and
compound shards, another working directory, a moved workspace, and a reader while a writer runs."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from musicdata.catalog.shard_views import refresh_shard_views, shard_views_root
from musicdata.cli import app
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.testing.synthetic import SyntheticEncoding, write_synthetic_corpus
from musicdata.workspace import Workspace
from tests.conftest import make_workspace

NB = SyntheticEncoding("nb-pf", (12, 40, 30, 20), ("metric", "pitch", "duration", "velocity"))
FLAT = SyntheticEncoding("remi", (300,), unused=7)


def _refresh(ws: Workspace) -> list[str]:
    with ws.catalog.write() as con:
        return refresh_shard_views(con, ws.root)


def _q(ws: Workspace, sql: str) -> list[dict]:
    return ws.catalog.query(sql).to_pylist()


def test_remi_views_match_the_shard_files(ws: Workspace, corpus: Path) -> None:
    ingest_paths(ws, [corpus], run_id="ingest")
    tokenize_encoding(ws, "remi", run_id="tok")
    views = _refresh(ws)
    assert "tokens.remi" in views and "main.vocab_coverage" in views
    files = sorted((ws.root / "shards" / "remi").rglob("*.parquet"))
    table = pq.read_table(files)  # the truth, read without DuckDB
    ids = np.concatenate([np.asarray(t) for t in table["tokens"].to_pylist()])
    stats = _q(ws, "SELECT split, pieces, tokens, max_length FROM token_length_stats")
    by_split = {r["split"]: r for r in stats}
    for split in set(table["split"].to_pylist()):
        lens = [
            ln
            for ln, s in zip(table["length"].to_pylist(), table["split"].to_pylist(), strict=True)
            if s == split
        ]
        assert by_split[split]["pieces"] == len(lens)
        assert by_split[split]["tokens"] == sum(lens)
        assert by_split[split]["max_length"] == max(lens)
    freq = _q(ws, "SELECT token, sum(count)::BIGINT AS n FROM token_frequencies GROUP BY token")
    counts = np.bincount(ids)
    assert {r["token"]: r["n"] for r in freq} == {i: c for i, c in enumerate(counts) if c}
    vocab = _q(ws, "SELECT vocab_size FROM encodings")[0]["vocab_size"]
    cov = _q(ws, "SELECT field, vocab_size, seen, never_seen FROM vocab_coverage")
    assert cov == [
        {
            "field": "token",
            "vocab_size": vocab,
            "seen": len(set(ids.tolist())),
            "never_seen": vocab - len(set(ids.tolist())),
        }
    ]
    unused = {r["token"] for r in _q(ws, "SELECT token FROM unused_tokens")}
    assert unused == set(range(vocab)) - set(ids.tolist())
    joined = _q(ws, "SELECT count(*) AS n, count(n_notes) AS with_meta FROM piece_lengths")
    assert joined == [{"n": table.num_rows, "with_meta": table.num_rows}]
    ratio = _q(ws, "SELECT DISTINCT length_ratio FROM length_vs_remi")
    assert ratio == [{"length_ratio": 1.0}]  # remi against itself


def test_compound_subtoken_frequencies_per_field(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "home")
    gen = write_synthetic_corpus(ws, 60, [FLAT, NB], seed=1)
    _refresh(ws)
    steps = np.concatenate(list(gen["nb-pf"].values()))  # [T, 4]
    rows = _q(
        ws,
        "SELECT field_index, field, token, sum(count)::BIGINT AS n FROM token_frequencies "
        "WHERE encoding = 'nb-pf' GROUP BY ALL",
    )
    for i, name in enumerate(NB.fields):
        got = {r["token"]: r["n"] for r in rows if r["field_index"] == i + 1}
        assert {r["field"] for r in rows if r["field_index"] == i + 1} == {name}
        counts = np.bincount(steps[:, i])
        assert got == {t: c for t, c in enumerate(counts) if c}
    cov = _q(
        ws,
        "SELECT field, vocab_size, seen FROM vocab_coverage WHERE encoding = 'nb-pf' "
        "ORDER BY field_index",
    )
    assert [r["field"] for r in cov] == list(NB.fields)
    assert [r["vocab_size"] for r in cov] == list(NB.vocab_sizes)
    assert [r["seen"] for r in cov] == [len(set(steps[:, i].tolist())) for i in range(4)]
    # Lengths count compound steps; compression is relative to remi on the same pieces.
    lens = _q(ws, "SELECT sum(length)::BIGINT AS n FROM token_lengths WHERE encoding = 'nb-pf'")
    assert lens == [{"n": len(steps)}]
    ratio = _q(
        ws,
        "SELECT sum(tokens) / sum(baseline_tokens) AS r FROM length_vs_remi "
        "WHERE encoding = 'nb-pf'",
    )
    assert ratio[0]["r"] == pytest.approx(len(steps) / sum(len(v) for v in gen["remi"].values()))


def test_field_names_come_from_parquet_metadata_when_the_catalog_lacks_them(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path / "home")
    write_synthetic_corpus(ws, 20, [NB])
    with ws.catalog.write() as con:
        con.execute("UPDATE core.encodings SET sub_tokens = NULL")
    _refresh(ws)
    names = _q(ws, "SELECT DISTINCT field FROM token_frequencies ORDER BY field")
    assert [r["field"] for r in names] == sorted(NB.fields)


def test_two_configs_with_different_layouts_get_two_views(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "home")
    write_synthetic_corpus(ws, 20, [NB])
    narrow = SyntheticEncoding("nb-pf", (12, 40), ("metric", "pitch"), config_hash="0" * 16)
    write_synthetic_corpus(ws, 20, [narrow], salt="b")
    views = _refresh(ws)
    nb_views = [v for v in views if v.startswith("tokens.nb_pf")]
    assert len(nb_views) == 2
    per_config = _q(ws, "SELECT config_hash, count(*) AS pieces FROM token_lengths GROUP BY ALL")
    assert sorted(r["pieces"] for r in per_config) == [20, 20]


def test_views_work_from_another_directory_and_after_a_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ws = Workspace.open("rel-home")  # a relative --home
    write_synthetic_corpus(ws, 30, [FLAT])
    _refresh(ws)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # an analyst's notebook in another folder
    con = duckdb.connect(str(tmp_path / "rel-home" / "catalog.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM token_lengths").fetchall() == [(30,)]
    con.close()
    moved = tmp_path / "moved-home"
    shutil.move(tmp_path / "rel-home", moved)
    ws2 = Workspace.open(moved)
    with ws2.catalog.read() as con:
        assert shard_views_root(con) == str(tmp_path / "rel-home")
        with pytest.raises(duckdb.Error):
            con.sql("SELECT count(*) FROM token_lengths").fetchall()  # old paths are gone
    result = CliRunner().invoke(app, ["--home", str(moved), "catalog", "views", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout.strip().splitlines()[-1])["shard_views"]
    assert [(r["view_name"], r["kind"]) for r in listed] == [("tokens.remi", "flat")]
    assert _q(ws2, "SELECT count(*) AS n FROM token_lengths") == [{"n": 30}]
    assert _q(ws2, "SELECT DISTINCT root FROM shard_views") == [{"root": str(moved)}]


def test_empty_workspace_has_empty_views(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "home")
    ws.catalog.migrate()
    assert _refresh(ws)[0] == "main.token_lengths"
    for view in ("token_length_stats", "token_frequencies", "vocab_coverage", "piece_lengths"):
        assert _q(ws, f"SELECT count(*) AS n FROM {view}") == [{"n": 0}]


def _writer(root: str, rounds: int, done: mp.Event) -> None:
    ws = make_workspace(Path(root))
    try:
        for i in range(rounds):
            write_synthetic_corpus(ws, 10, [FLAT], salt=f"w{i}-", seed=i)
            with ws.catalog.write() as con:
                refresh_shard_views(con, ws.root)
    finally:
        done.set()


def _reader(root: str, done: mp.Event, queue: mp.Queue) -> None:
    from musicdata.catalog import Catalog
    from musicdata.catalog.lineage import lineage

    cat = Catalog(Path(root) / "catalog.duckdb", lock_timeout_s=30)
    seen, during = [], 0
    end = time.monotonic() + 90

    def read() -> None:
        rows = cat.query("SELECT coalesce(sum(pieces), 0)::BIGINT AS n FROM token_length_stats")
        seen.append(rows.to_pylist()[0]["n"])
        with cat.read() as con:
            shard = con.execute("SELECT min(dst_id) FROM lineage WHERE stage LIKE 'tok%'")
            assert lineage(con, shard.fetchall()[0][0], "upstream").edges

    while time.monotonic() < end and not (done.is_set() and len(seen) >= 3):
        writing = not done.is_set()
        read()
        during += writing
    done.wait(90)
    read()  # once the writer is done, the reader sees everything it wrote
    queue.put((seen, during))


def test_analyst_reads_while_the_pipeline_writes_shards(tmp_path: Path) -> None:
    root = tmp_path / "home"
    ws = make_workspace(root)
    write_synthetic_corpus(ws, 10, [FLAT], salt="first-")
    _refresh(ws)
    ctx = mp.get_context("spawn")
    queue, done = ctx.Queue(), ctx.Event()
    writer = ctx.Process(target=_writer, args=(str(root), 4, done))
    reader = ctx.Process(target=_reader, args=(str(root), done, queue))
    reader.start()
    writer.start()
    seen, during = queue.get(timeout=120)
    reader.join(30)
    writer.join(60)
    assert writer.exitcode == 0 and reader.exitcode == 0
    assert during >= 1  # at least one read completed while the writer was running
    assert seen == sorted(seen) and seen[0] >= 10 and seen[-1] == 50
    assert _q(ws, "SELECT sum(pieces)::BIGINT AS n FROM token_length_stats") == [{"n": 50}]


def test_shards_without_a_token_list_are_left_out(tmp_path: Path) -> None:
    import pyarrow as pa

    from musicdata.catalog import records
    from musicdata.catalog.connection import now

    ws = make_workspace(tmp_path / "home")
    write_synthetic_corpus(ws, 10, [FLAT])
    rel = "shards/odd/h/train/part-00000.parquet"
    (ws.root / rel).parent.mkdir(parents=True)
    pq.write_table(pa.table({"piece_id": ["p"], "codes": [b"x"]}), ws.root / rel)
    t = now()
    with ws.catalog.write() as con:
        con.execute(
            "INSERT INTO core.encodings (encoding, config_hash, kind, vocab_size, config_path, "
            "config_json, created_at) VALUES ('odd', 'h', 'codec', 1, 'x', '{}', ?)",
            [t],
        )
        row = {"shard_id": "odd:h:train:00000", "encoding": "odd", "config_hash": "h"}
        row |= {"split": "train", "path": rel, "n_rows": 1, "n_tokens": 1, "size_bytes": 1}
        records.insert_rows(
            con, "shards", [row | {"file_sha256": "x", "run_id": "r", "created_at": t}]
        )
    assert [v for v in _refresh(ws) if v.startswith("tokens.")] == ["tokens.remi"]
    assert _q(ws, "SELECT count(*) AS n FROM token_lengths") == [{"n": 10}]
