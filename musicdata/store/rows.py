"""The catalog rows of a shard: shard, its pieces, done markers, lineage and round-trip fidelity.

Built here, inserted through `musicdata.catalog.records` (the SQL owner), inside the caller's
transaction, always after the file is renamed into place (DESIGN rule 3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from musicdata import __version__
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.store.layout import ShardSpec, shard_id
from musicdata.store.table import WrittenShard
from musicdata.workspace import Workspace


def stage_name(spec: ShardSpec) -> str:
    """Every shard-writing stage records its outcomes as `tokenize:<encoding>`."""
    return f"tokenize:{spec.name}"


def shard_rows(
    con: Any,
    spec: ShardSpec,
    rel: str,
    split: str,
    written: WrittenShard,
    lengths: Mapping[str, int],
    run_id: str,
    fidelity: Mapping[str, Any] | None = None,
    *,
    sources: list[str] | None = None,
) -> str:
    """Insert a shard's rows in the caller's transaction; returns the shard id. `lengths`: tokens
    per row (compound and codec: one token per step/frame); `sources`: the rows' lineage nodes
    (default `piece:<id>`); `fidelity`: piece id -> musicdata.encodings.fidelity.Fidelity."""
    stage = stage_name(spec)
    sid = shard_id(spec, rel)
    t = now()
    records.insert_rows(
        con,
        "shards",
        [
            {
                "shard_id": sid,
                "encoding": spec.name,
                "config_hash": spec.config_hash,
                "split": split,
                "path": rel,
                "n_rows": written.n_rows,
                "n_tokens": sum(lengths.values()),
                "size_bytes": written.size_bytes,
                "file_sha256": written.file_sha256,
                "run_id": run_id,
                "created_at": t,
            }
        ],
    )
    records.insert_rows(
        con,
        "shard_pieces",
        [{"shard_id": sid, "piece_id": p, "n_tokens": n} for p, n in lengths.items()],
    )
    records.insert_rows(
        con,
        "stage_results",
        [
            {
                "stage": stage,
                "input_id": p,
                "config_hash": spec.config_hash,
                "status": "ok",
                "output_id": sid,
                "run_id": run_id,
                "created_at": t,
            }
            for p in lengths
        ],
    )
    nodes = [
        *(sources or [f"piece:{p}" for p in lengths]),
        f"encoding:{spec.name}@{spec.config_hash}",
    ]
    records.insert_rows(
        con,
        "lineage_edges",
        [
            {
                "src_id": src,
                "dst_id": f"shard:{sid}",
                "stage": stage,
                "config_hash": spec.config_hash,
                "code_version": __version__,
                "run_id": run_id,
                "created_at": t,
            }
            for src in nodes
        ],
        on_conflict_nothing=True,
    )
    fidelity_rows(con, spec, fidelity or {}, run_id)
    return sid


def fidelity_rows(con: Any, spec: ShardSpec, fidelity: Mapping[str, Any], run_id: str) -> None:
    """Insert round-trip fidelity rows (piece id -> Fidelity) in the caller's transaction; a
    piece measured before keeps its row."""
    t = now()
    records.insert_rows(
        con,
        "fidelity",
        [
            {
                "encoding": spec.name,
                "config_hash": spec.config_hash,
                "piece_id": p,
                **_fidelity_columns(f),
                "run_id": run_id,
                "created_at": t,
            }
            for p, f in fidelity.items()
        ],
        on_conflict_nothing=True,
    )


def _fidelity_columns(f: Any) -> dict[str, Any]:
    """A Fidelity's fields are core.fidelity's columns; dict fields are stored as JSON text."""
    return {
        k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in asdict(f).items()
    }


def record_shard(ws: Workspace, *args: Any, **kwargs: Any) -> str:
    """`shard_rows` in a transaction of its own."""
    with ws.catalog.write() as con:
        return shard_rows(con, *args, **kwargs)
