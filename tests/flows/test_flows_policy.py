"""Task retries: transient failures only (a real DuckDB lock conflict, passing I/O errors), never
bad input or a full disk; tags for the server's concurrency limits."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.states import Failed

from musicdata.catalog.connection import Catalog, CatalogError
from musicdata.flows import policy
from musicdata.flows.ingest_tokenize import _parse, _record
from musicdata.flows.train import _evaluate, _train
from musicdata.fsutil import workspace_write_error

HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(30)
"""


def real_lock_conflict(tmp_path: Path) -> CatalogError:
    """The CatalogError a writer gets while another process holds the catalog."""
    path = tmp_path / "catalog.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CatalogError) as info, Catalog(path, write_timeout_s=0.2).write():
            pass
        return info.value
    finally:
        holder.kill()
        holder.wait()


def test_catalog_lock_contention_is_transient(tmp_path: Path) -> None:
    exc = real_lock_conflict(tmp_path)
    assert "stayed locked" in str(exc)
    assert policy.is_transient(exc)
    assert policy.retry_transient(_record, None, Failed(data=exc))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.EIO, "Input/output error"), True),
        (OSError(errno.ESTALE, "Stale file handle"), True),
        (TimeoutError("read timed out"), True),
        (ConnectionResetError(errno.ECONNRESET, "reset"), True),
        (ValueError("nb-pf@abc has no train-split shards; ingest more pieces"), False),
        (KeyError("TimeSig_2/2"), False),
        (FileNotFoundError(errno.ENOENT, "No such file", "/in/x.mid"), False),
        (PermissionError(errno.EACCES, "Permission denied", "/in/x.mid"), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert policy.is_transient(exc) is transient
    assert policy.retry_transient(_parse, None, Failed(data=exc)) is transient  # type: ignore[arg-type]


def test_a_full_disk_is_not_retried(tmp_path: Path) -> None:
    full = workspace_write_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    try:
        raise full from OSError(errno.ENOSPC, "No space left on device")
    except Exception as exc:  # noqa: BLE001 - the chained error as a stage raises it
        assert not policy.is_transient(exc)


def test_tasks_carry_retries_backoff_and_tags() -> None:
    assert _parse.retries == policy.RETRIES
    assert _parse.retry_condition_fn is policy.retry_transient
    assert _parse.retry_delay_seconds == [2.0, 4.0, 8.0]  # exponential backoff
    assert policy.CATALOG_WRITER in _record.tags
    assert policy.GPU in _train.tags and policy.GPU in _evaluate.tags
    assert _train.retries == 0  # a failed training resumes from its checkpoint instead


def test_audio_tasks_follow_the_same_policy() -> None:
    from musicdata.flows import audio

    for t in (audio.parse_audio_task, audio.record_audio_task, audio._transcribe):
        assert t.retries == policy.RETRIES and t.retry_condition_fn is policy.retry_transient, t
    assert policy.CATALOG_WRITER in audio.record_audio_task.tags
