"""Catalog SQL of the datasets-out side: which encoding configs have shards (for the dataset
loader and the publisher), the figures a dataset card shows, and the publication records.

Values go in as parameters or registered Arrow tables, never spliced into SQL text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from musicdata.catalog.connection import now
from musicdata.catalog.lineage import register_describer
from musicdata.catalog.records import insert_rows


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


@contextmanager
def _ids(con: duckdb.DuckDBPyConnection, name: str, values: list[str]) -> Iterator[None]:
    con.register(name, pa.table({"id": pa.array(values, pa.string())}))
    try:
        yield
    finally:
        con.unregister(name)


# ---- what can be loaded or published ---------------------------------------------------------


def encodings_with_shards(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0] for r in con.execute("SELECT DISTINCT encoding FROM core.shards ORDER BY 1").fetchall()
    ]


def encoding_configs(con: duckdb.DuckDBPyConnection, encoding: str) -> list[dict[str, Any]]:
    """Every config of `encoding` that has shards, newest first, with its shard totals."""
    return _dicts(
        con.execute(
            "SELECT e.encoding, e.config_hash, e.kind, e.vocab_size, e.config_path, "
            "  e.config_json, e.sub_tokens, e.sub_vocab_sizes, e.lossless, e.paper, e.created_at, "
            "  count(*) AS n_shards, sum(s.n_rows)::BIGINT AS pieces, "
            "  sum(s.n_tokens)::BIGINT AS tokens "
            "FROM core.encodings e JOIN core.shards s USING (encoding, config_hash) "
            "WHERE e.encoding = ? "
            "GROUP BY e.encoding, e.config_hash, e.kind, e.vocab_size, e.config_path, "
            "  e.config_json, e.sub_tokens, e.sub_vocab_sizes, e.lossless, e.paper, e.created_at "
            "ORDER BY e.created_at DESC, e.config_hash",
            [encoding],
        )
    )


def config_shards(
    con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str
) -> list[dict[str, Any]]:
    """The shard files of one encoding config, by split then path."""
    return _dicts(
        con.execute(
            "SELECT shard_id, split, path, n_rows, n_tokens, size_bytes, file_sha256 "
            "FROM core.shards WHERE encoding = ? AND config_hash = ? ORDER BY split, path",
            [encoding, config_hash],
        )
    )


# ---- dataset card figures --------------------------------------------------------------------


def card_figures(con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str) -> dict[str, Any]:
    """Token statistics per split, round-trip fidelity and compression of one config."""
    params = [encoding, config_hash]
    splits = _dicts(
        con.execute(
            "SELECT split, pieces, tokens, mean_length, median_length, p95_length, max_length "
            "FROM main.token_stats WHERE encoding = ? AND config_hash = ? ORDER BY split",
            params,
        )
    )
    fidelity = _dicts(
        con.execute(
            "SELECT pieces, notes, recovered, fidelity, worst_piece, lossy_pieces, decode_errors "
            "FROM main.fidelity WHERE encoding = ? AND config_hash = ?",
            params,
        )
    )
    compression = _dicts(
        con.execute(
            "SELECT pieces, mean_length, length_vs_remi, vocab_vs_remi "
            "FROM main.compression WHERE encoding = ? AND config_hash = ?",
            params,
        )
    )
    return {
        "splits": splits,
        "fidelity": fidelity[0] if fidelity else None,
        "compression": compression[0] if compression else None,
    }


def provenance(con: duckdb.DuckDBPyConnection, shard_ids: list[str]) -> dict[str, Any]:
    """Where the pieces in these shards came from: source files by kind, archives, Hub datasets,
    transcription models, ingest configs and code versions (the card's lineage summary)."""
    with _ids(con, "_pub_shards", shard_ids):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _pub_pieces AS SELECT DISTINCT sp.piece_id "
            "FROM core.shard_pieces sp JOIN _pub_shards k ON k.id = sp.shard_id"
        )
        try:
            out: dict[str, Any] = {}
            out["pieces"] = con.execute("SELECT count(*) FROM _pub_pieces").fetchall()[0][0]
            out["pieces_per_split"] = dict(
                con.execute(
                    "SELECT p.split, count(*) FROM core.pieces p JOIN _pub_pieces USING "
                    "(piece_id) GROUP BY 1 ORDER BY 1"
                ).fetchall()
            )
            out["sources_by_kind"] = dict(
                con.execute(
                    "SELECT f.kind, count(DISTINCT f.sha256) FROM core.files f "
                    "JOIN core.pieces p ON p.sha256 = f.sha256 JOIN _pub_pieces USING "
                    "(piece_id) GROUP BY 1 ORDER BY 1"
                ).fetchall()
            )
            out["archives"] = con.execute(
                "SELECT count(DISTINCT f.archive) FROM core.files f JOIN core.pieces p "
                "ON p.sha256 = f.sha256 JOIN _pub_pieces USING (piece_id)"
            ).fetchall()[0][0]
            out["hub_sources"] = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT regexp_extract(f.path, '^hf://([^#]*)/[^/#]+/[^/#]+#', 1) "
                    "FROM core.files f JOIN core.pieces p ON p.sha256 = f.sha256 "
                    "JOIN _pub_pieces USING (piece_id) WHERE f.path LIKE 'hf://%' ORDER BY 1"
                ).fetchall()
            ]
            out["transcriptions"] = _dicts(
                con.execute(
                    "SELECT t.model_id, t.params_json, count(*) AS pieces FROM "
                    "core.transcriptions t JOIN _pub_pieces USING (piece_id) "
                    "GROUP BY 1, 2 ORDER BY 1, 2"
                )
            )
            out["ingest_configs"] = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT p.ingest_config_hash FROM core.pieces p "
                    "JOIN _pub_pieces USING (piece_id) ORDER BY 1"
                ).fetchall()
            ]
            out["code_versions"] = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT e.code_version FROM core.lineage_edges e "
                    "JOIN _pub_shards k ON e.dst_id = 'shard:' || k.id ORDER BY 1"
                ).fetchall()
            ]
            out["near_duplicates"] = con.execute(
                "SELECT count(*) FROM core.pieces p JOIN _pub_pieces USING (piece_id) "
                "WHERE p.near_duplicate_of IS NOT NULL"
            ).fetchall()[0][0]
        finally:
            con.execute("DROP TABLE IF EXISTS _pub_pieces")
    out["quarantine"] = dict(
        con.execute(
            "SELECT reason, count(*) FROM core.quarantine GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    return out


# ---- publication records ---------------------------------------------------------------------


def record_staged(
    con: duckdb.DuckDBPyConnection,
    row: dict[str, Any],
    files: list[dict[str, Any]],
    shard_ids: list[str],
) -> None:
    """One staged publication: its row, its files and the lineage edges shard -> publish."""
    t = row.get("staged_at") or now()
    insert_rows(con, "publishes", [{**row, "staged_at": t}])
    insert_rows(con, "publish_files", [{"publish_id": row["publish_id"], **f} for f in files])
    edges = [
        {
            "src_id": f"shard:{sid}",
            "dst_id": f"publish:{row['publish_id']}",
            "stage": "publish",
            "config_hash": row["manifest_sha256"],
            "code_version": row["code_version"],
            "run_id": row["run_id"],
            "created_at": t,
        }
        for sid in shard_ids
    ]
    insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)


def pending_publish(
    con: duckdb.DuckDBPyConnection, manifest_sha256: str, out_dir: str
) -> str | None:
    """The id of an earlier staging of exactly these files in this folder that was never
    uploaded: re-running a failed publish continues that record instead of adding one."""
    rows = con.execute(
        "SELECT publish_id FROM core.publishes WHERE manifest_sha256 = ? AND out_dir = ? "
        "AND uploaded_at IS NULL ORDER BY staged_at DESC LIMIT 1",
        [manifest_sha256, out_dir],
    ).fetchall()
    return rows[0][0] if rows else None


def get_publish(con: duckdb.DuckDBPyConnection, publish_id: str) -> dict[str, Any] | None:
    rows = _dicts(con.execute("SELECT * FROM core.publishes WHERE publish_id = ?", [publish_id]))
    return rows[0] if rows else None


def record_uploaded(
    con: duckdb.DuckDBPyConnection,
    publish_id: str,
    *,
    repo_id: str,
    revision: str,
    private: bool,
    commit_sha: str | None,
    commit_url: str | None,
    new_id: str | None = None,
) -> str:
    """Mark a staged publication uploaded. A folder uploaded a second time to another repo or
    revision becomes a new row (`new_id`, with copies of its files and edges); returns the id."""
    target = publish_id
    if new_id is not None:
        target = new_id
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'core' "
                "AND table_name = 'publishes' ORDER BY ordinal_position"
            ).fetchall()
        ]
        rest = ", ".join(c for c in cols if c != "publish_id")
        con.execute(
            f"INSERT INTO core.publishes (publish_id, {rest}) "
            f"SELECT ?, {rest} FROM core.publishes WHERE publish_id = ?",
            [new_id, publish_id],
        )
        con.execute(
            "INSERT INTO core.publish_files SELECT ?, path, sha256, size_bytes, n_rows "
            "FROM core.publish_files WHERE publish_id = ?",
            [new_id, publish_id],
        )
        con.execute(
            "INSERT INTO core.lineage_edges SELECT src_id, ?, stage, config_hash, code_version, "
            "run_id, ? FROM core.lineage_edges WHERE dst_id = ? ON CONFLICT DO NOTHING",
            [f"publish:{new_id}", now(), f"publish:{publish_id}"],
        )
    con.execute(
        "UPDATE core.publishes SET repo_id = ?, revision = ?, private = ?, uploaded_at = ?, "
        "commit_sha = ?, commit_url = ? WHERE publish_id = ?",
        [repo_id, revision, private, now(), commit_sha, commit_url, target],
    )
    return target


def _describe_publishes(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, str]:
    with _ids(con, "_lineage_pub", ids):
        rows = con.execute(
            "SELECT k.id, coalesce(p.repo_id || '@' || p.revision, 'staged only (dry run)') || "
            "': ' || array_to_string(p.encodings, ', ') || ', ' || p.n_files || ' files' || "
            "coalesce(', commit ' || p.commit_sha, '') FROM _lineage_pub k "
            "JOIN core.publishes p ON 'publish:' || p.publish_id = k.id"
        ).fetchall()
    return dict(rows)


register_describer("publish", _describe_publishes)


def files_json(files: list[dict[str, Any]]) -> str:
    """A stable text form of a file list (for hashing a manifest)."""
    return json.dumps(sorted(files, key=lambda f: f["path"]), sort_keys=True)
