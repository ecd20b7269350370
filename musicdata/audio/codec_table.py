"""Codec shard tables: EnCodec codes [K, T] per recording <-> Arrow (schemas.shards.codec_codes).

Rows are sorted by recording id and carry no timestamps, so the same codes give the same file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from musicdata import __version__
from musicdata.audio.codec import CodecSettings
from musicdata.shards import read_shard_metadata
from schemas.shards import SHARD_FORMAT_VERSION, codec_codes, with_metadata


def build_codec_table(rows: list[tuple[str, np.ndarray]], split: str, s: CodecSettings) -> pa.Table:
    """rows of (recording_id, codes [K, T]) -> a table in the codec_codes schema, sorted by id."""
    rows = sorted(rows, key=lambda r: r[0])
    k = s.n_codebooks
    schema = codec_codes(k)
    lengths = np.array([c.shape[1] for _, c in rows], np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    flat = np.concatenate([c.T.reshape(-1) for _, c in rows]).astype(np.int16)
    frames = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.int16()), k)
    tokens = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), frames)
    n = len(rows)
    table = pa.Table.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([split] * n, pa.string()),
            pa.array(lengths, pa.int32()),
            tokens.cast(schema.field("tokens").type),
            pa.array([s.config_hash] * n, pa.string()),
        ],
        schema=schema,
    )
    meta = with_metadata(
        schema,
        encoding=s.name,
        config_hash=s.config_hash,
        kind="codec",
        split=split,
        shard_format=SHARD_FORMAT_VERSION,
        code_version=__version__,
        frame_rate=s.frame_rate,
        n_codebooks=k,
        codebook_size=s.codebook_size,
        sample_rate=s.sample_rate,
        bandwidth=s.bandwidth,
        trained=str(s.trained).lower(),
        layout="tokens[t][k]: frames x codebooks; transpose for [K, T]",
    )
    return table.replace_schema_metadata(meta.metadata)


def read_codes(path: Path) -> dict[str, np.ndarray]:
    """recording_id -> codes [K, T] int16 from one codec shard."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    k = int(read_shard_metadata(path)["n_codebooks"])
    out = {}
    for rid, tokens in zip(
        table.column("piece_id").to_pylist(), table.column("tokens").to_pylist(), strict=True
    ):
        out[rid] = np.asarray(tokens, np.int16).reshape(-1, k).T
    return out
