"""Which engine runs the flows' per-batch work: the flow process (default) or a Dask cluster.

The stage drivers take a `FanOut` (musicdata.stages.kit): a way to run their batch calls. This
module turns the `[orchestration]` config (or a Dask task runner the flow was started with) into
one that submits each batch as a Prefect task through `prefect-dask`'s `DaskTaskRunner`, keeps a
few batches in flight, and hands the results back in batch order. The flow process records them
(catalog rows, shard files) exactly as it does without Dask, so the catalog and the shards are
the same; Dask workers only parse, tokenize or transcribe and return records (DESIGN rule 1).

    [orchestration]
    task_runner = "dask"
    dask_address = "tcp://scheduler:8786"   # or leave it out: a local cluster of dask_workers
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.utilities.callables import get_call_parameters

from musicdata.schemas.config import OrchestrationConfig
from musicdata.stages.kit import FanOut, ordered_fan_out

__all__ = ["batch_steps", "dask_task_runner", "fan_out"]

T = TypeVar("T")


def dask_task_runner(cfg: OrchestrationConfig) -> Any:
    """The DaskTaskRunner `cfg` describes: the scheduler at `dask_address`, else a local cluster
    of `dask_workers` single-threaded workers (threads unless `dask_processes`)."""
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": max(1, cfg.dask_workers),
            "threads_per_worker": 1,
            "processes": cfg.dask_processes,
            "dashboard_address": None,  # no web port for a throwaway cluster
        }
    )


def fan_out(cfg: OrchestrationConfig) -> FanOut | None:
    """The fan-out for a flow's stage drivers: None (their default: batches one after another in
    this process) unless the flow was started with a DaskTaskRunner
    (`flow.with_options(task_runner=...)`), or `[orchestration] task_runner = "dask"`: then each
    batch loop connects to the cluster at `dask_address` (or starts a local one) for its batches
    and lets go when they are recorded."""
    ctx = FlowRunContext.get()
    current = ctx.task_runner if ctx else None
    if _is_dask(current):
        return _prefect_fan_out(lambda: nullcontext(current), cfg)
    if cfg.task_runner == "dask":
        return _prefect_fan_out(lambda: _started(cfg), cfg)
    return None


@contextmanager
def _started(cfg: OrchestrationConfig) -> Iterator[Any]:
    import dask

    # Isolated parsing forks worker processes from each Dask worker; a daemonic (default) Dask
    # worker process may not have children.
    no_daemon = dask.config.set({"distributed.worker.daemon": False})
    with no_daemon, dask_task_runner(cfg) as runner:
        yield runner


def _is_dask(runner: Any) -> bool:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        return False
    return isinstance(runner, DaskTaskRunner)


def _prefect_fan_out(open_runner: Callable[[], Any], cfg: OrchestrationConfig) -> FanOut:
    """Each call a Prefect task run on the runner's cluster (a Task as given, a function wrapped
    once as a task named after the batch label), `in_flight` at a time, results in call order."""
    tasks: dict[tuple[Callable[..., Any], str], Task[Any, Any]] = {}

    def as_task(fn: Callable[..., Any], name: str) -> Task[Any, Any]:
        if isinstance(fn, Task):
            return fn
        if (fn, name) not in tasks:
            tasks[fn, name] = task(fn, name=name or fn.__name__, cache_policy=NONE)
        return tasks[fn, name]

    def fan(
        fn: Callable[..., Any], calls: Iterable[tuple[Any, ...]], *, name: str = ""
    ) -> Iterator[Any]:
        calls = list(calls)
        if not calls:
            return
        t = as_task(fn, name)
        with open_runner() as runner:

            def submit(_fn: Callable[..., Any], args: tuple[Any, ...], _name: str) -> Any:
                return runner.submit(t, get_call_parameters(t.fn, args, {}))

            window = cfg.in_flight or 2 * max(1, _threads(runner, cfg))
            yield from ordered_fan_out(submit, window)(t, calls, name=name)

    return fan


def _threads(runner: Any, cfg: OrchestrationConfig) -> int:
    """Worker threads of the runner's cluster (connecting starts a local one)."""
    try:
        return sum(runner.client.nthreads().values())
    except (OSError, RuntimeError, ValueError):
        return cfg.dask_workers


def batch_steps(steps_cls: Callable[..., T], cfg: OrchestrationConfig, **task_steps: Any) -> T:
    """A stage's Steps for a flow: its task-wrapped batch steps called one after another, as
    without Dask, or, when fanning out, the library's own step functions run by the fan-out
    (each batch in an isolated pool on a Dask worker)."""
    fan = fan_out(cfg)
    return steps_cls(**task_steps) if fan is None else steps_cls(fan_out=fan)
