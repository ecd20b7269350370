"""What a workspace holds, for the kill -9 tests: every file's sha256 and every catalog row, with
the columns that legitimately differ between two runs (run ids, times) left out. Two workspaces
that compare equal hold the same shards, the same rows, no duplicates and no orphans."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[2]
# Columns that differ between two correct runs of the same work.
VOLATILE = {
    "run_id",
    "created_at",
    "first_seen_at",
    "started_at",
    "finished_at",
    "staged_at",
    "uploaded_at",
    "applied_at",
    "summary_json",
    "out_dir",
}
SKIP_TABLES = {"runs", "schema_version"}  # one row per attempt: a killed run adds one
# Not part of the state: the lock file, and ingest's scratch folder.
SKIP_FILES = {"run.lock", "catalog.duckdb", "catalog.duckdb.wal", "musicdata.toml"}


def is_temp(name: str) -> bool:
    """Names of work in progress: `.<name>.<hex>.tmp`, `*.tmp.d`, `.x.tmp-<pid>`, `.x.old-<pid>`."""
    return name.startswith(".") or ".tmp" in name or ".old-" in name


def files(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `root` (the catalog and lock file aside)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in SKIP_FILES:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temp_debris(root: Path) -> list[str]:
    """Work-in-progress names (files or folders) left anywhere under `root`."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if is_temp(p.name))


def catalog_rows(catalog: Path) -> dict[str, Counter[tuple[Any, ...]]]:
    """table -> multiset of its rows (volatile columns left out): a duplicate counts twice."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall()
        out: dict[str, Counter[tuple[Any, ...]]] = {}
        for schema, table in tables:
            if table in SKIP_TABLES:
                continue
            cols = [r[0] for r in con.execute(f'DESCRIBE "{schema}"."{table}"').fetchall()]
            keep = ", ".join(f'"{c}"' for c in cols if c not in VOLATILE)
            rows = con.execute(f'SELECT {keep} FROM "{schema}"."{table}"').fetchall()
            out[table] = Counter(tuple(map(repr, r)) for r in rows)
        return out
    finally:
        con.close()


def snapshot(home: Path, *, under: str = "") -> dict[str, Any]:
    """Files under `home/under` and every catalog row of `home`."""
    return {
        "files": files(home / under if under else home),
        "rows": catalog_rows(home / "catalog.duckdb"),
    }


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty: equal)."""
    out = []
    fa, fb = a["files"], b["files"]
    for rel in sorted(set(fa) | set(fb)):
        if fa.get(rel) != fb.get(rel):
            out.append(
                f"file {rel}: {fa.get(rel, 'missing')[:12]} != {fb.get(rel, 'missing')[:12]}"
            )
    for table in sorted(set(a["rows"]) | set(b["rows"])):
        ra, rb = a["rows"].get(table, Counter()), b["rows"].get(table, Counter())
        if ra != rb:
            extra, missing = rb - ra, ra - rb
            out.append(
                f"table {table}: {sum(ra.values())} vs {sum(rb.values())} rows; "
                f"only in the second {list(extra)[:2]}, only in the first {list(missing)[:2]}"
            )
    return out


def run(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a command (a Python module or the CLI) from the repo root with extra environment."""
    full = {**os.environ, "OMP_NUM_THREADS": "1", "MUSICDATA_FAULT": "", **(env or {})}
    return subprocess.run(
        args, cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout, check=False
    )


def cli(
    *args: str, home: Path, fault: str = "", trace: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `musicdata` command on workspace `home`, optionally killed at `fault`."""
    env = {"MUSICDATA_HOME": str(home), "MUSICDATA_FAULT": fault}
    if trace is not None:
        env["MUSICDATA_FAULT_TRACE"] = str(trace)
    return run([sys.executable, "-m", "musicdata.cli", *args], env=env)


def runner(*args: str, fault: str = "") -> subprocess.CompletedProcess[str]:
    """tests/faults/runner.py (a stage through the library) in a subprocess, optionally killed."""
    return run([sys.executable, "-m", "tests.faults.runner", *args], env={"MUSICDATA_FAULT": fault})


def killed(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode == -signal.SIGKILL
