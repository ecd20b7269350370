"""The demo workspace the README/docs examples run against, and the runner that runs them.

The workspace is built once per session the way a reader builds theirs: `musicdata demo` (real
public-domain scores, every symbolic encoding, a tiny NMT run) into a temp folder, so the examples
run against what the demo produces, not against numbers typed into the docs.

Each bash/python example runs in a fresh folder holding `musicdata-home` (MUSICDATA_HOME points
there too) and `my-music/` (the demo's MIDI files, for the "your own folder" examples). An example
that writes (see docs_blocks.WRITES_*) gets a private copy of the workspace; the others share it
through a link, one at a time, and fail if they changed it. The selected examples start as soon
as the workspace exists, JOBS at a time (they are single-threaded processes), and each test
waits for its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_blocks import RUN_LANGS, Block

BIN = Path(sys.executable).parent
# The first N demo works: enough for every split (the examples evaluate on `test`), few enough that
# the whole docs suite stays within ~3 minutes on 2 busy cores. `make demo` runs all of them.
DEMO_LIMIT = 20
DEMO_TIMEOUT_S = 600
# Set to a workspace that `musicdata demo --limit 20` built, to skip building one while editing
# the docs (it is only read; blocks that write get a copy).
REUSE_ENV = "MUSICDATA_DOCS_DEMO_HOME"
JOBS = int(os.environ.get("MUSICDATA_DOCS_JOBS", "2"))
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Demo:
    """The session's demo workspace (`home`, never written by a test) and a folder of the demo's
    MIDI files that the quickstart examples ingest as "your own" music (`music`)."""

    home: Path
    music: Path
    summary: dict


def example_env(home: Path, prefect_home: Path) -> dict[str, str]:
    """The environment every example runs in: the venv's `musicdata`/`python` first on PATH,
    MUSICDATA_HOME set, offline, local (no Prefect server: PREFECT_API_URL removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MUSICDATA_HOME=str(home),
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        COLUMNS="120",
        NO_COLOR="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    base = tmp_path_factory.mktemp("docs-demo")
    music = base / "my-music"
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        home = Path(reuse).resolve()
        if not (home / "catalog.duckdb").is_file():
            pytest.fail(f"{REUSE_ENV}={reuse} is not a demo workspace (no catalog.duckdb)", False)
        shutil.copytree(home / "demo-corpus", music)
        return Demo(home=home, music=music, summary={})
    home = base / "musicdata-home"
    cmd = [str(BIN / "musicdata"), "--home", str(home), "demo", "--json"]
    cmd += ["--limit", str(DEMO_LIMIT)] if DEMO_LIMIT else []
    out = subprocess.run(
        cmd,
        cwd=base,
        env=example_env(home, base / "prefect"),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(
            f"building the demo workspace failed (exit {out.returncode}): {' '.join(cmd)}\n"
            f"--- stdout\n{out.stdout[-4000:]}\n--- stderr\n{out.stderr[-4000:]}",
            pytrace=False,
        )
    shutil.copytree(home / "demo-corpus", music)
    return Demo(home=home, music=music, summary=json.loads(out.stdout))


@dataclass(frozen=True)
class Outcome:
    """How one example ended: `failure` says why it failed (None: it passed)."""

    failure: str | None
    output: str
    seconds: float = 0.0


# where -> seconds of every example run this session (printed by conftest's terminal summary)
TIMINGS: dict[str, float] = {}


def _fingerprint(home: Path) -> list[tuple[str, int, int]]:
    """What a read-only example must leave alone: every file's name, size and mtime."""
    return sorted(
        (str(p.relative_to(home)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in home.rglob("*")
        if p.is_file() and p.name != "run.lock"
    )


def private_workspace(source: Path, dest: Path) -> None:
    """A copy of the demo workspace whose in-place shard views point at the copy's shards."""
    from musicdata.catalog.shard_views import refresh_shard_views
    from musicdata.workspace import Workspace

    shutil.copytree(source, dest, symlinks=True)
    ws = Workspace.open(dest)
    with ws.catalog.write() as con:
        refresh_shard_views(con, ws.root)


def run_block(block: Block, demo: Demo, workdir: Path, shared_lock: threading.Lock) -> Outcome:
    """Run one bash or python example in its own folder next to (a copy of) the demo workspace."""
    t0 = time.perf_counter()
    outcome = _run_block(block, demo, workdir, shared_lock)
    TIMINGS[block.where] = time.perf_counter() - t0
    return outcome


def _run_block(block: Block, demo: Demo, workdir: Path, shared_lock: threading.Lock) -> Outcome:
    lang = RUN_LANGS[block.lang]
    cwd = workdir / "cwd"
    cwd.mkdir(parents=True)
    home = cwd / "musicdata-home"
    shutil.copytree(demo.music, cwd / "my-music")
    script = cwd / ("example.sh" if lang == "bash" else "example.py")
    script.write_text(block.code)
    cmd = (
        ["bash", "-e", "-o", "pipefail", str(script)]
        if lang == "bash"
        else [sys.executable, str(script)]
    )
    if block.writes:
        private_workspace(demo.home, home)
        return _run(cmd, cwd, example_env(home.resolve(), workdir / "prefect"))
    home.symlink_to(demo.home, target_is_directory=True)
    with shared_lock:  # one reader at a time, so a change to the shared workspace is this one's
        before = _fingerprint(demo.home)
        outcome = _run(cmd, cwd, example_env(demo.home, workdir / "prefect"))
        if outcome.failure is None and _fingerprint(demo.home) != before:
            what = (
                "changed the shared demo workspace although it looks read-only (add its "
                "command to WRITES_BASH / WRITES_PYTHON in tests/docs/docs_blocks.py)"
            )
            return Outcome(what, outcome.output)
        return outcome


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    try:
        out = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return Outcome(
            f"still running after {BLOCK_TIMEOUT_S} s", f"{exc.stdout or ''}{exc.stderr or ''}"
        )
    output = f"{out.stdout}\n--- stderr\n{out.stderr}"
    return Outcome(f"exited {out.returncode}" if out.returncode else None, output)


class Examples:
    """Runs the session's selected examples JOBS at a time; `outcome(block)` waits for one."""

    def __init__(self, demo: Demo, base: Path, blocks: list[Block]) -> None:
        self.demo, self.base = demo, base
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=max(1, JOBS), thread_name_prefix="docs-example")
        # writers first: they are the long ones (train, ingest, report)
        ordered = sorted(blocks, key=lambda b: not b.writes)
        self.futures: dict[str, Future[Outcome]] = {b.where: self._submit(b) for b in ordered}

    def _submit(self, block: Block) -> Future[Outcome]:
        workdir = self.base / block.where.replace("/", "_").replace(":", "_")
        return self.pool.submit(run_block, block, self.demo, workdir, self.lock)

    def outcome(self, block: Block) -> Outcome:
        future = self.futures.get(block.where) or self._submit(block)
        return future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def examples(
    request: pytest.FixtureRequest, demo: Demo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Examples]:
    """Start every selected, runnable example of this session at once (JOBS at a time)."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_example_runs" and hasattr(item, "callspec")
    ]
    runner = Examples(
        demo, tmp_path_factory.mktemp("docs-examples"), [b for b in selected if not b.not_run]
    )
    yield runner
    runner.close()
