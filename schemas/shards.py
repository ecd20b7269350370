"""Arrow schemas of the token shards, one per shard kind.

Every shard is written with exactly this schema (DESIGN rule 5), so readers never guess types.
"""

from __future__ import annotations

import pyarrow as pa

SHARD_FORMAT_VERSION = "1"

# Flat encodings (REMI, MIDI-like, PerTok, performance): one int32 token sequence per piece.
FLAT_TOKENS = pa.schema(
    [
        pa.field("piece_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("tokens", pa.list_(pa.field("item", pa.int32(), nullable=False)), nullable=False),
        pa.field("config_hash", pa.string(), nullable=False),
    ]
)


def compound_tokens(n_fields: int) -> pa.Schema:
    """Compound encodings (CP, Octuple, NB): [length, F] int16 sub-token ids per piece."""
    item = pa.list_(pa.field("item", pa.int16(), nullable=False), n_fields)
    return pa.schema(
        [
            pa.field("piece_id", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("length", pa.int32(), nullable=False),
            pa.field("tokens", pa.list_(pa.field("item", item, nullable=False)), nullable=False),
            pa.field("config_hash", pa.string(), nullable=False),
        ]
    )


def with_metadata(schema: pa.Schema, **meta: str) -> pa.Schema:
    """Attach key-value metadata (encoding, config hash, ...) under a 'musicdata.' prefix."""
    merged = dict(schema.metadata or {})
    merged.update({f"musicdata.{k}".encode(): str(v).encode() for k, v in meta.items()})
    return schema.with_metadata(merged)


def codec_codes(n_codebooks: int) -> pa.Schema:
    """Audio codec shards (EnCodec): one row per recording, `tokens` holds the codes frame by
    frame as [T, K] int16 (K = n_codebooks; transpose for the [K, T] layout); `length` = T.
    Parquet metadata adds frame_rate, n_codebooks, codebook_size, sample_rate and trained."""
    return compound_tokens(n_codebooks)
