"""The stage kit: what every stage (ingest, transcribe, tokenize, codec, train, evaluate, publish)
does the same way, written once.

A stage is: take the workspace run lock, start a run row, find what is pending under its config
hash, run the per-item work in isolated workers in batches (with a progress bar), turn each item's
`Outcome` into catalog rows through the one recorder, count everything in one `Summary`, finish the
run row (completed, or failed with the error). The drivers in this package are short because the
kit holds all of that.
"""

from __future__ import annotations

import errno
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from musicdata import __version__, progress
from musicdata.catalog import records
from musicdata.catalog.outcomes import Outcome, record_outcomes
from musicdata.fsutil import WorkspaceWriteError, is_environment_error, workspace_write_error
from musicdata.isolate import IsolatedPool
from musicdata.workspace import Workspace

T = TypeVar("T")

__all__ = [
    "FanOut",
    "Outcome",
    "Summary",
    "batched",
    "environment_failure",
    "in_order",
    "isolated_batch",
    "isolated_batches",
    "ordered_fan_out",
    "record_outcomes",
    "stage_run",
    "stop_on_environment_errors",
]


@dataclass
class Summary:
    """One summary type for every stage's `--json`: counters (ok, quarantined, skipped and the
    stage's own, e.g. tokenized or shards_written), quarantine reasons, and plain facts (encoding,
    shard_dir). Counters read as attributes: `summary.tokenized`."""

    stage: str
    run_id: str
    config_hash: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    info: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("counts", "reasons", "info"):
            raise AttributeError(name)
        if name in self.info:
            return self.info[name]
        return self.counts[name]

    def add(self, key: str, n: float = 1) -> None:
        self.counts[key] += n

    def count(self, outcomes: Sequence[Outcome], ok_as: str = "ok") -> None:
        """Count outcomes: ok ones under `ok_as`, quarantines by reason."""
        for o in outcomes:
            if o.status == "quarantined":
                self.counts["quarantined"] += 1
                self.reasons[o.reason or "unknown"] += 1
            else:
                self.counts[ok_as if o.status == "ok" else o.status] += 1

    def merge(self, other: Summary | dict[str, Any]) -> None:
        """Add another summary's counters and reasons (e.g. transcription inside ingest)."""
        d = other.to_dict() if isinstance(other, Summary) else other
        for key, value in d.items():
            if key == "reasons":
                self.reasons.update(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                self.counts[key] += value

    def to_dict(self) -> dict[str, Any]:
        counts = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.counts.items()}
        return {
            "stage": self.stage,
            "run_id": self.run_id,
            **({"config_hash": self.config_hash} if self.config_hash else {}),
            **self.info,
            **counts,
            "reasons": dict(sorted(self.reasons.items())),
        }

    def rows(self) -> list[dict[str, Any]]:
        """The summary as (what, value) rows: facts and counters, then one row per quarantine
        reason; what a tracked run publishes as its table artifact."""
        d = self.to_dict()
        out = [
            {"what": k, "value": v}
            for k, v in d.items()
            if k != "reasons" and not isinstance(v, dict | list)
        ]
        return out + [{"what": f"quarantined: {r}", "value": n} for r, n in d["reasons"].items()]

    def markdown(self, title: str) -> str:
        """The summary as a markdown table under `title` (the run's markdown artifact)."""
        lines = [f"### {title}", "", "| what | value |", "|---|---|"]
        for row in self.rows():
            cells = (str(row["what"]), str(row["value"]))
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


@contextmanager
def stage_run(
    ws: Workspace,
    stage: str,
    run_id: str,
    *,
    config_hash: str = "",
    keys: Sequence[str] = ("ok", "quarantined", "skipped"),
    info: dict[str, Any] | None = None,
    lock: bool = True,
) -> Iterator[Summary]:
    """Hold the workspace run lock, record the run's start and end around the body; the body
    fills the yielded Summary. An exception marks the run failed (with its message) and goes on."""
    summary = Summary(stage, run_id, config_hash, Counter(dict.fromkeys(keys, 0)), Counter(), {})
    summary.info.update(info or {})
    with ws.run_lock(stage) if lock else _nothing():
        with ws.catalog.write() as con:
            records.start_run(con, run_id, stage, __version__, ws.config.to_dict())
        try:
            yield summary
        except BaseException as exc:
            _finish_failed(ws, run_id, summary, exc)
            machine = isinstance(exc, Exception) and is_environment_error(exc, ws.root)
            if machine and not isinstance(exc, WorkspaceWriteError):  # one clear error
                raise workspace_write_error(exc, ws.root) from exc
            raise
        with ws.catalog.write() as con:
            records.finish_run(con, run_id, "completed", summary.to_dict())


def _finish_failed(ws: Workspace, run_id: str, summary: Summary, exc: BaseException) -> None:
    """Mark the run failed; on a full or read-only disk that write may fail too, and then the
    run stays `running` until the next run marks it interrupted (the original error wins)."""
    try:
        with ws.catalog.write() as con:
            records.finish_run(con, run_id, "failed", {**summary.to_dict(), "error": repr(exc)})
    except Exception as again:
        if not is_environment_error(again, ws.root):
            raise


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i : i + size]


