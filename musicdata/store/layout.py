"""Where shards live: `shards/<encoding>/<config hash>/<split>/part-<writer>-<NNNNN>.parquet`.

The writer id keeps parallel writers apart (datatrove names shards by rank for the same reason):
two machines writing one encoding never pick the same file name. One machine's runs are
serialized by the workspace run lock, so the default writer id is fixed and the same inputs give
the same file names (and bytes). Set `MUSICDATA_WRITER` (e.g. to a rank) for parallel writers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

DEFAULT_WRITER = "w0"
WRITER_ENV = "MUSICDATA_WRITER"
# part-<writer>-NNNNN.parquet; the writer-less part-NNNNN.parquet of older workspaces still parses
PART_RE = re.compile(r"^part-(?:(?P<writer>[A-Za-z0-9_]+)-)?(?P<idx>\d{5})\.parquet$")


class ShardSpec(Protocol):
    """What the store needs of an encoding (symbolic or codec)."""

    name: str
    config_hash: str


def writer_id() -> str:
    wid = os.environ.get(WRITER_ENV, DEFAULT_WRITER)
    if not re.fullmatch(r"[A-Za-z0-9_]+", wid):
        msg = f"{WRITER_ENV}={wid!r}: a writer id is letters, digits and '_' only"
        raise ValueError(msg)
    return wid


def shard_dir(spec: ShardSpec) -> str:
    """Where one encoding config's shards live, relative to the workspace."""
    return f"shards/{spec.name}/{spec.config_hash}"


def shard_relpath(spec: ShardSpec, split: str, idx: int, writer: str | None = None) -> str:
    return f"{shard_dir(spec)}/{split}/part-{writer or writer_id()}-{idx:05d}.parquet"


def shard_id(spec: ShardSpec, rel: str) -> str:
    """The catalog key of a shard: encoding, config, split and the part's name."""
    path = Path(rel)
    part = path.stem.removeprefix("part-")
    return f"{spec.name}:{spec.config_hash}:{path.parent.name}:{part}"


def next_indexes(paths: Iterable[str], writer: str | None = None) -> dict[str, int]:
    """Next part number per split for this writer, after the given existing shard paths."""
    writer = writer or writer_id()
    out: dict[str, int] = {}
    for p in paths:
        m = PART_RE.match(Path(p).name)
        if m and (m.group("writer") or DEFAULT_WRITER) == writer:
            split = Path(p).parent.name
            out[split] = max(out.get(split, 0), int(m.group("idx")) + 1)
    return out
