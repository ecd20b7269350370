"""Run a function over untrusted inputs in worker processes with a timeout and a memory limit.

MIDI and audio come from strangers (DESIGN rule 4). A native crash, a hang or a memory blow-up in
one input must cost that input, not the run: the worker that died is replaced, the input gets a
`Failure` with the reason, and the rest carries on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# musicdata.encodings imports MidiTok without torch (musicdata/encodings/miditok_import.py)
PRELOAD = ("numpy", "symusic", "musicdata.encodings")


@dataclass(frozen=True)
class Failure:
    """Why the isolation layer (not the function) could not produce a result for an input."""

    reason: str  # timeout | memory | crashed | error
    detail: str


def _worker_main(conn: Connection, fn: Callable[[Any], Any], memory_limit_mb: int) -> None:
    from musicdata import logs

    logs.configure_worker()  # library warnings to the log, not into the user's progress bars
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        idx, item = msg
        try:
            out: tuple = ("ok", idx, fn(item))
        except MemoryError:
            out = ("err", idx, "memory", f"exceeded the {memory_limit_mb} MB worker memory limit")
        except Exception as exc:  # noqa: BLE001 - any error is this input's failure, not the pool's
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out = ("err", idx, "error", tb)
        conn.send(out)


@dataclass
class _Slot:
    proc: mp.process.BaseProcess
    conn: Connection
    job: int | None = None
    deadline: float = 0.0


class IsolatedPool:
    """A fixed set of worker processes; each input runs in one of them, one at a time."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        workers: int = 0,
        timeout_s: float = 30.0,
        memory_limit_mb: int = 2048,
    ) -> None:
        self.fn = fn
        # Cores this process may use (a CPU-limited container reports the host's count otherwise).
        self.workers = workers or len(os.sched_getaffinity(0)) or 1
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        # forkserver: workers start from a clean single-threaded process, never from a parent that
        # holds threads (Prefect, DuckDB, TensorFlow), which plain fork would copy mid-lock.
        self._ctx = mp.get_context("forkserver")
        # The fork server imports the tokenizer stack once; every worker forks from it with
        # those pages shared, instead of importing again.
        self._ctx.set_forkserver_preload(list(PRELOAD))
        self._slots: list[_Slot] = []

    @classmethod
    def configured(cls, fn: Callable[[Any], Any], cfg: Any) -> IsolatedPool:
        """A pool sized and limited by a stage's config section (`workers`, `timeout_s`,
        `memory_limit_mb`: [ingest], [audio], [transcribe], [codec], [tokenize])."""
        return cls(
            fn, workers=cfg.workers, timeout_s=cfg.timeout_s, memory_limit_mb=cfg.memory_limit_mb
        )

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self.fn, self.memory_limit_mb), daemon=True
        )
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def __enter__(self) -> IsolatedPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for slot in self._slots:
            with contextlib.suppress(BrokenPipeError, OSError):
                slot.conn.send(None)
        for slot in self._slots:
            slot.proc.join(timeout=2)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join()
            slot.conn.close()
        self._slots = []

    def _replace(self, i: int) -> None:
        old = self._slots[i]
        if old.proc.is_alive():
            old.proc.kill()
        old.proc.join()
        old.conn.close()
        self._slots[i] = self._spawn()

    def map_unordered(self, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield (index, result or Failure) for every item, in completion order."""
        if not self._slots:
            self._slots = [self._spawn() for _ in range(min(self.workers, max(len(items), 1)))]
        pending = iter(enumerate(items))
        remaining = len(items)

        def feed(slot: _Slot) -> None:
            nxt = next(pending, None)
            if nxt is None:
                slot.job = None
                return
            slot.job = nxt[0]
            slot.deadline = time.monotonic() + self.timeout_s
            slot.conn.send(nxt)

        for slot in self._slots:
            feed(slot)
        while remaining:
            busy = [s for s in self._slots if s.job is not None]
            timeout = max(0.0, min(s.deadline for s in busy) - time.monotonic())
            ready = wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout)
            for i, slot in enumerate(list(self._slots)):
                if slot.job is None:
                    continue
                job = slot.job
                result: Any = None
                if slot.conn in ready:
                    try:
                        msg = slot.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        result = msg[2] if msg[0] == "ok" else Failure(msg[2], msg[3])
                        feed(slot)
                if result is None and slot.proc.sentinel in ready and not slot.proc.is_alive():
                    code = slot.proc.exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                    result = Failure("crashed", f"the parser process died ({how})")
                    self._replace(i)
                    feed(self._slots[i])
                elif result is None and time.monotonic() >= slot.deadline:
                    result = Failure("timeout", f"no result within {self.timeout_s:g} s")
                    self._replace(i)
                    feed(self._slots[i])
                if result is not None:
                    remaining -= 1
                    yield job, result

    def map_records(
        self, items: Sequence[Any], ident: Callable[[int], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Run every item and return the workers' record dicts, a Failure turned into a
        quarantine record: `ident(i)` (the item's key fields) + status, reason, detail. Every
        stage that parses untrusted input reports failures the same way through this."""
        out = []
        for i, res in self.map_unordered(items):
            if isinstance(res, Failure):
                res = {
                    **ident(i),
                    "status": "quarantined",
                    "reason": res.reason,
                    "detail": res.detail,
                }
            out.append(res)
        return out
