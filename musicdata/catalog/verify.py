"""`musicdata catalog verify`: do the shard files on disk say what the catalog says?

The catalog is the record of what was done (DESIGN rule 2); a shard replaced behind its back (two
runs racing, a stray `COPY ... TO`, a disk fault) silently breaks every count built on it. This
re-reads every file: sha256 and size against `core.shards`, piece ids against `core.shard_pieces`,
no piece twice in one encoding config, and nothing under `shards/` that the catalog does not know
(orphans a crash left, temp files and temp folders). Read-only: it reports, it never repairs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from musicdata.fsutil import TMP_SUFFIX, sha256_file
from musicdata.workspace import Workspace

# Files beside the shards that describe a config (the tokenizer or codec settings), not shards.
CONFIG_FILES = frozenset({"tokenizer.json", "codec.json"})

# Problem kinds, in report order.
KINDS = (
    "missing_file",  # a catalog shard row whose file is gone
    "unreadable",  # the file is not a readable Parquet shard
    "hash_mismatch",  # the bytes differ from the recorded sha256 (or size)
    "config_mismatch",  # the file's metadata names another encoding/config/split
    "pieces_mismatch",  # piece ids in the file differ from the catalog's list for that shard
    "duplicate_piece",  # one piece id in two shards (or twice) within one encoding config
    "orphan_file",  # a file under shards/ that no catalog row names
    "temp_leftover",  # a temp file or temp folder a killed writer left
)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    path: str  # relative to the workspace
    detail: str
    shard_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Shard:
    shard_id: str
    encoding: str
    config_hash: str
    split: str
    path: str
    n_rows: int
    size_bytes: int
    file_sha256: str


def _ids_text(ids: list[str], limit: int = 5) -> str:
    head = ", ".join(ids[:limit])
    return head + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _is_temp(name: str) -> bool:
    """Names the atomic writers use for work in progress (`.<name>.<hex>.tmp`, `*.tmp.d`)."""
    return name.startswith(".") or name.endswith((TMP_SUFFIX, f"{TMP_SUFFIX}.d"))


def _catalog_state(
    ws: Workspace, encoding: str | None, config_hash: str | None
) -> tuple[list[_Shard], dict[str, list[str]], set[str]]:
    """(shard rows, piece ids per shard id, config files the catalog names), of one encoding
    (and config) when given."""
    where = "WHERE (? IS NULL OR encoding = ?) AND (? IS NULL OR config_hash = ?)"
    params = [encoding, encoding, config_hash, config_hash]
    with ws.catalog.read() as con:  # one connection: a stage runs this on every start
        rows = con.sql(
            "SELECT shard_id, encoding, config_hash, split, path, n_rows, size_bytes, "
            f"file_sha256 FROM core.shards {where} ORDER BY path",
            params=params,
        ).to_arrow_table()
        table = con.sql(
            "SELECT sp.shard_id, sp.piece_id FROM core.shard_pieces sp "
            f"WHERE sp.shard_id IN (SELECT shard_id FROM core.shards {where})",
            params=params,
        ).to_arrow_table()
        configs = {r[0] for r in con.execute("SELECT config_path FROM core.encodings").fetchall()}
    shards = [_Shard(**row) for row in rows.to_pylist()]
    pieces: dict[str, list[str]] = defaultdict(list)
    for sid, pid in zip(
        table.column("shard_id").to_pylist(), table.column("piece_id").to_pylist(), strict=True
    ):
        pieces[sid].append(pid)
    return shards, pieces, configs


def _check_shard(
    ws: Workspace, s: _Shard, expected: list[str], problems: list[Problem]
) -> list[str] | None:
    """Check one catalog shard against its file; returns the file's piece ids (None: unread)."""

    def add(kind: str, detail: str) -> None:
        problems.append(Problem(kind, s.path, detail, s.shard_id))

    path = ws.abspath(s.path)
    if not path.is_file():
        add("missing_file", f"the catalog lists {s.n_rows} pieces in it, but there is no file")
        return None
    size = path.stat().st_size
    digest = sha256_file(path)
    if digest != s.file_sha256 or size != s.size_bytes:
        add(
            "hash_mismatch",
            f"sha256 {digest[:12]} ({size} bytes) on disk, catalog recorded "
            f"{s.file_sha256[:12]} ({s.size_bytes} bytes): the file was replaced after it was "
            "recorded",
        )
    try:
        pf = pq.ParquetFile(path)
        meta = {
            k.decode().removeprefix("musicdata."): v.decode()
            for k, v in (pf.schema_arrow.metadata or {}).items()
            if k.startswith(b"musicdata.")
        }
        ids = pf.read(columns=["piece_id"]).column("piece_id").to_pylist()
    except (OSError, ValueError, KeyError) as exc:
        add("unreadable", f"not a readable shard: {exc}")
        return None
    want = {"encoding": s.encoding, "config_hash": s.config_hash, "split": s.split}
    wrong = {k: meta.get(k) for k, v in want.items() if meta.get(k) != v}
    if wrong:
        add("config_mismatch", f"file metadata says {wrong}, catalog says {want}")
    extra = sorted(set(ids) - set(expected))
    missing = sorted(set(expected) - set(ids))
    if extra or missing or len(ids) != s.n_rows:
        parts = [f"{len(ids)} rows in the file, catalog recorded {s.n_rows}"]
        if extra:
            parts.append(f"not in the catalog: {_ids_text(extra)}")
        if missing:
            parts.append(f"in the catalog but not in the file: {_ids_text(missing)}")
        add("pieces_mismatch", "; ".join(parts))
    return ids


