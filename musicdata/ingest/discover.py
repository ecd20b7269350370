"""Expand user inputs (files, folders, zip/tar archives) into hashed, stored candidates.

Archives are read member by member into the content store (musicdata.ingest.archives), never
extracted onto the filesystem under their own names. A full disk or an unwritable workspace stops
the run (WorkspaceWriteError) instead of quarantining good inputs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from musicdata.audio import AUDIO_SUFFIXES
from musicdata.fsutil import (
    copy_hashing,
    is_environment_error,
    sha256_file,
    tmp_name,
    workspace_write_error,
)
from musicdata.ingest.midi import MIDI_SUFFIXES
from musicdata.workspace import Workspace

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MIDI_MAGIC = (b"MThd", b"RIFF")
_MB = 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    """An input whose bytes are hashed and stored in the workspace's content store."""

    path: str  # absolute path, or 'archive!member'
    sha256: str
    size: int
    archive: str | None = None
    kind: str = "midi"  # midi | audio


@dataclass(frozen=True)
class Rejected:
    """An input refused before parsing (unsafe member, too large, unreadable, missing)."""

    path: str
    reason: str
    detail: str
    sha256: str | None = None
    stage: str = "extract"
    archive: str | None = None


@dataclass
class Discovery:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # folder members of unknown type


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def is_midi_name(name: str) -> bool:
    return PurePosixPath(name.lower()).suffix in MIDI_SUFFIXES


def is_audio_name(name: str) -> bool:
    return PurePosixPath(name.lower()).suffix in AUDIO_SUFFIXES


def _sniff_audio(head: bytes) -> bool:
    from musicdata.audio.decode import sniff_format

    return sniff_format(head) is not None


def discover(ws: Workspace, inputs: list[Path]) -> Discovery:
    """Hash every input and store the bytes of new ones; nothing here parses MIDI."""
    out = Discovery()
    missing = [p for p in inputs if not Path(p).expanduser().exists()]
    if inputs and len(missing) == len(inputs):
        # Nothing to ingest at all is a setup error (a failed mount, a typo), not a bad file:
        # fail loudly so a scheduled run does not look healthy.
        msg = f"none of the inputs exist: {', '.join(str(p) for p in missing)}"
        raise FileNotFoundError(msg)
    for raw in inputs:
        path = Path(raw).expanduser().absolute()
        if not path.exists():
            out.rejected.append(
                Rejected(str(path), "not_found", "no such file or folder", stage="ingest")
            )
        elif path.is_dir():
            for member in _walk(path):
                _add_file(ws, member, out, explicit=False)
        else:
            _add_file(ws, path, out, explicit=True)
    sync_store()
    out.candidates.sort(key=lambda c: c.path)
    return out


_unsynced = 0  # blobs this process stored since the last sync_store()


def sync_store() -> None:
    """Make every blob stored since the last call durable, once: the blobs are written without
    their own fsync (see `_store`), and nothing references them before this returns. A rerun
    that stored nothing new syncs nothing (os.sync flushes the whole machine)."""
    global _unsynced
    if _unsynced:
        os.sync()
        _unsynced = 0


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _add_file(ws: Workspace, path: Path, out: Discovery, *, explicit: bool) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # a dangling link in a folder, a file removed while walking
        raise_if_environment(ws, exc)
        out.rejected.append(Rejected(str(path), "unreadable", str(exc), stage="ingest"))
        return
    if not stat.S_ISREG(mode):  # a fifo or device would block or never end
        detail = "not a regular file (fifo, socket or device); copy the data into a file"
        out.rejected.append(Rejected(str(path), "unsupported_format", detail, stage="ingest"))
        return
    if is_archive(path):
        from musicdata.ingest.archives import add_archive  # it imports this module

        add_archive(ws, path, out)
        return
    kind = "audio" if is_audio_name(path.name) else "midi"
    if kind == "midi" and not is_midi_name(path.name):
        if not explicit:
            out.ignored.append(str(path))
            return
        with path.open("rb") as fh:
            head = fh.read(16)
        if _sniff_audio(head):
            kind = "audio"
        elif head[:4] not in MIDI_MAGIC:
            detail = (
                "not a MIDI or audio file (by name and by its first bytes) nor a zip/tar archive"
            )
            out.rejected.append(Rejected(str(path), "unsupported_format", detail, stage="ingest"))
            return
    section = "audio" if kind == "audio" else "ingest"
    cap = int(getattr(ws.config, section).max_file_mb * _MB)
    size = path.stat().st_size
    if size > cap:
        detail = f"{size} bytes > cap {cap} ({section}.max_file_mb)"
        out.rejected.append(Rejected(str(path), "too_large", detail, stage="ingest"))
        return
    try:
        sha = sha256_file(path)
        blob = ws.abspath(ws.blob_relpath(sha))
        if not blob.exists():
            with path.open("rb") as fh:
                _store(ws, fh, cap, expected=sha)
    except OSError as exc:
        raise_if_environment(ws, exc)
        out.rejected.append(Rejected(str(path), "unreadable", str(exc), stage="ingest"))
        return
    out.candidates.append(Candidate(str(path), sha, size, kind=kind))


def _store(
    ws: Workspace, stream: BinaryIO, cap: int, expected: str | None = None
) -> tuple[str, int]:
    """Copy a stream into the content store (temp, rename); returns (sha256, size).

    No fsync per blob: discovery calls `sync_store()` once before any blob is referenced by the
    catalog. A kill never loses written data (the page cache survives the process); a power
    cut before that sync loses only blobs nothing refers to yet."""
    global _unsynced
    staging = ws.tmp_dir / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(staging / "blob")
    try:
        sha, size = copy_hashing(stream, tmp, max_bytes=cap, sync=False)
        if expected is not None and sha != expected:
            msg = f"file changed while being read (sha256 {expected[:12]} then {sha[:12]})"
            raise OSError(msg)
        final = ws.abspath(ws.blob_relpath(sha))
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            _unsynced += 1
        return sha, size
    finally:
        tmp.unlink(missing_ok=True)


def raise_if_environment(ws: Workspace, exc: BaseException) -> None:
    """A full disk or an unwritable workspace stops the run; the input is not to blame."""
    if isinstance(exc, OSError) and is_environment_error(exc, ws.root):
        raise workspace_write_error(exc, ws.root) from exc


def _unsafe_name(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute member name"
    if ".." in p.parts:
        return "member name escapes the archive ('..')"
    return None
