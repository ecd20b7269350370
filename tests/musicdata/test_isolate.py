"""The isolation layer turns hangs, native crashes and memory blow-ups into per-input failures."""

from __future__ import annotations

import ctypes
import os
import signal
import time

from musicdata.isolate import Failure, IsolatedPool


def _work(item: str) -> str:
    if item == "hang":
        time.sleep(60)
    if item == "segfault":
        ctypes.string_at(0)  # a real native crash (SIGSEGV), as a broken C parser would do
    if item == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if item == "oom":
        _ = bytearray(4 * 1024**3)  # over the address-space limit
    if item == "raise":
        raise ValueError("bad input")
    return item.upper()


def test_failures_are_isolated_and_the_rest_completes() -> None:
    items = ["a", "hang", "b", "segfault", "c", "kill", "oom", "raise", "d"]
    with IsolatedPool(_work, workers=2, timeout_s=3, memory_limit_mb=512) as pool:
        results = dict(pool.map_unordered(items))
    assert len(results) == len(items)
    by_item = {items[i]: r for i, r in results.items()}
    assert [by_item[k] for k in "abcd"] == ["A", "B", "C", "D"]
    assert by_item["hang"] == Failure("timeout", "no result within 3 s")
    assert isinstance(by_item["segfault"], Failure) and by_item["segfault"].reason == "crashed"
    assert "signal 11" in by_item["segfault"].detail
    assert by_item["kill"].reason == "crashed" and "signal 9" in by_item["kill"].detail
    assert by_item["oom"].reason == "memory"
    assert by_item["raise"].reason == "error" and "ValueError: bad input" in by_item["raise"].detail


def test_pool_is_reusable_across_batches() -> None:
    with IsolatedPool(_work, workers=2, timeout_s=5, memory_limit_mb=512) as pool:
        first = sorted(r for _, r in pool.map_unordered(["x", "y"]))
        second = sorted(r for _, r in pool.map_unordered(["z"]))
    assert first == ["X", "Y"] and second == ["Z"]
