"""Session fixtures for the docs examples (the demo workspace, the example runner) and a summary
of the slowest examples, so a docs change that makes the suite slow shows who did it."""

from __future__ import annotations

import pytest
from docs_workspace import TIMINGS, demo, examples  # noqa: F401  (session fixtures)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    slowest = sorted(TIMINGS.items(), key=lambda kv: -kv[1])[:8]
    total = sum(TIMINGS.values())
    terminalreporter.write_sep("-", f"docs examples: {len(TIMINGS)} run, {total:.0f} s in all")
    for where, seconds in slowest:
        terminalreporter.write_line(f"{seconds:7.1f} s  {where}")
