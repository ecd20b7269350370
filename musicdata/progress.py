"""Progress bars for long work, shown by the CLI on a terminal and silent everywhere else.

Library code calls `progress.bar(...)`; the CLI turns bars on with `enable()`. Prefect runs tasks in
threads of the same process, so one module-level switch reaches them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_enabled = False


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on and sys.stderr.isatty()


@contextmanager
def bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield advance(n); draws a rich progress bar on stderr when enabled."""
    if not _enabled or total <= 0:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as prog:
        task_id = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task_id, n)
