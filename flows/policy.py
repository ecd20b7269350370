"""How the flows wrap stage steps as Prefect tasks: retries for transient failures only, and the
tags that concurrency limits key on.

A failure is retried (exponential backoff with jitter) only when waiting can fix it: another
process holding the DuckDB catalog (lock contention) or a passing I/O error (EIO, EAGAIN,
ETIMEDOUT, a stale NFS handle, a dropped connection to object storage). A bad input is never
retried: the stage quarantines it and the run goes on. A full or read-only disk is not retried
either: it needs a person (the stage says so with WorkspaceWriteError).

Tags: `gpu` on train/evaluate/generate (limit = GPUs on the host), `catalog-writer` on the short
steps that record a batch in the catalog (limit 1). `infra/deploy.py` creates both limits on the
server; without a limit on the server a tag limits nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

GPU = "gpu"
CATALOG_WRITER = "catalog-writer"
RETRIES = 3
BACKOFF_S = 2.0  # 2, 4, 8 s (+/- jitter): a held catalog lock is released within seconds

# Errors of a moment: the same call a few seconds later usually succeeds.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)
_LOCK_TEXT = ("Could not set lock", "Conflicting lock")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def is_transient(exc: BaseException) -> bool:
    """True when waiting can fix `exc`: catalog lock contention (musicdata.catalog.connection's
    CatalogError raised from DuckDB's lock conflict, or that conflict itself), a busy workspace,
    a timeout or dropped connection, or an OSError with a transient errno. False for everything
    else, above all for bad input (ValueError & co.) and for a full/read-only disk."""
    from musicdata.workspace import WorkspaceBusy

    for e in _chain(exc):
        if isinstance(e, WorkspaceBusy) or any(t in str(e) for t in _LOCK_TEXT):
            return True
        if isinstance(e, TimeoutError | ConnectionError | BlockingIOError | InterruptedError):
            return True
        if isinstance(e, OSError) and e.errno in TRANSIENT_ERRNOS:
            return True
    return False


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's retry_condition_fn: retry only transient failures (see `is_transient`)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)  # type: ignore[assignment]
        except Exception as err:  # noqa: BLE001 - a result that cannot be read: judge that error
            exc = err
    return isinstance(exc, BaseException) and is_transient(exc)


def stage_task(
    fn: Callable[..., Any],
    name: str,
    *,
    tags: tuple[str, ...] = (),
    retries: int = RETRIES,
) -> Task[..., Any]:
    """A library step as a Prefect task: no result caching (the catalog records what is done,
    DESIGN rule 2), transient failures retried with exponential backoff, tagged for limits."""
    return task(
        fn,
        name=name,
        cache_policy=NONE,
        tags=list(tags),
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=BACKOFF_S) if retries else 0,
        retry_jitter_factor=0.5 if retries else None,
        retry_condition_fn=retry_transient if retries else None,
    )
