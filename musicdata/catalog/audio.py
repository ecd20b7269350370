"""Catalog reads for the audio stages (recordings, transcriptions, codec tokens).

Values always go in as parameters or registered Arrow tables, never spliced into SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa


def canonical_recordings(
    con: duckdb.DuckDBPyConnection, content_hashes: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """content_hash -> (canonical recording_id, its split) for audio already in the catalog."""
    hashes = sorted(set(content_hashes))
    if not hashes:
        return {}
    con.register("_q_rec_hashes", pa.table({"content_hash": pa.array(hashes, pa.string())}))
    try:
        rows = con.execute(
            "SELECT r.content_hash, arg_min(r.recording_id, r.created_at), "
            "arg_min(r.split, r.created_at) "
            "FROM core.recordings r JOIN _q_rec_hashes USING (content_hash) "
            "WHERE r.near_duplicate_of IS NULL GROUP BY r.content_hash"
        ).fetchall()
    finally:
        con.unregister("_q_rec_hashes")
    return {h: (rid, split) for h, rid, split in rows}


def recordings_to_transcribe(
    con: duckdb.DuckDBPyConnection, params_hash: str
) -> list[tuple[str, str, str, str, float]]:
    """(sha256, split, blob_path, first source path, duration_s) of canonical recordings with no
    transcription under these parameters, ordered by sha256."""
    return con.execute(
        "SELECT r.sha256, r.split, r.blob_path, "
        "  (SELECT min(f.path) FROM core.files f WHERE f.sha256 = r.sha256), r.duration_s "
        "FROM core.recordings r WHERE r.near_duplicate_of IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM core.transcriptions t WHERE t.recording_sha256 = r.sha256 "
        "  AND t.params_hash = ?) ORDER BY r.sha256",
        [params_hash],
    ).fetchall()


def recordings_to_encode(
    con: duckdb.DuckDBPyConnection, stage: str, config_hash: str, include_near_duplicates: bool
) -> list[tuple[str, str, str, str, str]]:
    """(recording_id, split, blob_path, sha256, first source path) of recordings this codec config
    has not handled yet, ordered by recording id."""
    return con.execute(
        "SELECT r.recording_id, r.split, r.blob_path, r.sha256, "
        "  (SELECT min(f.path) FROM core.files f WHERE f.sha256 = r.sha256) "
        "FROM core.recordings r "
        "WHERE (? OR r.near_duplicate_of IS NULL) AND NOT EXISTS ("
        "  SELECT 1 FROM core.stage_results s WHERE s.stage = ? AND s.config_hash = ? "
        "  AND s.input_id = r.recording_id) ORDER BY r.recording_id",
        [include_near_duplicates, stage, config_hash],
    ).fetchall()


def recording_shas(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """recording_id -> sha256 of every recording (the `audio:` lineage node of its codes)."""
    return dict(con.execute("SELECT recording_id, sha256 FROM core.recordings").fetchall())
