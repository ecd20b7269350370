"""Reads and writes of the pipeline's records. SQL lives here, values always go in as parameters
or as registered Arrow tables, never spliced into SQL text (names with quotes are just names)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from musicdata.catalog.connection import now


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[dict[str, Any]],
    *,
    on_conflict_nothing: bool = False,
) -> None:
    """Bulk insert dicts into core.<table> through an Arrow table (fast, typed by the DDL)."""
    if not rows:
        return
    cols = list(rows[0])
    data = pa.Table.from_pylist(rows)
    view = f"_rows_{table}"
    con.register(view, data)
    try:
        names = ", ".join(cols)
        conflict = " ON CONFLICT DO NOTHING" if on_conflict_nothing else ""
        con.execute(f"INSERT INTO core.{table} ({names}) SELECT {names} FROM {view}{conflict}")
    finally:
        con.unregister(view)


@contextmanager
def _keys_table(con: duckdb.DuckDBPyConnection, name: str, **columns: list[str]) -> Iterator[None]:
    """Register lookup keys as a temporary Arrow view (no values spliced into SQL)."""
    con.register(name, pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}))
    try:
        yield
    finally:
        con.unregister(name)


# ---- runs -------------------------------------------------------------------------------------


def start_run(
    con: duckdb.DuckDBPyConnection, run_id: str, command: str, code_version: str, config: dict
) -> None:
    con.execute(
        "INSERT INTO core.runs (run_id, command, started_at, status, code_version, config_json) "
        "VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (run_id) DO NOTHING",
        [run_id, command, now(), code_version, json.dumps(config, sort_keys=True, default=str)],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str, summary: dict) -> None:
    con.execute(
        "UPDATE core.runs SET finished_at = ?, status = ?, summary_json = ? WHERE run_id = ?",
        [now(), status, json.dumps(summary, sort_keys=True, default=str), run_id],
    )


def mark_interrupted_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Runs still `running` when a new run takes the workspace lock were killed (SIGKILL, power
    loss): mark them `interrupted` (finished_at stays NULL: when they died is unknown)."""
    rows = con.execute(
        "UPDATE core.runs SET status = 'interrupted' WHERE status = 'running' RETURNING run_id"
    ).fetchall()
    return len(rows)


# ---- ingest -----------------------------------------------------------------------------------


