"""Where shard files live: under the workspace (default) or at a URL, through fsspec.

`[shards] root = "s3://bucket/musicdata/shards"` (or `gs://`, `az://`, `file:///mnt/shared`,
`memory://` in tests) puts every shard file there; the catalog keeps the same relative paths
(`shards/<encoding>/<config hash>/<split>/part-...`), so moving the shards changes one key. Each
function takes the workspace and a relative path and does the local thing (the workspace folder,
temp + fsync + rename, DESIGN rule 3) unless the root is a URL. fsspec and the filesystem's own
package (s3fs, gcsfs, adlfs) are imported only for a URL root.

Remote writes are atomic too: the shard is written and hashed in a local temp file, then
uploaded in one `put`. Object stores publish an object whole when its upload completes, so no
reader sees half a shard; on filesystems with a real rename (`file://`) the upload goes to a temp
name first and is renamed, as locally.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from musicdata.fsutil import TMP_SUFFIX, atomic_write, sha256_file
from musicdata.workspace import Workspace

SHARDS = "shards/"
_CHUNK = 1 << 20
# Filesystems where a rename is a real rename: upload to a temp name, then rename.
_RENAMING = frozenset({"file", "local"})


def shard_root_url(ws: Workspace) -> str | None:
    """The configured URL root of the shards, or None when they live in the workspace."""
    root = ws.config.shards.root.strip().rstrip("/")
    if not root:
        return None
    if "://" not in root:
        msg = (
            f"[shards] root = {root!r} is not a URL; use a URL such as s3://bucket/prefix, "
            "gs://bucket/prefix or file:///mnt/shared/shards, or leave it empty for "
            f"{ws.shards_dir}"
        )
        raise ValueError(msg)
    return root


def location(ws: Workspace, rel: str) -> Path | str:
    """A shard path the catalog records (relative to the workspace) as a local Path or a URL."""
    root = shard_root_url(ws)
    if root is None:
        return ws.abspath(rel)
    assert rel.startswith(SHARDS), f"{rel!r} is not under shards/"
    return f"{root}/{rel[len(SHARDS) :]}"


def _fs(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:  # fsspec comes with `datasets`; a bare install may lack it
        msg = f"{url}: shards at a URL need fsspec (pip install fsspec, plus s3fs or gcsfs)"
        raise ImportError(msg) from exc
    return url_to_fs(url)


def write(ws: Workspace, rel: str, write_to: Callable[[Path], None]) -> tuple[Path | str, int, str]:
    """Write one file with `write_to(tmp_path)` and publish it whole: (location, size, sha256)."""
    loc = location(ws, rel)
    if isinstance(loc, Path):
        atomic_write(loc, write_to)
        return loc, loc.stat().st_size, sha256_file(loc)
    tmp = ws.tmp_dir / f".upload.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
    try:
        write_to(tmp)
        size, digest = tmp.stat().st_size, sha256_file(tmp)
        fs, path = _fs(loc)
        parent = path.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        if _protocols(fs) & _RENAMING:
            staged = f"{parent}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
            fs.put_file(str(tmp), staged)
            fs.mv(staged, path)
        else:
            fs.put_file(str(tmp), path)
    finally:
        tmp.unlink(missing_ok=True)
    return loc, size, digest


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return set(proto) if isinstance(proto, tuple | list) else {proto}


@contextmanager
def open_read(ws: Workspace, rel: str) -> Iterator[BinaryIO]:
    """A binary file object for reading one shard (pyarrow reads Parquet from it)."""
    loc = location(ws, rel)
    if isinstance(loc, Path):
        with loc.open("rb") as fh:
            yield fh
    else:
        fs, path = _fs(loc)
        with fs.open(path, "rb") as fh:
            yield fh


def exists(ws: Workspace, rel: str) -> bool:
    loc = location(ws, rel)
    if isinstance(loc, Path):
        return loc.is_file()
    fs, path = _fs(loc)
    return bool(fs.isfile(path))


def size_and_sha256(ws: Workspace, rel: str) -> tuple[int, str]:
    """Bytes and sha256 of one stored file, read through (a remote file is streamed once)."""
    h = hashlib.sha256()
    size = 0
    with open_read(ws, rel) as fh:
        while chunk := fh.read(_CHUNK):
            size += len(chunk)
            h.update(chunk)
    return size, h.hexdigest()


def list_files(ws: Workspace, rel_dir: str) -> list[str]:
    """Every file under a shard folder, as sorted workspace-relative paths (temp files too)."""
    loc = location(ws, rel_dir)
    if isinstance(loc, Path):
        if not loc.exists():
            return []
        return sorted(str(p.relative_to(ws.root)) for p in loc.rglob("*") if p.is_file())
    fs, path = _fs(loc)
    if not fs.exists(path):
        return []
    base = path.rstrip("/")
    return sorted(f"{rel_dir.rstrip('/')}/{p[len(base) + 1 :]}" for p in fs.find(base))


def delete(ws: Workspace, rel: str) -> None:
    loc = location(ws, rel)
    if isinstance(loc, Path):
        loc.unlink(missing_ok=True)
        return
    fs, path = _fs(loc)
    if fs.exists(path):
        fs.rm_file(path)


def local_or_url(loc: Path | str) -> str:
    """For messages and pyarrow: the path or URL as text."""
    return os.fspath(loc) if isinstance(loc, Path) else loc


def check_shards(ws: Workspace, spec: Any) -> None:
    """Before a stage writes: raise ShardsDisagree if this config's shard files and the catalog
    disagree. Local shards get the full `musicdata catalog verify` check (bytes re-hashed);
    shards at a URL get one listing and a size check per file (re-hashing would download every
    shard on every run), which catches missing, replaced-by-other-size and unknown files."""
    from musicdata.catalog.publishing import config_shards
    from musicdata.catalog.verify import ShardsDisagree, check_config

    root = shard_root_url(ws)
    if root is None:
        check_config(ws, spec.name, spec.config_hash)
        return
    with ws.catalog.read() as con:
        rows = config_shards(con, spec.name, spec.config_hash)
    found = {}
    for rel in list_files(ws, f"{SHARDS}{spec.name}/{spec.config_hash}"):
        fs, path = _fs(str(location(ws, rel)))
        found[rel] = int(fs.size(path))
    problems = [
        f"{r['path']}: " + ("missing" if r["path"] not in found else f"{found[r['path']]} bytes")
        for r in rows
        if found.get(r["path"]) != int(r["size_bytes"])
    ]
    if problems:
        msg = (
            f"{spec.name}@{spec.config_hash}: the shard files under {root} disagree with the "
            f"catalog, so nothing was written: {'; '.join(problems[:5])}. Restore them from a "
            "backup (the catalog is the record of what was done)"
        )
        raise ShardsDisagree(msg)
