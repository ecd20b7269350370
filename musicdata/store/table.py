"""Parquet token shards: explicit schema, rows sorted by piece id, zstd, atomic write.

One table builder for every shard kind: flat (int32 [T]), compound (int16 [T, F]) and codec
(EnCodec codes stored frame by frame as [T, K] int16, K codebooks). Shards are append-only per
(encoding, config hash, split): a run writes new part files for the pieces not tokenized
before. The same inputs give byte-identical files (no timestamps or run ids inside; those live
in the catalog).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from musicdata import __version__
from musicdata.fsutil import atomic_write, sha256_file
from musicdata.schemas.config import ShardConfig
from musicdata.schemas.shards import (
    FLAT_TOKENS,
    SHARD_FORMAT_VERSION,
    compound_tokens,
    with_metadata,
)


@dataclass(frozen=True)
class ShardRow:
    piece_id: str
    tokens: np.ndarray  # int32 [T] or int16 [T, F]


@dataclass(frozen=True)
class WrittenShard:
    path: Path | str  # a URL when the shards live on object storage (musicdata.store.fs)
    n_rows: int
    n_tokens: int
    size_bytes: int
    file_sha256: str


def shard_schema(kind: str, n_fields: int | None = None) -> pa.Schema:
    if kind == "flat":
        return FLAT_TOKENS
    assert n_fields, "compound shards need the number of sub-token fields"
    return compound_tokens(n_fields)


def build_table(
    rows: list[ShardRow],
    *,
    split: str,
    encoding: str,
    config_hash: str,
    kind: str,
    sub_tokens: list[str] | None = None,
    extra_meta: dict[str, object] | None = None,
) -> pa.Table:
    """rows -> a table in the kind's schema, sorted by piece id. Codec rows hold codes [T, K]
    (frames x codebooks; transpose [K, T] codes before). `extra_meta` adds Parquet metadata."""
    assert kind in ("flat", "compound", "codec"), f"unknown shard kind {kind!r}"
    rows = sorted(rows, key=lambda r: r.piece_id)
    lengths = np.array([len(r.tokens) for r in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    if kind == "flat":
        flat = np.concatenate([r.tokens for r in rows]).astype(np.int32)
        values: pa.Array = pa.array(flat, pa.int32())
        schema = shard_schema(kind)
    else:
        n_fields = rows[0].tokens.shape[1]
        flat = np.concatenate([r.tokens for r in rows]).astype(np.int16).reshape(-1)
        values = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.int16()), n_fields)
        schema = shard_schema(kind, n_fields)
    tokens = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
    n = len(rows)
    table = pa.Table.from_arrays(
        [
            pa.array([r.piece_id for r in rows], pa.string()),
            pa.array([split] * n, pa.string()),
            pa.array(lengths, pa.int32()),
            tokens.cast(schema.field("tokens").type),
            pa.array([config_hash] * n, pa.string()),
        ],
        schema=schema,
    )
    meta = with_metadata(
        schema,
        encoding=encoding,
        config_hash=config_hash,
        kind=kind,
        split=split,
        shard_format=SHARD_FORMAT_VERSION,
        code_version=__version__,
        **({"sub_tokens": ",".join(sub_tokens)} if sub_tokens else {}),
        **{k: str(v) for k, v in (extra_meta or {}).items()},
    )
    return table.replace_schema_metadata(meta.metadata)


def write_parquet(table: pa.Table, path: Path, cfg: ShardConfig) -> None:
    """The one Parquet writer of shards: the same table and settings give the same bytes."""
    pq.write_table(
        table,
        path,
        compression=cfg.compression,
        compression_level=cfg.compression_level,
        row_group_size=cfg.row_group_rows,
        write_statistics=True,
    )


def n_tokens(table: pa.Table) -> int:
    return int(pa.compute.sum(table.column("length")).as_py() or 0)


def write_shard(table: pa.Table, path: Path, cfg: ShardConfig) -> WrittenShard:
    """Write atomically to a local path; readers never see half a shard."""
    atomic_write(path, lambda tmp: write_parquet(table, tmp, cfg))
    return WrittenShard(
        path, table.num_rows, n_tokens(table), path.stat().st_size, sha256_file(path)
    )


def read_shard_metadata(path: Path | BinaryIO) -> dict[str, str]:
    """The `musicdata.*` key-value metadata of a shard (a path or an open file)."""
    meta = pq.read_schema(path).metadata or {}
    return {
        k.decode()[len("musicdata.") :]: v.decode()
        for k, v in meta.items()
        if k.startswith(b"musicdata.")
    }
