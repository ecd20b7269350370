"""Expand user inputs (files, folders, zip/tar archives) into hashed, stored candidates.

Archives are read member by member into the content store, never extracted onto the filesystem
under their own names: path escapes (`..`, absolute names), links and devices are refused, and
sizes are counted while copying, so a bomb stops at its cap instead of filling the disk.
"""

from __future__ import annotations

import os
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from musicdata.audio import AUDIO_SUFFIXES
from musicdata.fsutil import (
    TooLarge,
    copy_hashing,
    fsync_dir,
    is_environment_error,
    sha256_file,
    tmp_name,
    workspace_write_error,
)
from musicdata.ingest.midi import MIDI_SUFFIXES
from musicdata.workspace import Workspace
from schemas.config import ArchiveConfig

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
    out.candidates.sort(key=lambda c: c.path)
    return out


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _add_file(ws: Workspace, path: Path, out: Discovery, *, explicit: bool) -> None:
    if is_archive(path):
        _add_archive(ws, path, out)
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
        _raise_if_environment(ws, exc)
        out.rejected.append(Rejected(str(path), "unreadable", str(exc), stage="ingest"))
        return
    out.candidates.append(Candidate(str(path), sha, size, kind=kind))


def _store(
    ws: Workspace, stream: BinaryIO, cap: int, expected: str | None = None
) -> tuple[str, int]:
    """Copy a stream into the content store (temp, fsync, rename); returns (sha256, size)."""
    staging = ws.tmp_dir / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(staging / "blob")
    try:
        sha, size = copy_hashing(stream, tmp, max_bytes=cap)
        if expected is not None and sha != expected:
            msg = f"file changed while being read (sha256 {expected[:12]} then {sha[:12]})"
            raise OSError(msg)
        final = ws.abspath(ws.blob_relpath(sha))
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(final)
            fsync_dir(final.parent)
        return sha, size
    finally:
        tmp.unlink(missing_ok=True)


def _raise_if_environment(ws: Workspace, exc: BaseException) -> None:
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


def _add_archive(ws: Workspace, path: Path, out: Discovery) -> None:
    apath = str(path)
    try:
        with _archive_members(path, ws.config.archive, ws.config.ingest.timeout_s) as listing:
            members, stopped = listing
            if stopped and stopped[0] == "too_many_members":
                out.rejected.append(Rejected(apath, *stopped))
                return
            _add_members(ws, apath, members, out)
            if stopped:
                out.rejected.append(Rejected(apath, *stopped))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        _raise_if_environment(ws, exc)
        out.rejected.append(Rejected(apath, "bad_archive", f"cannot read archive: {exc}"))


def _add_members(ws: Workspace, apath: str, members: list[_Member], out: Discovery) -> None:
    cfg = ws.config.archive
    member_cap = int(cfg.max_member_mb * _MB)
    total_cap = int(cfg.max_total_mb * _MB)
    total = 0

    def reject(name: str, reason: str, detail: str) -> None:
        out.rejected.append(Rejected(f"{apath}!{name}", reason, detail, archive=apath))

    for m in members:
        if m.is_dir:
            continue
        why = _unsafe_name(m.name) or m.unsafe
        if why:
            reject(m.name, "unsafe_member", why)
            continue
        if is_archive(Path(m.name)):
            reject(m.name, "nested_archive", "archives inside archives are not opened; unpack it")
            continue
        if not (is_midi_name(m.name) or is_audio_name(m.name)):
            out.ignored.append(f"{apath}!{m.name}")
            continue
        if m.size > member_cap:
            reject(
                m.name, "too_large", f"{m.size} bytes > cap {member_cap} (archive.max_member_mb)"
            )
            continue
        if m.compressed and m.size / max(m.compressed, 1) > cfg.max_ratio:
            ratio = m.size / max(m.compressed, 1)
            reject(m.name, "compression_bomb", f"ratio {ratio:.0f} > cap {cfg.max_ratio:g}")
            continue
        if total + m.size > total_cap:
            reject(m.name, "archive_total_cap", f"archive expands past {total_cap} bytes")
            continue
        try:
            with m.open() as stream:
                sha, size = _store(ws, stream, min(member_cap, total_cap - total))
        except TooLarge as exc:
            reject(m.name, "too_large", f"member expands to {exc} (declared {m.size})")
            continue
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            _raise_if_environment(ws, exc)
            reject(m.name, "bad_archive", f"cannot read member: {exc}")
            continue
        total += size
        kind = "audio" if is_audio_name(m.name) else "midi"
        out.candidates.append(Candidate(f"{apath}!{m.name}", sha, size, archive=apath, kind=kind))