def _scan_tree(ws: Workspace, root: Path, known: set[str], problems: list[Problem]) -> None:
    """Orphans and temp leftovers under `root` (hidden and temp folders are not descended)."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for d in sorted(dirnames):
            if _is_temp(d):
                rel = str((base / d).relative_to(ws.root))
                problems.append(Problem("temp_leftover", rel, "temp folder of a killed writer"))
        dirnames[:] = sorted(d for d in dirnames if not _is_temp(d))
        for name in sorted(filenames):
            rel = str((base / name).relative_to(ws.root))
            if _is_temp(name):
                problems.append(Problem("temp_leftover", rel, "temp file of a killed writer"))
            elif rel not in known and name not in CONFIG_FILES:
                problems.append(
                    Problem(
                        "orphan_file",
                        rel,
                        "no catalog row names this file (a crashed run's shard, or a stranger); "
                        "the next run of its stage adopts or deletes it",
                    )
                )


def verify(
    ws: Workspace, encoding: str | None = None, config_hash: str | None = None
) -> list[Problem]:
    """Every disagreement between the shard files and the catalog, in KINDS order, then path.
    An empty list means every recorded shard is intact and nothing unrecorded lies beside them.
    `encoding` (and `config_hash`) narrow it to one encoding's shards and folder, so a stage can
    check the config it is about to write without reading every other shard. Raises
    CatalogError when there is no catalog."""
    assert encoding is not None or config_hash is None, "a config hash needs its encoding"
    shards, pieces, configs = _catalog_state(ws, encoding, config_hash)
    problems: list[Problem] = []
    where: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for s in shards:
        ids = _check_shard(ws, s, pieces.get(s.shard_id, []), problems)
        for pid in ids if ids is not None else pieces.get(s.shard_id, []):
            where[(s.encoding, s.config_hash)][pid].append(s.path)
    for (enc, chash), by_piece in sorted(where.items()):
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)  # same files: one problem
        for pid, paths in by_piece.items():
            if len(paths) > 1:
                groups[tuple(sorted(paths))].append(pid)
        for paths, ids in sorted(groups.items()):
            problems.append(
                Problem(
                    "duplicate_piece",
                    paths[0],
                    f"{enc}@{chash}: {len(ids)} piece(s) stored more than once, in "
                    f"{', '.join(paths)}: {_ids_text(sorted(ids))}",
                )
            )
    root = ws.shards_dir.joinpath(*[p for p in (encoding, config_hash) if p is not None])
    _scan_tree(ws, root, {s.path for s in shards} | configs, problems)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(problems, key=lambda p: (order[p.kind], p.path, p.detail))


class ShardsDisagree(RuntimeError):
    """A stage found its encoding's shard files and the catalog at odds and wrote nothing."""


def check_config(ws: Workspace, encoding: str, config_hash: str, limit: int = 5) -> None:
    """Raise ShardsDisagree naming the problems, if this encoding config's shards and the
    catalog disagree: a stage runs it after reconcile, before writing, so it never builds on a
    replaced or missing shard (every count and manifest would be silently wrong)."""
    problems = verify(ws, encoding, config_hash)
    if not problems:
        return
    shown = "; ".join(f"{p.kind} {p.path}: {p.detail}" for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    msg = (
        f"{encoding}@{config_hash}: the shard files under {ws.shards_dir / encoding / config_hash} "
        f"disagree with the catalog, so nothing was written: {shown}{more}. Restore the named "
        "files from a backup (the catalog is the record of what was done); "
        "`musicdata catalog verify` lists every problem"
    )
    raise ShardsDisagree(msg)
