"""The report's tables as Prefect markdown artifacts (one per section), for the Prefect UI.

Only called from inside a flow run; the library never needs Prefect otherwise.
"""

from __future__ import annotations

from pathlib import Path

from musicdata.report.html import fmt_value
from musicdata.report.model import Section, Table

MAX_ROWS = 40


def _cell(value: object) -> str:
    return fmt_value(value).replace("|", "\\|").replace("\n", " ")


def table_markdown(t: Table) -> str:
    if not t.rows:
        return f"#### {t.title}\n\n(no rows)\n"
    cols = list(t.rows[0])
    lines = [f"#### {t.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in t.rows[:MAX_ROWS]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in cols) + " |")
    if len(t.rows) > MAX_ROWS:
        lines.append(f"\n{MAX_ROWS} of {len(t.rows)} rows; the CSV is beside the HTML report.")
    return "\n".join(lines) + "\n"


def section_markdown(sec: Section) -> str:
    parts = [f"### {sec.title}", "", *sec.text, ""]
    parts += [table_markdown(t) for t in sec.tables]
    return "\n".join(parts)


def publish_artifacts(sections: list[Section], index: Path) -> list[str]:
    """Create one markdown artifact per section plus a link to the HTML page; returns the keys."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

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