class FanOut(Protocol):
    """How a driver runs its batch calls: `fan_out(fn, calls, name=...)` yields `fn(*args)` for
    each args tuple of `calls`, in the order of `calls`, however many run at once. The default
    (`in_order`) calls them one after another in this process; the Prefect flow passes one that
    submits each call as a task to a Dask cluster (musicdata.flows.runners). Workers only return
    records: the driver records them here, in this process, in call order, so the catalog and
    the shards are the same whichever fan-out ran them (DESIGN rule 1)."""

    def __call__(
        self, fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], *, name: str
    ) -> Iterator[T]: ...


def in_order(
    fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], *, name: str = ""
) -> Iterator[T]:
    """The default fan-out: one call after another, in this process."""
    for args in calls:
        yield fn(*args)


def ordered_fan_out(
    submit: Callable[[Callable[..., T], tuple[Any, ...], str], Any], window: int
) -> FanOut:
    """A fan-out over any `submit(fn, args, name) -> future` (a future has `.result()`: a
    concurrent.futures or Dask future, a Prefect future): keeps up to `window` calls in flight
    and yields their results in call order, so the caller records batch i while the workers run
    the next ones, and memory holds at most `window` batches of results."""
    window = max(1, window)

    def fan_out(
        fn: Callable[..., T], calls: Iterable[tuple[Any, ...]], *, name: str = ""
    ) -> Iterator[T]:
        pending: deque[Any] = deque()
        for args in calls:
            pending.append(submit(fn, args, name))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    return fan_out


def isolated_batch(
    fn: Callable[[Any], Any],
    cfg: Any,
    batch: Sequence[Any],
    step: Callable[[IsolatedPool, Sequence[Any]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """One batch through a pool of isolated workers of its own, on whichever machine runs it (a
    Dask worker): what a fan-out submits, since a pool of processes cannot travel."""
    with IsolatedPool.configured(fn, cfg) as pool:
        return step(pool, list(batch))


def isolated_batches(
    fn: Callable[[Any], Any],
    cfg: Any,
    jobs: Sequence[Any],
    *,
    label: str,
    batch_size: int,
    step: Callable[[IsolatedPool, Sequence[Any]], list[dict[str, Any]]],
    root: Path,
    fan_out: FanOut | None = None,
) -> Iterator[tuple[Sequence[Any], list[dict[str, Any]]]]:
    """Run `jobs` through isolated workers (sized and limited by the stage's config section), a
    batch at a time: yields (batch, records) in batch order. `step(pool, batch)` is the batch
    call (the Prefect flow swaps in a task-wrapped one). Without `fan_out`, one pool in this
    process runs every batch; with one, each batch runs as `isolated_batch` wherever the
    fan-out sends it. A failure is a quarantine record, unless it is the machine's (full disk,
    I/O error, workspace permissions under `root`): that stops the run with WorkspaceWriteError
    before anything of the batch is recorded."""
    batches = list(batched(jobs, batch_size))
    with progress.bar(label, len(jobs)) as advance:
        if fan_out is None:
            with IsolatedPool.configured(fn, cfg) as pool:
                results: Iterator[list[dict[str, Any]]] = (step(pool, b) for b in batches)
                yield from _checked(root, batches, results, advance)
        else:
            calls = ((fn, cfg, b, step) for b in batches)
            yield from _checked(root, batches, fan_out(isolated_batch, calls, name=label), advance)


def _checked(
    root: Path,
    batches: list[Sequence[Any]],
    results: Iterator[list[dict[str, Any]]],
    advance: Callable[[int], None],
) -> Iterator[tuple[Sequence[Any], list[dict[str, Any]]]]:
    for batch, out in zip(batches, results, strict=True):
        stop_on_environment_errors(root, out)
        yield batch, out
        advance(len(batch))


# How a worker's OSError reads once it is text ("OSError: [Errno 28] No space left on device:
# '/ws/objects/ab/..'"): the isolation layer and the parsers report failures as strings.
_ERRNO_TEXT = re.compile(r"\[Errno (?P<errno>\d+)\] (?P<text>[^:\n]*)(?:: '(?P<path>[^'\n]*)')?")


def environment_failure(detail: str, root: Path) -> OSError | None:
    """The machine's error (musicdata.fsutil.is_environment_error) a failure record's detail
    describes, or None when the input is to blame. Permission errors count only on a path
    inside the workspace `root` (an unreadable user file is that file's problem)."""
    m = _ERRNO_TEXT.search(detail)
    if m:
        code = int(m.group("errno"))
        cls = PermissionError if code in (errno.EACCES, errno.EPERM) else OSError
        exc = cls(code, m.group("text"), *([m.group("path")] if m.group("path") else []))
    else:
        exc = OSError(detail)  # pyarrow/DuckDB texts without an errno ("No space left ...")
    return exc if is_environment_error(exc, root) else None


def stop_on_environment_errors(root: Path, outcomes: Sequence[dict[str, Any]]) -> None:
    """Raise WorkspaceWriteError for the first failed record caused by the machine: every stage
    passes its workers' records through here, so a full disk never quarantines a good input."""
    for rec in outcomes:
        if rec.get("status") in ("ok", "no_notes", "skipped"):
            continue
        exc = environment_failure(str(rec.get("detail") or ""), root)
        if exc is not None:
            raise workspace_write_error(exc, root) from exc
