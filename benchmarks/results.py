"""Benchmark figures as data: each script saves its headline rows here, `table.py` renders them.

`save(name, rows)` writes benchmarks/results/<name>.json (the figure, its target, pass/fail, the
command that produced it, the machine); the README's benchmark table is generated from these
files (`python benchmarks/table.py`), never typed.

A row is {"what", "figure", "target"} plus, where the script judged it, "pass" (true/false). A
row saved without "pass" is judged here from its text: the first bold number of the figure
(`**4.30x**`) against a target of the form `<= 1.2x` or `>= 42 files/s`; a target with no
comparison (`—`, `baseline`, a paper's figure to compare by eye) is information, not a test.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
_BOLD = re.compile(r"\*\*\s*(?:[a-z :]*?)?(-?[\d,]*\.?\d+|True|False)")
_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*(-?[\d,]*\.?\d+)")


def save(name: str, rows: list[dict[str, Any]], command: str | None = None) -> Path:
    """rows: {"what", "figure", "target"[, "pass"]}; the command line and machine are added.

    `command` overrides the recorded command (a driver that ran this script's work itself)."""
    RESULTS.mkdir(exist_ok=True)
    for row in rows:
        missing = {"what", "figure", "target"} - set(row)
        assert not missing, f"benchmark row {row} lacks {sorted(missing)}"
    doc = {
        "name": name,
        "command": command
        or "python " + " ".join(["benchmarks/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def merge(name: str, rows: list[dict[str, Any]], command: str) -> Path:
    """Save rows into results/<name>.json, replacing saved rows with the same "what" and keeping
    the others (several scripts add rows to one file, e.g. peak memory per stage)."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    new = {r["what"] for r in rows}
    return save(name, [r for r in old if r["what"] not in new] + rows, command=command)


def verdict(row: dict[str, Any]) -> bool | None:
    """True/False when the row has a checkable target, None when it is information only."""
    if "pass" in row:
        return None if row["pass"] is None else bool(row["pass"])
    target = str(row.get("target", ""))
    figure = str(row.get("figure", ""))
    got = _BOLD.search(figure)
    if got and target.strip().lower() == "held":
        return got.group(1) == "True"
    want = _TARGET.match(target)
    if not (got and want) or got.group(1) in ("True", "False"):
        return None
    value, bound = float(got.group(1).replace(",", "")), float(want.group(2).replace(",", ""))
    op = want.group(1)
    return {
        "<=": value <= bound,
        ">=": value >= bound,
        "<": value < bound,
        ">": value > bound,
    }[op]


def mark(ok: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "—"}[ok]


def load_all() -> list[dict[str, Any]]:
    """Every saved result document, by file name."""
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
