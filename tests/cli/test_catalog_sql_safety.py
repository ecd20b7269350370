"""`catalog sql` is handed to analysts (issue 18): DuckDB itself (read-only connection,
`enable_external_access = false` with `allowed_directories`, `lock_configuration`) refuses
writes, ATTACH, COPY TO, INSTALL/LOAD, SET and files outside the workspace's shards; the
views, the workspace's own shards and relative `shards/...` paths keep working."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from musicdata.cli import app
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.workspace import Workspace
from tests.conftest import make_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """Real fixture pieces ingested and tokenized into remi."""
    import shutil

    from tests.conftest import FIXTURES

    root = tmp_path_factory.mktemp("sqlsafety")
    corpus = root / "corpus"
    shutil.copytree(FIXTURES, corpus)
    ws = make_workspace(root / "home")
    ingest_paths(ws, [corpus], run_id="i")
    tokenize_encodings(ws, ["remi"], run_ids={"remi": "r"})
    pq.write_table(pa.table({"secret": [4242]}), root / "outside.parquet")
    return ws


def _sql(ws: Workspace, query: str, cwd: Path | None = None) -> tuple[int, dict]:
    result = runner.invoke(app, ["--home", str(ws.root), "catalog", "sql", query, "--json"])
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "{}"
    return result.exit_code, json.loads(line)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


REFUSED = [
    "INSERT INTO core.pieces SELECT * FROM core.pieces",
    "UPDATE core.shards SET n_rows = 0",
    "DELETE FROM core.vocab",
    "CREATE TABLE t AS SELECT 1",
    "DROP VIEW vocab",
    "ATTACH '{root}/other.duckdb' AS other",
    "ATTACH ':memory:' AS m",
    "COPY (SELECT 1) TO '{root}/leak.csv'",
    "COPY core.pieces TO '{root}/pieces.parquet'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET allowed_directories = ['/']",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "PRAGMA enable_profiling",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM read_parquet('shards/../../outside.parquet')",
    "SELECT * FROM read_parquet('{root}/home/shards/../../outside.parquet')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM glob('../*')",
    "SELECT * FROM read_blob('objects/*/*')",
]


@pytest.mark.parametrize("template", REFUSED)
def test_catalog_sql_refuses(tokenized: Workspace, template: str) -> None:
    ws = tokenized
    outside = ws.root.parent / "outside.parquet"
    query = template.format(root=ws.root.parent, outside=outside)
    before = _tree(ws.root.parent)
    code, err = _sql(ws, query)
    assert code == 2, (query, err)
    assert err["error"] in ("query_refused", "query_failed"), err
    assert "4242" not in json.dumps(err) and "root:" not in json.dumps(err)
    after = _tree(ws.root.parent)
    assert after == before, f"{query!r} changed files"


def test_refusals_come_from_duckdb_settings(tokenized: Workspace) -> None:
    """Even a statement that passes the SELECT check cannot widen access: the settings are
    locked on the connection itself."""
    ws = tokenized
    with ws.catalog.read() as con:
        from musicdata.catalog.connection import restrict

        restrict(con, [ws.shards_dir])
        for sql in ("SET enable_external_access = true", "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error, match=r"(?i)lock|configuration"):
                con.execute(sql)
        with pytest.raises(duckdb.PermissionException):
            con.execute("SELECT * FROM read_text('/etc/hostname')").fetchall()


def test_analyst_queries_still_work(tokenized: Workspace, tmp_path: Path, monkeypatch) -> None:
    ws = tokenized
    monkeypatch.chdir(tmp_path)  # relative shard paths resolve against the workspace, not here
    n_pieces = ws.catalog.query("SELECT count(*) AS n FROM pieces").column(0)[0].as_py()
    ok = {
        "SELECT count(*) AS n FROM pieces": n_pieces,
        "SELECT count(*) AS n FROM read_parquet('shards/remi/*/*/*.parquet')": None,
        f"SELECT count(*) AS n FROM read_parquet('{ws.shards_dir}/remi/*/*/*.parquet')": None,
        "SELECT count(*) AS n FROM tokens.remi": None,
        "WITH f AS (SELECT * FROM token_frequencies) SELECT count(*) AS n FROM f": None,
        "SELECT count(*) AS n FROM vocab WHERE encoding = 'remi'": None,
        "DESCRIBE SELECT * FROM vocab": None,
    }
    remi_rows = None
    for query, want in ok.items():
        code, out = _sql(ws, query)
        assert code == 0, (query, out)
        assert out["home"] == str(ws.root)
        if want is not None:
            assert out["rows"][0]["n"] == want, (query, out)
        if "'shards/remi" in query:
            remi_rows = out["rows"][0]["n"]
    assert remi_rows and remi_rows > 0
    assert Path.cwd() == tmp_path  # the query left the working directory as it was
