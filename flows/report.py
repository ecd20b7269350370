"""Flow `report`: the analytics report as HTML plus the same tables as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from musicdata.report import build_report
from musicdata.report.artifacts import publish_artifacts
from musicdata.workspace import Workspace


@flow(name="report")
def report_flow(
    home: str | None = None, out: str | None = None, config: str | None = None
) -> dict[str, Any]:
    """Write <out>/index.html and publish one markdown artifact per report section."""
    ws = Workspace.open(home, Path(config) if config else None)
    rep = build_report(ws, Path(out) if out else None)
    keys = publish_artifacts(rep.sections, rep.index)
    get_run_logger().info("report: %s (artifacts %s)", rep.index, ", ".join(keys))
    return {**rep.summary(), "artifacts": keys}
