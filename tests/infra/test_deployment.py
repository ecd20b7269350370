"""The user's deployment workflow, end to end on loopback, with the real Prefect CLI.

A local Prefect server (SQLite under a temp PREFECT_HOME) -> `python infra/deploy.py` (work pool +
deployments) -> a process worker -> `prefect deployment run ingest-and-tokenize/nightly --watch`
over the MIDI fixtures -> the catalog holds what the pipeline promised. Then `prefect deploy
--prefect-file infra/prefect.yaml --all` must register the same deployments, and its two on-demand
ones must run too (as no-op reruns). Every subprocess gets a bounded timeout, and its process group
(and its flow-run processes' groups) is killed in `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "midi"
PREFECT = str(Path(sys.executable).with_name("prefect"))
BROKEN = {"empty.mid", "truncated.mid", "random_bytes.mid", "zero_notes.mid", "header_only.mid"}
N_OK = 7  # real pieces among the fixtures, chorale_near_dup.mid included
POOL = "cpu"  # infra/deploy.py's and infra/prefect.yaml's pool
HEALTH_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    with suppress(OSError):
        return path.read_text(errors="replace")[-n:]
    return ""


def _descendants(root: int) -> list[int]:
    """Every live descendant of `root` (Linux /proc); flow-run processes get their own session."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_tree(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process groups of `proc` and of its descendants, then SIGKILL what is left."""
    groups = {proc.pid}  # started with start_new_session: it leads its own group
    for pid in _descendants(proc.pid):
        with suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap, or a zombie leader keeps its group "alive"
            if not any(_alive_group(g) for g in groups):
                return
            time.sleep(0.2)


@contextmanager
def _background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            _kill_tree(proc)


def _run(args: list[str], env: dict[str, str], timeout_s: float) -> str:
    """Run to completion in its own process group; fail with the output on error or timeout."""
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_tree(proc, grace_s=5)
        out, _ = proc.communicate()
        pytest.fail(f"{args[:4]} timed out after {timeout_s} s:\n{out.decode(errors='replace')}")
    _kill_tree(proc, grace_s=5)  # anything it left behind in its group
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{args[:4]} exited {proc.returncode}:\n{text[-6000:]}"
    return text


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited {server.returncode}:\n{_tail(log)}")
        with suppress(urllib.error.URLError, OSError):
            _get(f"{url}/health", timeout_s=2)
            return
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {HEALTH_TIMEOUT_S} s:\n{_tail(log)}")


def _get(url: str, timeout_s: float = 10) -> Any:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
        return json.load(resp)


def _deployment(url: str, name: str) -> dict[str, Any]:
    return _get(f"{url}/deployments/name/{name}")


def _essentials(dep: dict[str, Any]) -> dict[str, Any]:
    keys = ("entrypoint", "work_pool_name", "parameters", "pull_steps", "tags")
    out = {k: dep[k] for k in keys}
    out["schedules"] = [(s["schedule"], s["active"]) for s in dep["schedules"]]
    return out


def _run_deployment(
    name: str, params: dict[str, Any], env: dict[str, str], worker_log: Path
) -> str:
    out = _run(
        [
            PREFECT,
            "deployment",
            "run",
            name,
            "--params",
            json.dumps(params),
            "--watch",
            "--watch-timeout",
            str(RUN_TIMEOUT_S),
        ],
        env,
        timeout_s=RUN_TIMEOUT_S + 30,
    )
    assert "Completed" in out, f"{out}\n--- worker log ---\n{_tail(worker_log)}"
    return out


def test_deploy_worker_run_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "workspace"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MUSICDATA_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
        "PWD": str(REPO),  # what a shell in the repo root exports; infra/prefect.yaml uses it
    }
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    started = time.monotonic()

    server_cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with _background(server_cmd, server_env, server_log) as server:
        _wait_healthy(api, server, server_log)
        healthy_s = time.monotonic() - started

        out = _run([sys.executable, "infra/deploy.py"], env, timeout_s=120)
        assert f"work pool '{POOL}': created" in out, out
        for name in ("ingest-and-tokenize/nightly", "ingest/on-demand", "tokenize/on-demand"):
            assert f"deployment {name} (" in out, out
        nightly = _deployment(api, "ingest-and-tokenize/nightly")
        assert nightly["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        assert [(s["schedule"]["cron"], s["active"]) for s in nightly["schedules"]] == [
            ("0 2 * * *", False)
        ]

        worker_cmd = [PREFECT, "worker", "start", "--pool", POOL, "--type", "process"]
        with _background(worker_cmd, env, worker_log):
            _run_deployment(
                "ingest-and-tokenize/nightly",
                {"paths": [str(FIXTURES)], "home": str(home)},
                env,
                worker_log,
            )
            first_run_s = time.monotonic() - started

            # prefect.yaml must describe the very deployments deploy.py registers, and run.
            before = {
                n: _essentials(_deployment(api, n))
                for n in ("ingest-and-tokenize/nightly", "ingest/on-demand", "tokenize/on-demand")
            }
            out = _run(
                [PREFECT, "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml", "--all"],
                env,
                timeout_s=120,
            )
            after = {n: _essentials(_deployment(api, n)) for n in before}
            assert after == before, out
            # Reruns through the yaml-registered on-demand deployments: nothing left to do.
            _run_deployment(
                "ingest/on-demand", {"paths": [str(FIXTURES)], "home": str(home)}, env, worker_log
            )
            _run_deployment("tokenize/on-demand", {"home": str(home)}, env, worker_log)

    print(
        f"\nserver healthy after {healthy_s:.1f} s, first run completed after {first_run_s:.1f} s,"
        f" total {time.monotonic() - started:.1f} s"
    )

    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        status = dict(
            con.execute("SELECT status, count(*) FROM sources GROUP BY status").fetchall()
        )
        assert status == {"ok": N_OK, "quarantined": len(BROKEN)}

        quarantined = con.execute("SELECT path, stage FROM quarantine").fetchall()
        assert {Path(p).name for p, _ in quarantined} == BROKEN
        assert {stage for _, stage in quarantined} == {"ingest"}
        assert len(quarantined) == len(BROKEN)  # the rerun quarantined nothing twice

        near = con.execute(
            "SELECT s.path FROM pieces p JOIN sources s USING (piece_id)"
            " WHERE p.near_duplicate_of IS NOT NULL"
        ).fetchall()
        assert [Path(p).name for (p,) in near] == ["chorale_near_dup.mid"]

        stats = con.execute(
            "SELECT sum(pieces), sum(tokens) FROM token_stats WHERE encoding = 'remi'"
        ).fetchone()
        assert stats is not None
        assert stats[0] == N_OK - 1  # the near duplicate is not tokenized twice
        assert stats[1] > 0

        shards = [Path(p) for (p,) in con.execute("SELECT path FROM shards").fetchall()]
        assert shards
        assert all((home / p).is_file() for p in shards)
        assert all(p.match("shards/remi/*/*/part-*.parquet") for p in shards)

        runs = con.execute("SELECT command, status FROM runs ORDER BY started_at").fetchall()
        assert [c for c, _ in runs] == ["ingest", "tokenize:remi", "ingest", "tokenize:remi"]
        assert {s for _, s in runs} == {"completed"}
    finally:
        con.close()
