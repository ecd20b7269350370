"""Flow `report`: the analytics report as HTML, and the same content as Prefect artifacts.

The artifacts are the report as a remote UI sees it: one markdown artifact per section (its
tables, and its figures embedded as PNG `data:` images, so nothing points at a file on the
worker's disk), plus a link artifact to the HTML page only when `base_url` says where the report
folder is served over http(s) (a static server, an object-store bucket). A `file://` link is never
published: it would open nothing from another machine.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from musicdata.report import build_report
from musicdata.report.artifacts import section_markdown
from musicdata.report.model import Section
from musicdata.workspace import Workspace

MAX_IMAGE_BYTES = 400_000  # per figure; a larger PNG is left to the HTML page


def figure_markdown(sec: Section) -> str:
    """The section's figures as markdown images with the PNG inline (base64 `data:` URIs)."""
    parts = []
    for fig in sec.figures:
        if len(fig.png) > MAX_IMAGE_BYTES:
            parts.append(f"*{fig.caption}: {len(fig.png) // 1000} kB, see the HTML report*")
            continue
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(f"![{fig.caption}](data:image/png;base64,{data})\n\n*{fig.caption}*")
    return "\n\n".join(parts)


def publish_artifacts(sections: list[Section], base_url: str | None = None) -> list[str]:
    """One markdown artifact per report section (tables + inline figures), and a link to the
    HTML page when `base_url` serves the report folder; returns the artifact keys."""
    keys = []
    for sec in sections:
        key = f"report-{sec.key}"
        body = section_markdown(sec)
        figures = figure_markdown(sec)
        markdown = f"{body}\n{figures}\n" if figures else body
        create_markdown_artifact(key=key, markdown=markdown, description=sec.title)
        keys.append(key)
    if base_url:
        link = base_url.rstrip("/") + "/index.html"
        create_link_artifact(key="report-html", link=link, link_text="musicdata report (HTML)")
        keys.append("report-html")
    return keys


@flow(name="report")
def report_flow(
    home: str | None = None,
    out: str | None = None,
    config: str | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Write <out>/index.html (default <home>/report) and publish the report as artifacts;
    `base_url`: where <out> is served over http(s), for a link artifact to the page."""
    ws = Workspace.open(home, Path(config) if config else None)
    rep = build_report(ws, Path(out) if out else None)
    keys = publish_artifacts(rep.sections, base_url)
    get_run_logger().info("report: %s (artifacts %s)", rep.index, ", ".join(keys))
    return {**rep.summary(), "artifacts": keys}
