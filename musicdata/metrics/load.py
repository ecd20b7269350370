"""Load a folder of MIDI files as note arrays, parsing each file in an isolated worker.

Generated and reference sets come from outside the catalog, so they are untrusted input
(DESIGN rule 4): a file that does not parse, has no notes, crashes or hangs the parser is skipped
with a reason; it never stops the evaluation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicdata.metrics.features import Notes, notes_from_midi

MIDI_SUFFIXES = frozenset({".mid", ".midi", ".kar", ".smf", ".rmi"})


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str  # unparseable | no_notes | timeout | crashed | memory | error
    detail: str


@dataclass
class LoadedSet:
    """The usable pieces of one folder (sorted by path) and the files that were skipped."""

    folder: str
    paths: list[str] = field(default_factory=list)
    sha256s: list[str] = field(default_factory=list)
    notes: list[Notes] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def midi_files(folder: Path) -> list[Path]:
    """All MIDI files under a folder (recursive), sorted for a deterministic order."""
    if not folder.is_dir():
        msg = f"{folder} is not a folder; pass a folder of MIDI files"
        raise FileNotFoundError(msg)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def load_one(path: str) -> dict[str, Any]:
    """Worker: read, hash and parse one file into plain arrays (picklable, no catalog)."""
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        notes = notes_from_midi(data)
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        return {"path": path, "sha256": sha, "status": "unparseable", "detail": str(exc)[:300]}
    if len(notes) == 0:
        detail = "the file parses but holds no pitched notes (drum tracks are not counted)"
        return {"path": path, "sha256": sha, "status": "no_notes", "detail": detail}
    arrays = {k: getattr(notes, k) for k in ("onset", "offset", "pitch", "beats")}
    return {"path": path, "sha256": sha, "status": "ok", **arrays}


def load_folder(folder: Path, **pool: Any) -> LoadedSet:
    """Parse every MIDI file of `folder` in isolated workers; keep the good ones, list the rest."""
    return load_folders([folder], **pool)[0]


def load_folders(
    folders: list[Path], *, workers: int = 0, timeout_s: float = 30.0, memory_limit_mb: int = 2048
) -> list[LoadedSet]:
    """`load_folder` for several folders with one worker pool (its start-up is the fixed cost)."""
    from musicdata.isolate import Failure, IsolatedPool

    lists = [midi_files(Path(f)) for f in folders]
    files = [(k, p) for k, ps in enumerate(lists) for p in ps]
    outs = [LoadedSet(folder=str(f)) for f in folders]
    results: list[dict[str, Any] | None] = [None] * len(files)
    with IsolatedPool(
        load_one, workers=workers, timeout_s=timeout_s, memory_limit_mb=memory_limit_mb
    ) as pool:
        for i, res in pool.map_unordered([str(p) for _, p in files]):
            if isinstance(res, Failure):
                k, path = files[i]
                outs[k].skipped.append(Skipped(str(path), res.reason, res.detail))
            else:
                results[i] = res
    for (k, _), res in zip(files, results, strict=True):
        if res is None:
            continue
        out = outs[k]
        if res["status"] != "ok":
            out.skipped.append(Skipped(res["path"], res["status"], res["detail"]))
            continue
        out.paths.append(res["path"])
        out.sha256s.append(res["sha256"])
        out.notes.append(
            Notes(
                onset=np.asarray(res["onset"]),
                offset=np.asarray(res["offset"]),
                pitch=np.asarray(res["pitch"]),
                beats=np.asarray(res["beats"]),
            )
        )
    for out in outs:
        out.skipped.sort(key=lambda s: s.path)
    return outs
