"""The one shard writer and the one reconciler, for flat, compound and codec shards alike.

Resumable: a piece is marked done only in the transaction that records the shard holding it, so a
crash loses at most the unwritten buffer. Files a crash left without a catalog row are adopted if
they match this config and none of their pieces lives in another shard, else deleted (DESIGN
rule 3); temp files and temp folders are always deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from musicdata.catalog import records
from musicdata.fsutil import TMP_SUFFIX
from musicdata.schemas.faults import fault
from musicdata.store import fs as store_fs
from musicdata.store.layout import PART_RE, ShardSpec, shard_dir, shard_relpath
from musicdata.store.rows import record_shard, shard_rows, stage_name
from musicdata.store.table import (
    ShardRow,
    WrittenShard,
    build_table,
    n_tokens,
    read_shard_metadata,
    write_parquet,
)
from musicdata.workspace import Workspace

# Files beside the shards that describe the config (not shards): kept by reconcile.
CONFIG_FILES = frozenset({"tokenizer.json", "codec.json"})


@dataclass
class ShardWriter:
    """Buffers rows per split; a full buffer becomes a shard recorded at once, the rest at
    `close`. `kind`: flat | compound | codec; `source_of`: row id -> lineage node."""

    ws: Workspace
    spec: ShardSpec
    run_id: str
    kind: str
    next_index: dict[str, int]
    sub_tokens: list[str] | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)
    source_of: Callable[[str], str] | None = None
    shards_written: int = 0
    tokens: int = 0
    buffers: dict[str, list[ShardRow]] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)

    def add(self, split: str, row: ShardRow, fidelity: Any = None) -> None:
        if fidelity is not None:
            self.fidelity[row.piece_id] = fidelity
        self.buffers.setdefault(split, []).append(row)
        if len(self.buffers[split]) >= self.ws.config.shards.rows_per_shard:
            *args, sources = self._flush(split)
            record_shard(self.ws, *args, sources=sources)

    def close(self, con: Any) -> None:
        """Write what is buffered and record it in the caller's transaction."""
        for split in sorted(self.buffers):
            *args, sources = self._flush(split) or (None,)
            if args:
                shard_rows(con, *args, sources=sources)

    def _flush(self, split: str) -> tuple:
        rows = self.buffers.pop(split, [])
        if not rows:
            return ()
        idx = self.next_index.get(split, 0)
        self.next_index[split] = idx + 1
        rel = shard_relpath(self.spec, split, idx)
        table = build_table(
            rows,
            split=split,
            encoding=self.spec.name,
            config_hash=self.spec.config_hash,
            kind=self.kind,
            sub_tokens=self.sub_tokens,
            extra_meta=self.extra_meta,
        )
        cfg = self.ws.config.shards
        loc, size, digest = store_fs.write(self.ws, rel, lambda tmp: write_parquet(table, tmp, cfg))
        written = WrittenShard(loc, table.num_rows, n_tokens(table), size, digest)
        fault("store.after_rename")  # renamed into place, catalog rows not yet committed
        lengths = {r.piece_id: len(r.tokens) for r in rows}
        fid = {p: self.fidelity.pop(p) for p in lengths if p in self.fidelity}
        self.shards_written += 1
        self.tokens += written.n_tokens
        sources = [self.source_of(p) for p in lengths] if self.source_of else None
        return (self.spec, rel, split, written, lengths, self.run_id, fid, sources)


def reconcile(
    ws: Workspace,
    spec: ShardSpec,
    run_id: str,
    known: set[str],
    *,
    source_of: Callable[[str], str | None] | None = None,
) -> tuple[int, int]:
    """Adopt whole shards a crash left without catalog rows, delete the rest: (adopted, deleted).
    `known`: the shard paths the catalog has for this config; `source_of`: row id -> lineage node,
    None for an id this workspace does not know (the file is then deleted, not adopted)."""
    _sweep_config_saves(ws)
    if store_fs.shard_root_url(ws) is not None:
        return _reconcile_files(ws, spec, run_id, known, source_of)
    root = ws.abspath(shard_dir(spec))
    if not root.exists():
        return 0, 0
    adopted = deleted = 0
    for path in sorted(root.rglob("*")):
        if path.is_dir() and path.name.endswith(TMP_SUFFIX + ".d"):  # a torn config save
            shutil.rmtree(path, ignore_errors=True)
            deleted += 1
            continue
        rel = str(path.relative_to(ws.root))
        if not path.is_file() or path.name in CONFIG_FILES or rel in known:
            continue
        if _adopt(ws, spec, path.name, rel, run_id, source_of):
            adopted += 1
        else:
            path.unlink()
            deleted += 1
    return adopted, deleted


def _sweep_config_saves(ws: Workspace) -> None:
    """Delete torn config saves (`.tokenizer.json.<hex>.tmp`, its `.tmp.d` folder) beside every
    encoding's shards, not only this one's: a run killed while saving one encoding's config must
    not leave debris that a later run of other encodings never cleans (issue 18). Safe under
    the workspace run lock, which every writer of this folder holds."""
    for path in sorted(ws.shards_dir.glob("*/*/.*")):
        if path.name.endswith(TMP_SUFFIX + ".d") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.endswith(TMP_SUFFIX) and path.name.startswith(
            tuple(f".{name}." for name in CONFIG_FILES)
        ):
            path.unlink(missing_ok=True)


def _reconcile_files(
    ws: Workspace,
    spec: ShardSpec,
    run_id: str,
    known: set[str],
    source_of: Callable[[str], str | None] | None,
) -> tuple[int, int]:
    """`reconcile` for shards at a URL root: the same rules over the store's file listing (an
    object store has no folders and no torn config saves: configs stay in the workspace)."""
    adopted = deleted = 0
    for rel in store_fs.list_files(ws, shard_dir(spec)):
        name = rel.rsplit("/", 1)[-1]
        if name in CONFIG_FILES or rel in known:
            continue
        if _adopt(ws, spec, name, rel, run_id, source_of):
            adopted += 1
        else:
            store_fs.delete(ws, rel)
            deleted += 1
    return adopted, deleted


def _adopt(
    ws: Workspace,
    spec: ShardSpec,
    name: str,
    rel: str,
    run_id: str,
    source_of: Callable[[str], str | None] | None,
) -> bool:
    import pyarrow.parquet as pq

    if name.endswith(TMP_SUFFIX) or not PART_RE.match(name):
        return False
    try:
        with store_fs.open_read(ws, rel) as fh:
            meta = read_shard_metadata(fh)
            table = pq.read_table(fh, columns=["piece_id", "length"])
    except (OSError, ValueError):  # a torn or foreign file is deleted, not trusted
        return False
    if meta.get("encoding") != spec.name or meta.get("config_hash") != spec.config_hash:
        return False
    ids = table.column("piece_id").to_pylist()
    lengths: Mapping[str, int] = dict(zip(ids, table.column("length").to_pylist(), strict=True))
    sources = [source_of(i) for i in ids] if source_of else None
    if sources is not None and any(s is None for s in sources):
        return False
    with ws.catalog.write() as con:
        done = records.stage_status(con, stage_name(spec), spec.config_hash, ids)
    if done:  # some of its pieces already live in another shard: adopting would duplicate them
        return False
    size, digest = store_fs.size_and_sha256(ws, rel)
    loc = store_fs.location(ws, rel)
    written = WrittenShard(loc, table.num_rows, sum(lengths.values()), size, digest)
    split = meta.get("split", rel.rsplit("/", 2)[-2])
    record_shard(ws, spec, rel, split, written, lengths, run_id, sources=sources)
    return True
