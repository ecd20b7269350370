"""Catalog: migrations of older files, read-only queries while a writer works, safe escaping."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import duckdb
import pytest

from musicdata.catalog import Catalog, CatalogError
from musicdata.catalog.connection import migrate_to, now
from musicdata.schemas.catalog import latest_version


def test_older_catalog_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    con = duckdb.connect(str(path))
    migrate_to(con, 1)  # a catalog written by the first release
    con.execute(
        "INSERT INTO core.runs VALUES "
        "('old-run', 'ingest', ?, NULL, 'completed', '0.0.1', '{}', NULL)",
        [now()],
    )
    con.close()
    cat = Catalog(path)
    with pytest.raises(CatalogError, match="schema version 1"):
        cat.query("SELECT 1")  # readers do not migrate; they say how to
    assert cat.migrate() == latest_version() >= 2
    assert cat.query("SELECT run_id FROM runs").to_pylist() == [{"run_id": "old-run"}]
    assert cat.query("SELECT count(*) AS n FROM train_runs").to_pylist() == [{"n": 0}]
    versions = cat.query("SELECT version FROM schema_version ORDER BY version")
    assert versions.column("version").to_pylist() == list(range(1, latest_version() + 1))


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="run `musicdata ingest` first"):
        Catalog(tmp_path / "none.duckdb").query("SELECT 1")


def test_readers_cannot_write(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.duckdb")
    cat.migrate()
    with pytest.raises(duckdb.Error, match="read-only"):
        cat.query("DELETE FROM core.runs")


def _writer(path: str, seconds: float) -> None:
    cat = Catalog(Path(path))
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        with cat.write() as con:  # short transactions, like the pipeline's
            con.execute(
                "INSERT INTO core.runs VALUES (?, 'ingest', ?, NULL, 'running', 'x', '{}', NULL)",
                [f"run-{i}", now()],
            )
        i += 1
        time.sleep(0.01)


def test_reader_works_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    Catalog(path).migrate()
    proc = mp.get_context("spawn").Process(target=_writer, args=(str(path), 4.0))
    proc.start()
    try:
        reader = Catalog(path, lock_timeout_s=10)
        seen = []
        # Read for 3.5 s and until the writer's first row shows up: a spawned writer can take
        # several seconds just to start on 2 busy cores, and that is not what this tests.
        start = time.monotonic()
        while time.monotonic() < start + 60 and not (
            time.monotonic() > start + 3.5 and seen and seen[-1] > 0
        ):
            seen.append(reader.query("SELECT count(*) AS n FROM runs").to_pylist()[0]["n"])
    finally:
        proc.join(30)
    assert proc.exitcode == 0
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] > 0
    final = Catalog(path).query("SELECT count(*) AS n FROM runs").to_pylist()[0]["n"]
    assert final >= seen[-1]


def test_quotes_and_sql_in_values_are_just_values(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.duckdb")
    evil = "x'); DROP TABLE core.runs; --"
    with cat.write() as con:
        con.execute(
            "INSERT INTO core.runs VALUES (?, 'ingest', ?, NULL, 'running', 'x', '{}', NULL)",
            [evil, now()],
        )
    assert cat.query("SELECT run_id FROM runs").to_pylist() == [{"run_id": evil}]
