"""The hostile-input property, checked on a workspace after an ingest: every input ends exactly
once as ok or quarantined with a reason, and the good inputs mixed in are unaffected."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from musicdata.workspace import Workspace

# Piece columns an input decides by itself (not which other input it was deduplicated against).
INTRINSIC = ("sha256", "content_hash", "split", "n_notes", "n_tracks", "duration_s", "tempo_bpm")


def verdicts(ws: Workspace, paths: list[str]) -> dict[str, dict[str, Any]]:
    """path -> {status, reasons}; asserts each input has exactly one verdict and each
    quarantined one a non-empty reason."""
    rows = ws.catalog.query("SELECT path, status FROM sources").to_pylist()
    count = Counter(r["path"] for r in rows)
    dup = {p: n for p, n in count.items() if n > 1}
    assert not dup, f"inputs with more than one verdict: {list(dup.items())[:5]}"
    missing = sorted(set(paths) - set(count))
    assert not missing, f"{len(missing)} inputs without a verdict, e.g. {missing[:5]}"
    status = {r["path"]: r["status"] for r in rows}
    assert set(status.values()) <= {"ok", "quarantined"}, Counter(status.values())
    q = ws.catalog.query("SELECT path, reason FROM quarantine").to_pylist()
    reasons: dict[str, list[str]] = {}
    for r in q:
        reasons.setdefault(r["path"], []).append(r["reason"])
    out = {}
    for p in paths:
        rs = reasons.get(p, [])
        if status[p] == "quarantined":
            assert rs and all(rs), f"{p} is quarantined without a reason"
        out[p] = {"status": status[p], "reasons": rs}
    return out


def pieces_of(ws: Workspace, shas: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 -> the intrinsic columns of its piece row."""
    cols = ", ".join(INTRINSIC)
    rows = ws.catalog.query(
        f"SELECT {cols} FROM pieces WHERE sha256 IN (SELECT unnest(?::VARCHAR[]))", [shas]
    ).to_pylist()
    return {r["sha256"]: r for r in rows}


def report(label: str, n: int, seconds: float, tally: Counter[str]) -> None:
    """Print the wall time and the verdicts (shown with -s, and in the CI log)."""
    rate = n / seconds if seconds else 0.0
    print(
        f"\n[faults] {label}: {n} inputs in {seconds:.1f} s ({rate:.0f}/s); {dict(tally)}",
        file=sys.stderr,
    )


def write_all(folder: Path, files: dict[str, bytes]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [str((folder / name).resolve()) for name in files]
