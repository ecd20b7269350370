"""Atomic file output: temp name, fsync, rename (DESIGN rule 3), and hashing while copying."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20


class TooLarge(ValueError):
    """A stream exceeded its byte cap while being copied."""


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
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(final)
        fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def copy_hashing(src: BinaryIO, tmp: Path, *, max_bytes: int) -> tuple[str, int]:
    """Copy a stream to tmp while hashing it; never trusts declared sizes (archive bombs)."""
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
        os.fsync(out.fileno())
    return h.hexdigest(), size
