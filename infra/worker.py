"""Start a Prefect worker that stops within a bounded time on SIGTERM (or SIGINT).

Why: `prefect worker start` turns SIGTERM into its own graceful SIGINT shutdown, and then, at
exit, Prefect's EventsWorker drains the events still queued (the worker's own `worker.stopped`
and friends) over the server's websocket, with 10 reconnection attempts 1 s apart
(prefect/events/clients.py). With the server already gone, as when a compose stack or a test
stops the server first, the worker lingers for 8-15 s after SIGTERM; a container runtime then
kills it anyway. This wrapper forwards the signal, waits `--grace` seconds for the worker to
exit on its own, then kills its process group. Flow runs the worker started live in their own
sessions and are not killed; a killed worker loses only its own queued events.

    python infra/worker.py --pool cpu                 # = prefect worker start --pool cpu
    python infra/worker.py --pool gpu --grace 10 -- --limit 1

Exit status: the worker's, or 128 + signal when it had to be killed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from types import FrameType

POLL_S = 0.1


def worker_command(pool: str, extra: list[str]) -> list[str]:
    prefect = Path(sys.executable).with_name("prefect")
    exe = str(prefect) if prefect.exists() else "prefect"
    return [exe, "worker", "start", "--pool", pool, *extra]


def run(cmd: list[str], grace_s: float) -> int:
    """Run `cmd` in its own process group; on SIGTERM/SIGINT forward SIGTERM, then SIGKILL the
    group after `grace_s`. Returns the exit status."""
    child = subprocess.Popen(cmd, start_new_session=True)
    stop_at: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop_at:
            stop_at.append(time.monotonic())
            print(f"worker.py: stopping worker PID {child.pid} ({grace_s:g} s grace)", flush=True)
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if stop_at and time.monotonic() - stop_at[0] > grace_s:
                print(f"worker.py: no exit after {grace_s:g} s, killing it", flush=True)
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return 128 + signal.SIGKILL


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", required=True, help="work pool to poll")
    p.add_argument("--grace", type=float, default=5.0, help="seconds to exit after SIGTERM")
    p.add_argument("extra", nargs="*", help="more `prefect worker start` options, after --")
    args = p.parse_args(argv)
    return run(worker_command(args.pool, args.extra), args.grace)


if __name__ == "__main__":
    sys.exit(main())
