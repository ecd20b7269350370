"""Fault injection for the kill -9 tests: one hook, shared by the library and the models.

`MUSICDATA_FAULT=point:n[,point:n...]` kills this process with SIGKILL the n-th time it passes
`point` (n defaults to 1). Nothing happens when the variable is unset, so the hook costs one
environment lookup per call. It lives in schemas/ because both sides call it and models may
import nothing else of the library; the format is the contract.

The points (each a one-line `fault(...)` call where a crash hurts most):

    write.<suffix>          mid-write of an atomic file (musicdata.fsutil.atomic_write), the temp
                            file cut to half first: write.parquet = mid-shard, write.json = a
                            tokenizer.json / codec.json config save
    store.after_rename      a shard renamed into place, its catalog rows not yet committed
    catalog.in_transaction  a catalog write transaction has run its statements, before COMMIT
    train.after_step        after an optimizer step
    train.mid_checkpoint    mid-write of a checkpoint file (safetensors or JSON), cut to half
    train.after_checkpoint  after a checkpoint (and its catalog record on the caller's side)
    publish.mid_stage       a publish staging folder with some of its Parquet files written
    publish.swap            an old staging folder moved aside, the new one not yet in place

`MUSICDATA_FAULT_TRACE=<file>` appends one line per point passed, so a test can run once cleanly,
list where it could kill, and pick a point and count from a seed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

FAULT_ENV = "MUSICDATA_FAULT"
TRACE_ENV = "MUSICDATA_FAULT_TRACE"

_passed: dict[str, int] = {}  # point -> times passed in this process


def parse(spec: str) -> dict[str, int]:
    """'a:2,b' -> {'a': 2, 'b': 1}; a malformed count is an error naming the variable."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, nth = part.rpartition(":") if ":" in part else (part, "", "1")
        if not nth.isdigit() or int(nth) < 1:
            msg = f"{FAULT_ENV}={spec!r}: each entry is point:n with n >= 1 (got {part!r})"
            raise ValueError(msg)
        out[name] = int(nth)
    return out


def fault(point: str, *, torn: Path | str | None = None) -> None:
    """Pass `point`: SIGKILL this process if MUSICDATA_FAULT names it for this pass. `torn`: a
    file being written, cut to half its size first (a write the kill interrupted)."""
    spec = os.environ.get(FAULT_ENV)
    trace = os.environ.get(TRACE_ENV)
    if not spec and not trace:
        return
    _passed[point] = n = _passed.get(point, 0) + 1
    if trace:
        with Path(trace).open("a") as fh:
            fh.write(f"{point}\n")
    if spec and parse(spec).get(point) == n:
        if torn is not None and Path(torn).exists():
            os.truncate(torn, Path(torn).stat().st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
