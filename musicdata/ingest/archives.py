"""Zip and tar archives: list and store their members, capped, in an isolated worker.

Archives come from strangers like the files in them (DESIGN rule 4). Members are read one by one
into the content store, never extracted under their own names: path escapes (`..`, absolute
names), links and devices are refused, sizes are counted while copying, so a bomb stops at its cap.
Listing is capped too (member count, declared sizes, time, tar extended-header size), and the whole
archive is read in an isolated worker process with a time limit (`archive.max_seconds`) and the
parser's memory limit (`ingest.memory_limit_mb`), so a trick the caps do not know costs that
archive (quarantined `timeout` / `memory` / `crashed`), never the run.
"""

from __future__ import annotations

import stat
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from musicdata.fsutil import TooLarge, WorkspaceWriteError
from musicdata.ingest.discover import (
    Candidate,
    Discovery,
    Rejected,
    _store,
    _unsafe_name,
    is_archive,
    is_audio_name,
    is_midi_name,
    raise_if_environment,
)
from musicdata.isolate import Failure, IsolatedPool
from musicdata.schemas.config import ArchiveConfig, Config
from musicdata.workspace import Workspace

_MB = 1024 * 1024
# tarfile reads a pax or GNU long-name header into memory whole; real ones are a few hundred bytes
# (an 835-byte .tar.bz2 declaring a 256 MB pax header took 300 MB and 26 s to open).
MAX_TAR_EXTENDED_HEADER = _MB
_EXTENDED = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


@dataclass(frozen=True)
class ArchiveJob:
    """What the worker needs (picklable): the workspace and the archive."""

    root: Path
    config: Config
    path: Path


def scan_archive(job: ArchiveJob) -> Discovery | str:
    """Worker: read one archive into the content store. Returns what it found, or the message of
    an environment fault (full disk), which the parent raises: that stops the run."""
    ws = Workspace(root=job.root, config=job.config)
    out = Discovery()
    try:
        read_archive(ws, job.path, out)
    except WorkspaceWriteError as exc:
        return str(exc)
    return out


def add_archive(ws: Workspace, path: Path, out: Discovery) -> None:
    """Read one archive in an isolated worker and merge what it found into `out`."""
    job = ArchiveJob(ws.root, ws.config, path)
    pool = IsolatedPool(
        scan_archive,
        workers=1,
        timeout_s=ws.config.archive.max_seconds,
        memory_limit_mb=ws.config.ingest.memory_limit_mb,
    )
    with pool:
        results: list[Any] = [res for _, res in pool.map_unordered([job])]
    res = results[0]
    if isinstance(res, Failure):
        detail = f"reading the archive in an isolated worker: {res.detail}"
        if res.reason == "timeout":
            detail += " (archive.max_seconds)"
        out.rejected.append(Rejected(str(path), res.reason, detail))
    elif isinstance(res, str):
        raise WorkspaceWriteError(res)
    else:
        out.candidates.extend(res.candidates)
        out.rejected.extend(res.rejected)
        out.ignored.extend(res.ignored)


class _CappedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extended headers before tarfile reads them whole."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_TAR_EXTENDED_HEADER:
            msg = f"extended header of {self.size} bytes (> {MAX_TAR_EXTENDED_HEADER})"
            raise tarfile.SubsequentHeaderError(msg)  # tarfile turns it into a ReadError
        return super()._proc_member(tarfile_)  # type: ignore[misc]


def read_archive(ws: Workspace, path: Path, out: Discovery) -> None:
    """List and store one archive's members into `out` (runs inside the isolated worker)."""
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
        raise_if_environment(ws, exc)
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
            raise_if_environment(ws, exc)
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
    with tarfile.open(path, tarinfo=_CappedTarInfo) as tf:
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
