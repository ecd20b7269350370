"""The user's deployment workflow, end to end on loopback, with the real Prefect CLI.

A local Prefect server (SQLite under a temp PREFECT_HOME, a free port) -> `python infra/deploy.py`
(work pools `cpu` and `gpu`, tag concurrency limits, then `prefect deploy --all --prefect-file
infra/prefect.yaml`: deployments, paused schedules, automations) -> one worker per pool through
infra/worker.py -> `prefect deployment run ingest-and-train/nightly --watch` over the MIDI
fixtures with the debug preset -> Completed, the catalog holds the outputs and the lineage from
raw file to eval row, and the `report/on-evaluated` automation fired on the evaluate event (its
flow run completed). Then the server is stopped and each worker must exit within seconds of
SIGTERM. Every subprocess gets a bounded timeout and its process group (and its flow-run
processes' groups) is killed in `finally`.

Marked `e2e` (in the default suite). Measured 5.5-7 min on 2 cores at load average 13-18 (other
jobs running): server start 53-79 s, deploy 50-85 s, main job 157-177 s, report 50-58 s; most of
it is process start-up and imports (the server, deploy, worker and flow-run processes).
"""

from __future__ import annotations

import json
import os
import shutil
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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "midi"
PREFECT = str(Path(sys.executable).with_name("prefect"))
BROKEN = {"empty.mid", "truncated.mid", "random_bytes.mid", "zero_notes.mid", "header_only.mid"}
N_OK = 7  # real pieces among the fixtures, chorale_near_dup.mid included
HEALTH_TIMEOUT_S = 150
RUN_TIMEOUT_S = 360
WORKER_GRACE_S = 3.0
MAIN = "ingest-and-train/nightly"
REPORT = "report/on-evaluated"


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


