"""Run one benchmark step in a fresh process and measure it: wall time and peak memory.

Peak memory is sampled from /proc every 50 ms as the resident set of the whole process tree (the
driver plus its isolated workers, summed), and the driver's own high-water mark (VmHWM) is read
at its end; on systems without /proc only wall time is reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")

LIBRARY_SCRIPT = """
import json, sys, time
from pathlib import Path
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.workspace import Workspace
if __name__ == "__main__":
    home, enc, steps, inputs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    ws = Workspace.open(home)
    out = {}
    if "ingest" in steps:
        t0 = time.perf_counter()
        out["ingest"] = ingest_paths(ws, [Path(p) for p in inputs], run_id="bench-ingest").to_dict()
        out["ingest_s"] = time.perf_counter() - t0
    if "tokenize" in steps:
        t0 = time.perf_counter()
        out["tokenize"] = tokenize_encoding(ws, enc, run_id="bench-tokenize").to_dict()
        out["tokenize_s"] = time.perf_counter() - t0
    print(json.dumps(out, default=str))
"""


@dataclass
class Measured:
    wall_s: float
    peak_tree_mb: float  # summed RSS of the process and its children, sampled
    peak_main_mb: float  # the driver process's own high-water mark
    cpu_s: float  # user + system seconds of the driver and its workers, sampled
    load: float  # the machine's 1-minute load average at the end (other users' work shows here)
    stdout: str


def _children(pid: int) -> list[int]:
    try:
        text = (PROC / str(pid) / "task" / str(pid) / "children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _cpu_ticks(pid: int) -> int:
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _tree(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(_children(p))
    return out


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run cmd to completion (check=True), sampling the tree's memory while it runs."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_tree, peak_main, done = [0], [0], threading.Event()
    ticks: dict[int, int] = {}

    def sample() -> None:
        while not done.is_set():
            pids = _tree(proc.pid)
            peak_tree[0] = max(peak_tree[0], sum(_rss_kb(p) for p in pids))
            peak_main[0] = max(peak_main[0], _rss_kb(proc.pid, "VmHWM"))
            for p in pids:
                ticks[p] = max(ticks.get(p, 0), _cpu_ticks(p))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-3000:]}"
        raise RuntimeError(msg)
    cpu_s = sum(ticks.values()) / os.sysconf("SC_CLK_TCK")
    return Measured(wall, peak_tree[0] / 1024, peak_main[0] / 1024, cpu_s, load_average(), out)


def library_cmd(work: Path, home: Path, encoding: str, steps: str, inputs: list[Path]) -> list[str]:
    """The library path as a user's script runs it: one fresh Python process, no CLI."""
    script = work / "library_call.py"
    script.write_text(LIBRARY_SCRIPT)
    return [sys.executable, str(script), str(home), encoding, steps, *map(str, inputs)]


def cli_cmd(home: Path, *args: str) -> list[str]:
    exe = Path(sys.executable).parent / "musicdata"
    return [str(exe), "--home", str(home), *args, "--json"]


def bench_env(**extra: str) -> dict[str, str]:
    """The environment every measured process gets: no telemetry, quiet Prefect."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env
