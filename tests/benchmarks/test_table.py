"""The README's benchmark table is generated from benchmarks/results/*.json, never typed: a
result saved without regenerating the table (or a hand edit inside the block) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_benchmark_table_matches_saved_results() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, "run `python benchmarks/table.py` and commit README.md"
