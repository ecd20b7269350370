"""The workspace: one folder holding the catalog, the content-addressed inputs and all shards."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from musicdata.catalog import Catalog
from musicdata.schemas.config import CONFIG_FILE_NAME, Config, load_config

DEFAULT_HOME = "musicdata-home"
HOME_ENV = "MUSICDATA_HOME"
LOCK_FILE = "run.lock"


class WorkspaceBusy(RuntimeError):
    """Another process holds the workspace's run lock (a second pipeline on the same folder)."""


# Locks this process holds, by lock-file path: a stage called inside a command that already holds
# the lock nests instead of deadlocking on its own flock (flock is per open file, not per process).
_held: dict[str, tuple[int, int]] = {}  # path -> (fd, depth)
_held_guard = threading.Lock()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _holder_text(path: Path) -> str:
    """Who holds the lock, from the JSON the holder wrote into the lock file."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (holder unknown)"
    return f"pid {info.get('pid')} running `{info.get('stage')}` since {info.get('since')} UTC"


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Config

    @classmethod
    def open(cls, home: Path | str | None = None, config_path: Path | None = None) -> Workspace:
        """Resolve the workspace: --home, else $MUSICDATA_HOME, else ./musicdata-home."""
        root = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        if root.exists() and not root.is_dir():
            msg = f"workspace {root} exists and is not a folder; pass another --home"
            raise NotADirectoryError(msg)
        root.mkdir(parents=True, exist_ok=True)
        config = load_config(config_path or root / CONFIG_FILE_NAME)
        return cls(root=root, config=config)

    def __getstate__(self) -> dict[str, object]:
        """What a worker (a Dask task's argument) gets: the paths and the config, never the
        open catalog; workers do not write it (DESIGN rule 1)."""
        return {k: v for k, v in self.__dict__.items() if k != "catalog"}

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_path)

    @property
    def objects_dir(self) -> Path:
        """Every ingested input's bytes, by sha256, so later stages never depend on user paths."""
        return self.root / "objects"

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    @property
    def tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def blob_relpath(self, sha256: str) -> str:
        return f"objects/{sha256[:2]}/{sha256}"

    def abspath(self, relpath: str) -> Path:
        return self.root / relpath

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    @contextmanager
    def run_lock(
        self,
        stage: str,
        *,
        wait: bool = True,
        timeout_s: float | None = None,
        on_wait: Callable[[str], None] = _stderr,
    ) -> Iterator[None]:
        """Hold the workspace's one-writer lock for a pipeline run (ingest, tokenize, ...).

        Two runs on one workspace would number their shards alike and race on the catalog, so
        every writer command holds this for its whole run. A second run waits (saying once whom
        it waits for), or with `wait=False` raises WorkspaceBusy naming the holder. The lock is
        an flock: it dies with its process, so a killed run never leaves a stale lock. Re-entrant
        within one process. On first acquiring it, runs a killed process left `running` are
        marked `interrupted` (nothing else can be running while we hold it).
        """
        key = str(self.lock_path)
        with _held_guard:
            if key in _held:
                fd, depth = _held[key]
                _held[key] = (fd, depth + 1)
                nested = True
            else:
                nested = False
        if nested:
            try:
                yield
            finally:
                with _held_guard:
                    fd, depth = _held[key]
                    _held[key] = (fd, depth - 1)
            return
        fd = self._acquire(stage, wait=wait, timeout_s=timeout_s, on_wait=on_wait)
        with _held_guard:
            _held[key] = (fd, 1)
        try:
            self._mark_interrupted_runs()
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)
            os.ftruncate(fd, 0)  # no stale holder text for the next waiter to show
            os.close(fd)  # releases the flock

    def _acquire(
        self, stage: str, *, wait: bool, timeout_s: float | None, on_wait: Callable[[str], None]
    ) -> int:
        path = self.lock_path
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        told = False
        delay = 0.05
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _holder_text(path)
                    if not wait:
                        msg = (
                            f"workspace {self.root} is busy: {holder}; wait for it to finish, "
                            f"or run without --no-wait to wait (lock file {path})"
                        )
                        raise WorkspaceBusy(msg) from None
                    if deadline is not None and time.monotonic() >= deadline:
                        msg = (
                            f"workspace {self.root} stayed busy for {timeout_s:g} s: {holder} "
                            f"(lock file {path})"
                        )
                        raise WorkspaceBusy(msg) from None
                    if not told:
                        on_wait(f"waiting for {holder} to finish (use --no-wait to refuse instead)")
                        told = True
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
        except BaseException:
            os.close(fd)
            raise
        since = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        info = json.dumps({"pid": os.getpid(), "stage": stage, "since": since})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        return fd

    def _mark_interrupted_runs(self) -> None:
        if not self.catalog_path.exists():
            return
        from musicdata.catalog.records import mark_interrupted_runs

        with self.catalog.write() as con:
            mark_interrupted_runs(con)