@dataclass
class _Member:
    name: str
    size: int
    compressed: int  # 0 where the format does not say (tar)
    is_dir: bool
    unsafe: str | None
    open: Callable[[], BinaryIO]


@contextmanager
def _archive_members(
    path: Path, cfg: ArchiveConfig, timeout_s: float
) -> Iterator[tuple[list[_Member], tuple[str, str] | None]]:
    """Open an archive and list its members without extracting anything: (members, why the
    listing stopped early as (reason, detail), or None).

    Listing is capped like extraction: it stops one member past `max_members` (a million empty
    members would cost a GB of member records), never passes over a member larger than the
    member cap or past the total cap (for a compressed tar, passing over means decompressing:
    an 82 KB .tar.bz2 can declare 64 GiB), and stops after `timeout_s`."""
    too_many = ("too_many_members", f"more than {cfg.max_members} members (archive.max_members)")
    if path.name.lower().endswith(".zip"):
        with path.open("rb") as fh:
            # The end record says how many entries the central directory holds; read it before
            # zipfile parses them all into memory. (zipfile has no public API for this record.)
            end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
        if end and end[zipfile._ECD_ENTRIES_TOTAL] > cfg.max_members:  # type: ignore[attr-defined]
            yield [], too_many
            return
        with zipfile.ZipFile(path) as zf:
            if len(zf.infolist()) > cfg.max_members:  # an end record that understated it
                yield [], too_many
                return
            members = []
            for info in zf.infolist():
                mode = info.external_attr >> 16
                unsafe = "symbolic link" if stat.S_ISLNK(mode) else None
                members.append(
                    _Member(
                        info.filename,
                        info.file_size,
                        info.compress_size,
                        info.is_dir(),
                        unsafe,
                        partial(zf.open, info),
                    )
                )
            yield members, None
        return
    member_cap = int(cfg.max_member_mb * _MB)
    total_cap = int(cfg.max_total_mb * _MB)
    deadline = time.monotonic() + timeout_s
    with tarfile.open(path) as tf:
        members: list[_Member] = []
        stopped: tuple[str, str] | None = None
        passed = 0  # declared bytes the listing has to read through to reach the next header
        while True:
            if len(members) > cfg.max_members:
                stopped = too_many
                break
            if time.monotonic() > deadline:
                detail = f"listing took more than {timeout_s:g} s (ingest.timeout_s); rest unread"
                stopped = ("timeout", detail)
                break
            ti = tf.next()
            if ti is None:
                break
            unsafe = None
            if ti.issym() or ti.islnk():
                unsafe = "link member"
            elif not (ti.isfile() or ti.isdir()):
                unsafe = "device, fifo or other special member"
            members.append(
                _Member(ti.name, ti.size, 0, ti.isdir(), unsafe, partial(_tar_open, tf, ti))
            )
            passed += ti.size
            if ti.size > member_cap or passed > total_cap:
                detail = (
                    f"member {ti.name} declares {ti.size} bytes (archive.max_member_mb / "
                    "max_total_mb); the members after it were not read"
                )
                stopped = ("too_large", detail)
                break
        yield members, stopped


def _tar_open(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> BinaryIO:
    stream = tf.extractfile(ti)
    if stream is None:
        msg = f"tar member {ti.name} has no data"
        raise tarfile.TarError(msg)
    return stream
