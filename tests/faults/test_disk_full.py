"""Disk full mid-write (issue 18), on a real full filesystem: a small tmpfs when this machine lets
the test mount one (root), else a file-size limit (RLIMIT_FSIZE) on the child process. The run
stops with one clear error (exit 4) naming the file and the space left, leaves no partial or
temp file, keeps the catalog and shards as they were, and a run after freeing space ends
equal to a clean run. (The simulated ENOSPC cases are tests/musicdata/test_safety_*.py's.)"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicdata.catalog.verify import verify
from musicdata.fsutil import is_environment_error
from musicdata.workspace import Workspace
from tests.faults.conftest import ENCODINGS
from tests.faults.state import ROOT, catalog_rows, diff, runner, snapshot, temp_debris

FREE_BYTES = 1_500_000  # room for the catalog's transactions, not for every shard


def _mount(point: Path, size_mb: int) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(point)]
    try:
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 16 MB tmpfs, or None where mounting is not allowed."""
    point = tmp_path / "mnt"
    if os.environ.get("MUSICDATA_FAULT_NO_TMPFS") or not _mount(point, 16):
        yield None
        return
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _tokenize_cli(home: Path, **popen: object) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "musicdata.cli", "--home", str(home), "tokenize", "--json"]
    args += [f"--encoding={e}" for e in ENCODINGS]
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, **popen
    )


def _check_stopped_cleanly(
    home: Path, proc: subprocess.CompletedProcess[str], before: dict
) -> None:
    assert proc.returncode == 4, (proc.returncode, proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    message = out["message"]
    assert out["error"] == "environment" and "nothing was quarantined" in message, out
    assert f"{home}/" in message, f"the error names no file: {message}"
    assert "MB free there now" in message, message
    assert temp_debris(home) == [], "partial or temp files left"
    assert verify(Workspace.open(home)) == []  # every shard on disk is whole and recorded
    rows = catalog_rows(home / "catalog.duckdb")
    for table in ("pieces", "files", "quarantine", "sources"):
        if table in before:
            assert rows[table] == before[table], f"{table} changed: the earlier state was touched"


def test_full_tmpfs_stops_cleanly_and_a_later_run_finishes(
    small_disk: Path | None, ingested: Path, clean: Path
) -> None:
    if small_disk is None:
        pytest.skip("no tmpfs here (not root): test_file_size_limit_stops_a_shard_write_cleanly")
    home = small_disk / "home"
    shutil.copytree(ingested, home)
    before = catalog_rows(home / "catalog.duckdb")
    ballast = small_disk / "ballast"
    with ballast.open("wb") as fh:  # fill the disk up to FREE_BYTES
        fh.truncate(0)
        free = shutil.disk_usage(small_disk).free - FREE_BYTES
        fh.write(b"\0" * max(0, free))
    proc = _tokenize_cli(home)
    _check_stopped_cleanly(home, proc, before)
    ballast.unlink()
    done = runner("tokenize", str(home), ",".join(ENCODINGS))
    assert done.returncode == 0, done.stderr[-3000:]
    assert temp_debris(home / "shards") == []
    assert diff(snapshot(clean), snapshot(home)) == []


_LIMITED_WRITE = """
import json, resource, signal, sys
from pathlib import Path
import pyarrow as pa
from musicdata.fsutil import atomic_write
from musicdata.schemas.config import ShardConfig
from musicdata.store.table import write_parquet
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death by SIGXFSZ
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
import numpy as np
table = pa.table({"x": np.random.default_rng(0).integers(0, 2**62, 200_000)})  # ~1.6 MB
try:
    atomic_write(Path(sys.argv[1]), lambda tmp: write_parquet(table, tmp, ShardConfig()))
except OSError as exc:
    print(json.dumps({"errno": exc.errno, "text": str(exc)}))
"""


def test_file_size_limit_stops_a_shard_write_cleanly(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted: a child under RLIMIT_FSIZE writes a shard bigger than the
    limit over an existing one. The error names the file, no temp file is left, the old file is
    intact. (Not the whole CLI: DuckDB corrupts its file when a block overwrite fails half way,
    which only a limit below the catalog's size causes; see docs/faults.md.)"""
    final = tmp_path / "shards" / "part-w0-00000.parquet"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"the previous shard")
    p = subprocess.run(
        [sys.executable, "-c", _LIMITED_WRITE, str(final)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    err = json.loads(p.stdout.strip().splitlines()[-1])
    assert err["errno"] == errno.EFBIG and str(final) in err["text"], err
    assert is_environment_error(OSError(err["errno"], err["text"]))
    assert sorted(q.name for q in final.parent.iterdir()) == [final.name], "temp file left"
    assert final.read_bytes() == b"the previous shard"
