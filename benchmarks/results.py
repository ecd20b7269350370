"""Benchmark figures as data: each script saves its headline rows here, `table.py` renders them.

`save(name, rows)` writes benchmarks/results/<name>.json (the figure, the command that produced
it, the target, the machine); the README's benchmark table is generated from these files
(`python benchmarks/table.py`), never typed.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def save(name: str, rows: list[dict[str, str]]) -> Path:
    """rows: {"what", "figure", "target"}; the command line and machine are added here."""
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "name": name,
        "command": "python " + " ".join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
