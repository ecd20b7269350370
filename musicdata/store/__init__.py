"""The one shard store: layout, the one writer (flat, compound and codec shards), the catalog rows
of a shard, reconcile/adopt after a crash, and refreshing the in-place views.

Every stage that writes token shards (tokenize, codec) goes through it, so they cannot drift.
"""

from musicdata.store.layout import (
    DEFAULT_WRITER,
    PART_RE,
    ShardSpec,
    next_indexes,
    shard_dir,
    shard_relpath,
)
from musicdata.store.rows import record_shard, shard_rows
from musicdata.store.table import (
    ShardRow,
    WrittenShard,
    build_table,
    read_shard_metadata,
    write_shard,
)
from musicdata.store.writer import ShardWriter, reconcile

__all__ = [
    "DEFAULT_WRITER",
    "PART_RE",
    "ShardRow",
    "ShardSpec",
    "ShardWriter",
    "WrittenShard",
    "build_table",
    "next_indexes",
    "read_shard_metadata",
    "reconcile",
    "record_shard",
    "shard_dir",
    "shard_relpath",
    "shard_rows",
    "write_shard",
]
