"""The fault hook itself (schemas/faults.py): its env format, several points, the trace, and the
torn temp file it leaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicdata.schemas import faults

SCRIPT = """
import sys
from musicdata.schemas.faults import fault
for point in sys.argv[2:]:
    fault(point, torn=sys.argv[1])
    print(point, flush=True)
"""


def _run(tmp_path: Path, env: dict[str, str], *points: str) -> subprocess.CompletedProcess[str]:
    torn = tmp_path / "half.tmp"
    torn.write_bytes(b"x" * 100)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(torn), *points],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_parse_takes_several_points_and_refuses_bad_counts() -> None:
    assert faults.parse("a.b:2, c") == {"a.b": 2, "c": 1}
    assert faults.parse("") == {}
    for bad in ("a:0", "a:x", "a:-1"):
        with pytest.raises(ValueError, match="MUSICDATA_FAULT"):
            faults.parse(bad)


def test_kills_at_the_nth_pass_of_any_named_point_and_tears_the_file(tmp_path: Path) -> None:
    p = _run(tmp_path, {"MUSICDATA_FAULT": "y:9,x:2"}, "x", "z", "x", "x")
    assert p.returncode == -9 and p.stdout.split() == ["x", "z"], (p.returncode, p.stdout)
    assert (tmp_path / "half.tmp").stat().st_size == 50  # the write the kill interrupted
    p = _run(tmp_path, {}, "x", "x")  # unset: nothing happens
    assert p.returncode == 0 and p.stdout.split() == ["x", "x"]


def test_trace_lists_every_point_passed(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    p = _run(tmp_path, {"MUSICDATA_FAULT_TRACE": str(trace)}, "a", "b", "a")
    assert p.returncode == 0, p.stderr
    assert trace.read_text().split() == ["a", "b", "a"]
