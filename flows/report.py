"""Flow `report`: the analytics report as HTML plus the same tables as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from musicdata.report import build_report
from musicdata.report.artifacts import section_markdown
from musicdata.report.model import Section
from musicdata.workspace import Workspace


def publish_artifacts(sections: list[Section], index: Path) -> list[str]:
    """One markdown artifact per report section plus a link to the HTML page; returns the keys."""
    keys = []
    for sec in sections:
        key = f"report-{sec.key}"
        create_markdown_artifact(key=key, markdown=section_markdown(sec), description=sec.title)
        keys.append(key)
    create_link_artifact(
        key="report-html", link=index.resolve().as_uri(), link_text="musicdata report (HTML)"
    )
    keys.append("report-html")
    return keys


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
