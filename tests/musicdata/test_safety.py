"""Data-safety regressions (issue 11): the workspace run lock, a read-only `catalog sql`,
`catalog verify`, a writer that waits for a reader, interrupted runs, the issue's race end to end.
Inputs (full disk, verdicts, archives): test_safety_inputs.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from musicdata.catalog import Catalog, CatalogError, records
from musicdata.catalog.connection import now
from musicdata.catalog.shard_views import refresh_shard_views
from musicdata.catalog.verify import verify
from musicdata.cli import app
from musicdata.schemas.shards import FLAT_TOKENS, with_metadata
from musicdata.workspace import Workspace, WorkspaceBusy

ROOT = Path(__file__).resolve().parents[2]
ENC, CHASH = "remi", "c0ffee"


# ---- a small workspace with real shard files and their catalog rows ----------------------------


def _write_shard(ws: Workspace, split: str, part: int, ids: list[str]) -> str:
    rel = f"shards/{ENC}/{CHASH}/{split}/part-{part:05d}.parquet"
    path = ws.abspath(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = with_metadata(FLAT_TOKENS, encoding=ENC, config_hash=CHASH, split=split)
    table = pa.table(
        {
            "piece_id": ids,
            "split": [split] * len(ids),
            "length": [3] * len(ids),
            "tokens": [[1, 2, 3]] * len(ids),
            "config_hash": [CHASH] * len(ids),
        },
        schema=schema,
    )
    pq.write_table(table, path)
    return rel


def _record_shard(ws: Workspace, split: str, part: int, ids: list[str]) -> str:
    rel = _write_shard(ws, split, part, ids)
    path = ws.abspath(rel)
    sid = f"{ENC}:{CHASH}:{split}:{part:05d}"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with ws.catalog.write() as con:
        records.insert_rows(
            con,
            "shards",
            [
                {
                    "shard_id": sid,
                    "encoding": ENC,
                    "config_hash": CHASH,
                    "split": split,
                    "path": rel,
                    "n_rows": len(ids),
                    "n_tokens": 3 * len(ids),
                    "size_bytes": path.stat().st_size,
                    "file_sha256": sha,
                    "run_id": "test",
                    "created_at": now(),
                }
            ],
        )
        records.insert_rows(
            con, "shard_pieces", [{"shard_id": sid, "piece_id": p, "n_tokens": 3} for p in ids]
        )
    return rel


@pytest.fixture
def shard_ws(ws: Workspace) -> Workspace:
    """Two recorded shards of one encoding config, with the in-place views over them."""
    with ws.catalog.write() as con:
        records.insert_rows(
            con,
            "encodings",
            [
                {
                    "encoding": ENC,
                    "config_hash": CHASH,
                    "kind": "flat",
                    "vocab_size": 10,
                    "config_path": f"shards/{ENC}/{CHASH}/tokenizer.json",
                    "config_json": "{}",
                    "created_at": now(),
                }
            ],
        )
    ws.abspath(f"shards/{ENC}/{CHASH}").mkdir(parents=True)
    ws.abspath(f"shards/{ENC}/{CHASH}/tokenizer.json").write_text("{}")
    _record_shard(ws, "train", 0, ["p1", "p2"])
    _record_shard(ws, "validation", 0, ["p3"])
    with ws.catalog.write() as con:
        refresh_shard_views(con, ws.root)
    return ws


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cli(ws: Workspace, *args: str) -> tuple[int, str]:
    """(exit code, stdout) of one CLI call; with --json stdout is exactly one JSON object."""
    res = CliRunner().invoke(app, ["--home", str(ws.root), *args])
    return res.exit_code, res.stdout if "--json" in args else res.output


# ---- 1. the workspace run lock ----------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from musicdata.workspace import Workspace
    ws = Workspace.open(sys.argv[1])
    with ws.run_lock("tokenize"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _hold_lock(root: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked", (
        "the helper process did not take the lock"
    )
    return proc


def test_run_lock_refuses_or_waits_for_another_process(ws: Workspace) -> None:
    holder = _hold_lock(ws.root, 30)
    try:
        busy = rf"pid {holder.pid} running `tokenize`"
        with pytest.raises(WorkspaceBusy, match=busy), ws.run_lock("ingest", wait=False):
            pass
        told: list[str] = []
        t0 = time.monotonic()
        with (
            pytest.raises(WorkspaceBusy, match=r"stayed busy for 0\.5 s"),
            ws.run_lock("ingest", timeout_s=0.5, on_wait=told.append),
        ):
            pass
        assert time.monotonic() - t0 >= 0.5, "gave up before its timeout"
        assert len(told) == 1, f"the waiting message is said once, got {told}"
        assert f"waiting for pid {holder.pid} running `tokenize`" in told[0], told
        assert "--no-wait" in told[0], told
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder never leaves a stale lock
        holder.wait()
    # re-entrant: a stage inside a command that already holds the lock
    with ws.run_lock("ingest", wait=False), ws.run_lock("ingest", wait=False):
        pass


def test_run_lock_waits_until_the_holder_finishes(ws: Workspace) -> None:
    holder = _hold_lock(ws.root, 1.0)
    told: list[str] = []
    t0 = time.monotonic()
    with ws.run_lock("ingest", on_wait=told.append):
        waited = time.monotonic() - t0
    holder.wait()
    assert waited > 0.3, f"acquired after {waited:.2f} s while another process held it"
    assert len(told) == 1, told


def test_cli_no_wait_refuses_a_busy_workspace(ws: Workspace, corpus: Path) -> None:
    holder = _hold_lock(ws.root, 30)
    try:
        code, out = _cli(ws, "ingest", str(corpus), "--no-wait", "--json")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert code == 3, out
    summary = json.loads(out.splitlines()[0])
    assert summary["error"] == "busy", summary
    assert f"pid {holder.pid}" in summary["message"], summary
    assert not ws.catalog_path.exists(), "a refused run wrote the catalog"


def test_a_new_run_marks_killed_runs_interrupted(ws: Workspace) -> None:
    with ws.catalog.write() as con:
        records.start_run(con, "killed-run", "tokenize:remi", "0", {})
    with ws.run_lock("tokenize"):
        status = ws.catalog.query("SELECT status FROM runs WHERE run_id = 'killed-run'")
    assert status.column(0).to_pylist() == ["interrupted"]


# ---- 2. catalog sql is read-only --------------------------------------------------------------


def test_catalog_sql_refuses_every_write_and_outside_read(shard_ws: Workspace) -> None:
    ws = shard_ws
    shard = ws.abspath(f"shards/{ENC}/{CHASH}/train/part-00000.parquet")
    outside = ws.root.parent / "outside.parquet"
    pq.write_table(pa.table({"secret": [42]}), outside)
    before = _tree(ws.root)
    attacks = [
        f"COPY (SELECT 1) TO '{ws.catalog_path}'",
        f"COPY (SELECT 1 AS piece_id) TO '{shard}' (FORMAT parquet)",
        f"/* harmless */ copy (select 1) to '{ws.root}/x.csv'",
        "SELECT 1; COPY (SELECT 1) TO 'x.csv'",
        f"EXPORT DATABASE '{ws.root}/export'",
        f"IMPORT DATABASE '{ws.root}/export'",
        f"PRAGMA profiling_output = '{ws.root}/profile.txt'",
        "PRAGMA enable_profiling",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        f"ATTACH '{ws.root}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t (a INTEGER)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "INSERT INTO core.pieces SELECT * FROM core.pieces",
        "UPDATE core.shards SET n_rows = 0",
        "DELETE FROM core.shards",
        "DROP VIEW token_stats",
        "ALTER TABLE core.shards ADD COLUMN x INTEGER",
        "CALL pragma_version()",
        "CHECKPOINT",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{ws.root}/y.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_json('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM read_parquet('{outside}')",
        f"SELECT * FROM read_parquet('{ws.root}/shards/../../outside.parquet')",
        f"SELECT * FROM read_blob('{ws.root / 'objects'}/*')",
    ]
    for sql in attacks:
        try:
            got = ws.catalog.analyst_query(sql, readable=[ws.shards_dir])
        except (CatalogError, duckdb.Error) as exc:
            assert "42" not in str(exc), f"{sql!r} leaked data: {exc}"
        else:
            pytest.fail(f"{sql!r} ran: {str(got.to_pylist())[:200]}")
    assert _tree(ws.root) == before, "an analyst statement changed the workspace"
    assert not (ws.root / "export").exists() and not (ws.root / "profile.txt").exists()
    # what analysts need still works: the views, the in-place shard views, reading shards
    ok = [
        ("SELECT count(*) FROM shards", 2),
        ("SELECT count(*) FROM tokens.remi", 3),
        ("SELECT sum(pieces) FROM token_length_stats", 3),
        (f"SELECT count(*) FROM read_parquet('{ws.shards_dir}/*/*/*/*.parquet')", 3),
        ("WITH s AS (SELECT * FROM shards) SELECT count(*) FROM s", 2),
    ]
    for sql, want in ok:
        got = ws.catalog.analyst_query(sql, readable=[ws.shards_dir]).column(0)[0].as_py()
        assert got == want, f"{sql}: {got} != {want}"


def test_catalog_sql_cli_reports_a_refusal(shard_ws: Workspace) -> None:
    ws = shard_ws
    size = ws.catalog_path.stat().st_size
    code, out = _cli(ws, "catalog", "sql", f"COPY (SELECT 1) TO '{ws.catalog_path}'")
    assert code == 2 and "read-only" in out, out
    assert ws.catalog_path.stat().st_size == size
    code, out = _cli(ws, "catalog", "sql", "SELECT * FROM read_csv('/etc/passwd')")
    assert code == 2 and "root:" not in out, out
    code, out = _cli(ws, "catalog", "sql", "SELECT count(*) AS n FROM shards", "--json")
    assert code == 0 and json.loads(out)["rows"] == [{"n": 2}], out


# ---- 3. catalog verify ------------------------------------------------------------------------


def test_verify_is_clean_on_an_intact_workspace(shard_ws: Workspace) -> None:
    assert verify(shard_ws) == []
    code, out = _cli(shard_ws, "catalog", "verify", "--json")
    assert code == 0, out
    assert json.loads(out) | {"home": ""} == {
        "home": "",
        "ok": True,
        "shards": 2,
        "problems": [],
        "counts": {},
    }


def test_verify_finds_every_kind_of_damage(shard_ws: Workspace) -> None:
    ws = shard_ws
    base = f"shards/{ENC}/{CHASH}"
    # The race: a second run's part-00000 replaced the first's file under the same name.
    _write_shard(ws, "train", 0, ["p2", "p4"])
    ws.abspath(f"{base}/validation/part-00000.parquet").unlink()
    _record_shard(ws, "test", 0, ["p2"])  # p2 is also in the replaced train file
    _write_shard(ws, "test", 7, ["p9"])  # a crash's orphan
    ws.abspath(f"{base}/train/.part-00001.parquet.1a2b3c4d.tmp").write_bytes(b"half")
    ws.abspath(f"{base}/.tokenizer.json.5e6f.tmp.d").mkdir()
    problems = verify(ws)
    kinds = sorted((p.kind, p.path) for p in problems)
    assert kinds == sorted(
        [
            ("missing_file", f"{base}/validation/part-00000.parquet"),
            ("hash_mismatch", f"{base}/train/part-00000.parquet"),
            ("pieces_mismatch", f"{base}/train/part-00000.parquet"),
            ("duplicate_piece", f"{base}/test/part-00000.parquet"),
            ("orphan_file", f"{base}/test/part-00007.parquet"),
            ("temp_leftover", f"{base}/train/.part-00001.parquet.1a2b3c4d.tmp"),
            ("temp_leftover", f"{base}/.tokenizer.json.5e6f.tmp.d"),
        ]
    ), kinds
    mismatch = next(p for p in problems if p.kind == "pieces_mismatch")
    assert "not in the catalog: p4" in mismatch.detail, mismatch
    assert "in the catalog but not in the file: p1" in mismatch.detail, mismatch
    code, out = _cli(ws, "catalog", "verify", "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["ok"] is False and report["counts"]["temp_leftover"] == 2, report
    code, out = _cli(ws, "catalog", "verify")
    assert code == 1 and "7 problem(s)" in out, out


def test_verify_sees_a_duplicate_written_by_two_runs(shard_ws: Workspace) -> None:
    _record_shard(shard_ws, "train", 1, ["p1", "p2"])  # a second run's shard of the same pieces
    problems = verify(shard_ws)
    assert [p.kind for p in problems] == ["duplicate_piece"], problems
    assert "2 piece(s)" in problems[0].detail and "p1, p2" in problems[0].detail, problems


# ---- 4. a pipeline writer waits for an analyst's open connection ------------------------------


def test_writer_waits_for_a_reader_and_names_it(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    ws.catalog.migrate()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print('open', flush=True); time.sleep(3.5)",
            str(ws.catalog_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
    # Readers give up after lock_timeout_s; a writer with finished work must not.
    catalog = Catalog(ws.catalog_path, lock_timeout_s=0.5)
    with caplog.at_level("WARNING"), catalog.write() as con:
        con.execute("INSERT INTO core.runs VALUES ('w', 'x', now(), NULL, 'ok', '0', '{}', NULL)")
    reader.wait()
    assert f"PID {reader.pid}" in caplog.text, caplog.text
    assert ws.catalog.query("SELECT count(*) FROM runs").column(0)[0].as_py() == 1


def test_run_lock_file_lives_in_the_workspace(ws: Workspace) -> None:
    with ws.run_lock("x"):
        info = json.loads(ws.lock_path.read_text())
        assert info["pid"] == os.getpid() and info["stage"] == "x", info
    assert ws.lock_path.read_text() == "", "a released lock still names a holder"


# ---- the race, end to end (two processes, the real CLI) --------------------------------


def _musicdata(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "musicdata.cli", "--home", str(root), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_concurrent_runs_on_one_workspace_are_serialized(ws: Workspace, corpus: Path) -> None:
    first, second = corpus / "first", corpus / "second"
    first.mkdir()
    second.mkdir()
    for i, name in enumerate(sorted(p.name for p in corpus.glob("*.mid"))):
        (corpus / name).rename((first if i % 2 else second) / name)
    ingest = _musicdata(ws.root, "ingest", str(first), "--json")
    assert ingest.wait(timeout=300) == 0, ingest.stderr.read() if ingest.stderr else ""
    tok_a = _musicdata(ws.root, "tokenize", "-e", "remi", "--json")
    time.sleep(1.0)
    more = _musicdata(ws.root, "ingest", str(second), "--json")
    tok_b = _musicdata(ws.root, "tokenize", "-e", "remi", "--json")
    outs = [p.communicate(timeout=600) for p in (tok_a, more, tok_b)]
    codes = [p.returncode for p in (tok_a, more, tok_b)]
    assert codes == [0, 0, 0], outs
    assert any("waiting for pid" in err for _, err in outs[1:]), [e for _, e in outs]
    code, out = _cli(ws, "catalog", "verify", "--json")
    assert code == 0, out
    rows, distinct = (
        ws.catalog.query("SELECT count(*), count(DISTINCT piece_id) FROM tokens.remi")
        .to_pylist()[0]
        .values()
    )
    tokenized = (
        ws.catalog.query("SELECT pieces FROM token_stats WHERE encoding = 'remi'")
        .column(0)
        .to_pylist()
    )
    assert rows == distinct == sum(tokenized), (rows, distinct, tokenized)
