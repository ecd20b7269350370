"""Atomic file output: temp name, fsync, rename (DESIGN rule 3), and hashing while copying."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from musicdata.schemas.faults import fault

TMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20


class TooLarge(ValueError):
    """A stream exceeded its byte cap while being copied."""


class WorkspaceWriteError(RuntimeError):
    """The workspace cannot be written (disk full, read-only, I/O error, no permission): the
    environment's fault, never an input's, so it stops the run and quarantines nothing."""


# Errors of the machine, not of the bytes being read: a full disk must not quarantine good inputs.
# EFBIG: a file-size limit (ulimit -f, RLIMIT_FSIZE) stops a write the way a full disk does.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})
# pyarrow's OSErrors often carry no errno, only the C library's text.
_ENVIRONMENT_TEXT = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "File too large",
)


def is_environment_error(exc: BaseException, root: Path | None = None) -> bool:
    """True for an OSError caused by the machine (ENOSPC, EDQUOT, EROFS, EIO), or a permission
    error on a path under the workspace `root`, as opposed to a bad or unreadable input. Other
    exceptions (DuckDB's IOException) count when their text names a full or read-only disk."""
    said = any(t in str(exc) for t in _ENVIRONMENT_TEXT)
    if not isinstance(exc, OSError):
        return said
    if exc.errno in ENVIRONMENT_ERRNOS or said:
        return True
    if isinstance(exc, PermissionError) and root is not None and exc.filename:
        return Path(os.fsdecode(exc.filename)).resolve().is_relative_to(Path(root).resolve())
    return False


def workspace_write_error(exc: BaseException, root: Path) -> WorkspaceWriteError:
    """The error to raise for an environment fault while writing the workspace at `root`."""
    free = free_bytes(root)
    there = f" ({free / 1e6:.1f} MB free there now)" if free is not None else ""
    msg = (
        f"cannot write the workspace {root}: {exc}. This is the machine, not the input: free "
        f"disk space{there} (or fix the folder's permissions) and run the same command again; "
        "nothing was quarantined for it"
    )
    return WorkspaceWriteError(msg)


def free_bytes(path: Path) -> int | None:
    """Bytes free on the filesystem holding `path` (or its nearest existing parent)."""
    for p in (Path(path), *Path(path).parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def atomic_write(final: Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp_path), fsync it, then rename onto `final`; readers never see half a file."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    try:
        write(tmp)
        fault(f"write{final.suffix}", torn=tmp)  # the kill -9 tests (docs/faults.md)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(final)
        fsync_dir(final.parent)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS and not exc.filename:  # pyarrow names no file
            raise _naming(exc, final, tmp) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _naming(exc: OSError, final: Path, tmp: Path) -> OSError:
    """The same error, naming the file, and how much of it was written (it needs more)."""
    done = tmp.stat().st_size if tmp.exists() else 0
    text = str(exc.strerror or exc)
    if done:
        text += f" after {done} bytes of it were written"
    return type(exc)(exc.errno, text, str(final))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_hashing(src: BinaryIO, tmp: Path, *, max_bytes: int, sync: bool = True) -> tuple[str, int]:
    """Copy a stream to tmp while hashing it; never trusts declared sizes (archive bombs).

    `sync=False` leaves the fsync to the caller, who syncs once for many files (the content
    store syncs once per discovery: an fsync per member made a 5,000-member tar 62% fsync)."""
    h = hashlib.sha256()
    size = 0
    with tmp.open("wb") as out:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                msg = f"more than {max_bytes} bytes"
                raise TooLarge(msg)
            h.update(chunk)
            out.write(chunk)
        out.flush()
        if sync:
            os.fsync(out.fileno())
    return h.hexdigest(), size