def _post(url: str, body: dict[str, Any], timeout_s: float = 10) -> Any:
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    req = urllib.request.Request(  # noqa: S310
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
        return json.load(resp)


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


def _deployment(api: str, name: str) -> dict[str, Any]:
    return _get(f"{api}/deployments/name/{name}")


def _flow_runs(api: str, deployment_id: str) -> list[dict[str, Any]]:
    body = {"deployments": {"id": {"any_": [deployment_id]}}}
    return _post(f"{api}/flow_runs/filter", body)


def _wait_for_run(api: str, name: str, worker_logs: list[Path], timeout_s: float) -> dict:
    """The first flow run of deployment `name` once it is terminal (an automation starts it)."""
    dep = _deployment(api, name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = _flow_runs(api, dep["id"])
        done = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
        if done:
            return done[0]
        time.sleep(1)
    logs = "\n".join(_tail(p) for p in worker_logs)
    pytest.fail(f"no finished flow run of {name} after {timeout_s} s:\n{logs}")


def _stop_within(proc: subprocess.Popen, limit_s: float) -> float:
    """SIGTERM `proc` (a worker) and return how long it took to exit; fail past `limit_s`."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker PID {proc.pid} still running {limit_s} s after SIGTERM")
    return time.monotonic() - t0


def _check_catalog(home: Path) -> None:
    """Outputs of every stage, and lineage from the raw files down to the eval row."""
    from musicdata.catalog.lineage import walk

    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        status = dict(
            con.execute("SELECT status, count(*) FROM sources GROUP BY status").fetchall()
        )
        assert status == {"ok": N_OK, "quarantined": len(BROKEN)}
        quarantined = con.execute("SELECT path, stage FROM quarantine").fetchall()
        assert {Path(p).name for p, _ in quarantined} == BROKEN
        pieces, tokens = con.execute(
            "SELECT sum(pieces), sum(tokens) FROM token_stats WHERE encoding = 'nb-pf'"
        ).fetchone()
        assert pieces == N_OK - 1  # the near duplicate is not tokenized twice
        assert tokens > 0
        (train_run_id, status_) = con.execute(
            "SELECT train_run_id, status FROM train_runs"
        ).fetchone()
        assert status_ == "completed"
        evals = con.execute(
            "SELECT r.eval_id, r.value FROM eval_results r JOIN checkpoints c "
            "USING (checkpoint_id) WHERE c.train_run_id = ? AND r.metric = 'nll'",
            [train_run_id],
        ).fetchall()
        assert len(evals) == 1 and evals[0][1] > 0
        edges = walk(con, f"eval:{evals[0][0]}", "upstream")
        kinds = {e.src_id.split(":", 1)[0] for e in edges}
        assert {"checkpoint", "train_run", "shard", "piece", "file"} <= kinds, kinds
        runs = dict(con.execute("SELECT command, status FROM runs").fetchall())
        assert {"ingest", "tokenize:nb-pf", "train", "evaluate"} <= set(runs), runs
        assert set(runs.values()) == {"completed"}, runs
    finally:
        con.close()


def test_deploy_ingest_and_train_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home, inputs = tmp_path / "workspace", tmp_path / "incoming"
    shutil.copytree(FIXTURES, inputs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MUSICDATA_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # pick up runs (and automation runs) quickly
        "PWD": str(REPO),  # what a shell in the repo root exports; infra/prefect.yaml uses it
    }
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server_log = tmp_path / "server.log"
    worker_logs = [tmp_path / "worker-cpu.log", tmp_path / "worker-gpu.log"]
    started = time.monotonic()
    timings: dict[str, float] = {}

    server_cmd = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    with _background(server_cmd, server_env, server_log) as server:
        _wait_healthy(api, server, server_log)
        timings["server healthy"] = time.monotonic() - started

        # Workers first (they start while deploy.py runs; a worker creates its pool if it
        # comes first, as the process pool deploy.py would create).
        worker = [sys.executable, "infra/worker.py", "--grace", str(WORKER_GRACE_S), "--pool"]
        with (
            _background([*worker, "cpu", "--", "--type", "process"], env, worker_logs[0]) as cpu_w,
            _background([*worker, "gpu", "--", "--type", "process"], env, worker_logs[1]) as gpu_w,
        ):
            out = _run([sys.executable, "infra/deploy.py"], env, timeout_s=240)
            timings["deployed"] = time.monotonic() - started
            for pool in ("cpu", "gpu"):
                assert f"work pool '{pool}': " in out, out
                assert _get(f"{api}/work_pools/{pool}")["type"] == "process"
            assert _get(f"{api}/concurrency_limits/tag/gpu")["concurrency_limit"] >= 1
            limit = _get(f"{api}/concurrency_limits/tag/catalog-writer")["concurrency_limit"]
            assert limit == 1
            main = _deployment(api, MAIN)
            assert main["work_pool_name"] == "gpu"
            assert main["pull_steps"] == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
            ]
            assert [(s["schedule"]["cron"], s["active"]) for s in main["schedules"]] == [
                ("0 3 * * *", False)  # created paused
            ]
            automations = {a["name"] for a in _post(f"{api}/automations/filter", {})}
            assert {"on-tokenized__automation_1", "on-evaluated__automation_1"} <= automations

            params = {"paths": [str(inputs)], "home": str(home), "preset": "debug", "steps": 6}
            _run_deployment(MAIN, params, env, worker_logs[1])
            timings["main job completed"] = time.monotonic() - started

            # The evaluate event (not chained to a report in the main job) started the report.
            report = _wait_for_run(api, REPORT, worker_logs, timeout_s=RUN_TIMEOUT_S)
            timings["report (automation) completed"] = time.monotonic() - started
            assert report["state_type"] == "COMPLETED", f"{report}\n{_tail(worker_logs[0])}"
            assert report["parameters"]["home"] == str(home)
            # Each stage's summary and tables, and the report readable from a remote UI: its
            # figures inline as data: images, no file:// link.
            keys = ["ingest-summary", "tokenize-nb-pf-stats", "train-nmt-nb-pf-curve"]
            keys += ["evaluate-validation-metrics", "evaluate-test-metrics", "report-training"]
            body = {"artifacts": {"key": {"any_": keys}}}
            arts = {a["key"]: a for a in _post(f"{api}/artifacts/filter", body)}
            assert set(keys) - set(arts) <= {"evaluate-validation-metrics", "evaluate-test-metrics"}
            assert arts.keys() & {"evaluate-validation-metrics", "evaluate-test-metrics"}, arts
            assert "data:image/png;base64," in arts["report-training"]["data"]
            links = _post(f"{api}/artifacts/filter", {"artifacts": {"type": {"any_": ["link"]}}})
            assert not [a for a in links if "file://" in str(a["data"])], links

            # The issue saw a worker ignore SIGTERM for >15 s once the server was gone.
            _kill_tree(server)
            for w in (cpu_w, gpu_w):
                took = _stop_within(w, WORKER_GRACE_S + 4)
                timings[f"worker PID {w.pid} exited after SIGTERM"] = took

    print("\n" + "\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
    _check_catalog(home)