def known_files(
    con: duckdb.DuckDBPyConnection, pairs: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (path, sha256) pairs the catalog has already recorded."""
    if not pairs:
        return set()
    with _keys_table(con, "_q_pairs", path=[p for p, _ in pairs], sha256=[s for _, s in pairs]):
        rows = con.execute(
            "SELECT f.path, f.sha256 FROM core.files f JOIN _q_pairs q USING (path, sha256)"
        ).fetchall()
    return {(p, s) for p, s in rows}


def known_rejections(con: duckdb.DuckDBPyConnection, paths: list[str]) -> set[tuple[str, str]]:
    """(path, reason) of inputs already quarantined before they could be hashed."""
    if not paths:
        return set()
    with _keys_table(con, "_q_paths", path=paths):
        rows = con.execute(
            "SELECT q.path, q.reason FROM core.quarantine q JOIN _q_paths USING (path) "
            "WHERE q.sha256 IS NULL"
        ).fetchall()
    return {(p, r) for p, r in rows}


def stage_status(
    con: duckdb.DuckDBPyConnection, stage: str, config_hash: str, input_ids: list[str]
) -> dict[str, tuple[str, str | None]]:
    """input_id -> (status, output_id) for inputs this stage already finished under this config."""
    if not input_ids:
        return {}
    with _keys_table(con, "_q_ids", input_id=input_ids):
        rows = con.execute(
            "SELECT r.input_id, r.status, r.output_id FROM core.stage_results r "
            "JOIN _q_ids USING (input_id) WHERE r.stage = ? AND r.config_hash = ?",
            [stage, config_hash],
        ).fetchall()
    return {i: (s, o) for i, s, o in rows}


def quarantine_reason(con: duckdb.DuckDBPyConnection, sha256: str, stage: str) -> tuple[str, str]:
    rows = con.execute(
        "SELECT reason, detail FROM core.quarantine WHERE sha256 = ? AND stage = ? "
        "ORDER BY created_at DESC LIMIT 1",
        [sha256, stage],
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else ("unknown", "quarantined in an earlier run")


def canonical_pieces(
    con: duckdb.DuckDBPyConnection, content_hashes: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """content_hash -> (canonical piece_id, its split) for music already in the catalog."""
    hashes = sorted(set(content_hashes))
    if not hashes:
        return {}
    with _keys_table(con, "_q_hashes", content_hash=hashes):
        rows = con.execute(
            "SELECT p.content_hash, arg_min(p.piece_id, p.created_at), "
            "arg_min(p.split, p.created_at) "
            "FROM core.pieces p JOIN _q_hashes USING (content_hash) "
            "WHERE p.near_duplicate_of IS NULL GROUP BY p.content_hash"
        ).fetchall()
    return {h: (pid, split) for h, pid, split in rows}


def first_paths(con: duckdb.DuckDBPyConnection, shas: list[str]) -> dict[str, str]:
    """sha256 -> the first path the catalog saw these bytes at (for exact duplicates)."""
    if not shas:
        return {}
    with _keys_table(con, "_q_shas", sha256=shas):
        rows = con.execute(
            "SELECT f.sha256, arg_min(f.path, f.first_seen_at) FROM core.files f "
            "JOIN _q_shas USING (sha256) GROUP BY f.sha256"
        ).fetchall()
    return dict(rows)


# ---- tokenize ---------------------------------------------------------------------------------


def pieces_to_tokenize(
    con: duckdb.DuckDBPyConnection, stage: str, config_hash: str, include_near_duplicates: bool
) -> list[tuple[str, str, str, str, str]]:
    """(piece_id, split, blob_path, sha256, first source path) of pieces this encoding config has
    not handled yet, ordered by piece id."""
    return con.execute(
        "SELECT p.piece_id, p.split, p.blob_path, p.sha256, "
        "  (SELECT min(f.path) FROM core.files f WHERE f.sha256 = p.sha256) "
        "FROM core.pieces p "
        "WHERE (? OR p.near_duplicate_of IS NULL) AND NOT EXISTS ("
        "  SELECT 1 FROM core.stage_results r WHERE r.stage = ? AND r.config_hash = ? "
        "  AND r.input_id = p.piece_id) ORDER BY p.piece_id",
        [include_near_duplicates, stage, config_hash],
    ).fetchall()


def pieces_without_fidelity(
    con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str
) -> list[tuple[str, str]]:
    """(piece_id, blob_path) of pieces stored in this encoding config's shards that have no
    fidelity row (a shard adopted after a crash), ordered by piece id."""
    return con.execute(
        "SELECT DISTINCT p.piece_id, p.blob_path FROM core.shard_pieces sp "
        "JOIN core.shards s USING (shard_id) JOIN core.pieces p USING (piece_id) "
        "WHERE s.encoding = ? AND s.config_hash = ? AND NOT EXISTS ("
        "  SELECT 1 FROM core.fidelity f WHERE f.encoding = s.encoding "
        "  AND f.config_hash = s.config_hash AND f.piece_id = sp.piece_id) ORDER BY p.piece_id",
        [encoding, config_hash],
    ).fetchall()


def first_paths_of_kind(
    con: duckdb.DuckDBPyConnection, shas: list[str], audio: bool
) -> dict[str, str]:
    """sha256 -> the first path the catalog saw these bytes at among audio files (`audio`) or
    among the others (MIDI, transcriptions): exact duplicates are judged within one kind, since
    the same bytes under a .wav and a .mid name are two different inputs with two outcomes."""
    if not shas:
        return {}
    with _keys_table(con, "_q_shas", sha256=shas):
        rows = con.execute(
            "SELECT f.sha256, arg_min(f.path, f.first_seen_at) FROM core.files f "
            "JOIN _q_shas USING (sha256) WHERE (f.kind = 'audio') = ? GROUP BY f.sha256",
            [audio],
        ).fetchall()
    return dict(rows)


def training_pieces(con: duckdb.DuckDBPyConnection, limit: int) -> list[tuple[str, str]]:
    """(piece_id, blob_path) of canonical train-split pieces, by piece id: what a learned
    vocabulary is trained on (never validation/test, so no leak into evaluation)."""
    return con.execute(
        "SELECT piece_id, blob_path FROM core.pieces WHERE split = 'train' "
        "AND near_duplicate_of IS NULL ORDER BY piece_id LIMIT ?",
        [limit],
    ).fetchall()


def shard_paths(con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str) -> set[str]:
    rows = con.execute(
        "SELECT path FROM core.shards WHERE encoding = ? AND config_hash = ?",
        [encoding, config_hash],
    ).fetchall()
    return {r[0] for r in rows}


def registered_encodings(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {
        (e, h)
        for e, h in con.execute("SELECT encoding, config_hash FROM core.encodings").fetchall()
    }


def upsert_encoding(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Record an encoding config once (columns as given: encoding, config_hash, kind, vocab_size,
    config_path, config_json, and optionally sub_tokens, sub_vocab_sizes, lossless, paper)."""
    cols = [*row, "created_at"]
    con.execute(
        f"INSERT INTO core.encodings ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)}) ON CONFLICT (encoding, config_hash) DO NOTHING",
        [*row.values(), now()],
    )


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    out = {}
    for view in ("sources", "pieces", "quarantine", "shards", "lineage", "runs"):
        out[view] = int(con.execute(f"SELECT count(*) FROM main.{view}").fetchall()[0][0])
    return out


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of core.<table> (a constant name from the caller, never user input)."""
    return int(con.execute(f"SELECT count(*) FROM core.{table}").fetchall()[0][0])


def encoding_kind(con: duckdb.DuckDBPyConnection, encoding: str) -> str | None:
    """flat | compound | codec for a registered encoding, None if this catalog has none."""
    rows = con.execute(
        "SELECT any_value(kind) FROM core.encodings WHERE encoding = ?", [encoding]
    ).fetchall()
    return rows[0][0] if rows else None


def shard_splits(con: duckdb.DuckDBPyConnection, encoding: str) -> set[str]:
    """Splits that have shards of this encoding (any config)."""
    rows = con.execute("SELECT DISTINCT split FROM core.shards WHERE encoding = ?", [encoding])
    return {r[0] for r in rows.fetchall()}


def token_stats(con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str) -> list[dict]:
    """token_stats rows (per split) of one encoding config: what a tokenize run reports."""
    cur = con.execute(
        "SELECT split, pieces, tokens, vocab_size, round(mean_length, 1) AS mean_length, "
        "max_length FROM main.token_stats WHERE encoding = ? AND config_hash = ? ORDER BY split",
        [encoding, config_hash],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
