"""The report's tables as markdown (one document per section): what the `report` flow publishes
as Prefect artifacts (flows/report.py); the library itself never imports Prefect."""

from __future__ import annotations

from musicdata.report.html import fmt_value
from musicdata.report.model import Section, Table

MAX_ROWS = 40


def _cell(value: object, fmt: str = "") -> str:
    return fmt_value(value, fmt).replace("|", "\\|").replace("\n", " ")


def table_markdown(t: Table) -> str:
    if not t.rows:
        return f"#### {t.title}\n\n(no rows)\n"
    cols = list(t.rows[0])
    lines = [f"#### {t.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in t.rows[:MAX_ROWS]:
        cells = (_cell(row.get(c), t.formats.get(c, "")) for c in cols)
        lines.append("| " + " | ".join(cells) + " |")
    if len(t.rows) > MAX_ROWS:
        lines.append(f"\n{MAX_ROWS} of {len(t.rows)} rows; the CSV is beside the HTML report.")
    if t.note:
        lines += ["", t.note]
    return "\n".join(lines) + "\n"


def section_markdown(sec: Section) -> str:
    parts = [f"### {sec.title}", "", *sec.text, ""]
    parts += [table_markdown(t) for t in sec.tables]
    return "\n".join(parts)
