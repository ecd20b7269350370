"""Prefect artifacts of a stage run: its Summary as markdown and as a table, plus the stage's own
tables (token stats per split, the training curve, evaluation metrics).

Rendering comes from the library (`Summary.markdown`, `Summary.rows`, catalog queries); this module
only hands it to Prefect. Keys are per stage (and encoding), so the UI's artifact page shows the
latest of each with its history.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from musicdata.stages.kit import Summary


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_summary(
    summary: Summary, title: str, *, key: str, tables: dict[str, list[dict[str, Any]]] | None = None
) -> list[str]:
    """Markdown + table artifact of the summary, and one table artifact per extra table;
    returns the keys."""
    key = artifact_key(key)
    create_markdown_artifact(key=key, markdown=summary.markdown(title), description=title)
    create_table_artifact(key=f"{key}-table", table=summary.rows(), description=title)
    keys = [key, f"{key}-table"]
    for name, rows in (tables or {}).items():
        if rows:
            k = artifact_key(key, name)
            create_table_artifact(key=k, table=_plain(rows), description=f"{title}: {name}")
            keys.append(k)
    return keys


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON-ready cells (DuckDB hands back Decimals and datetimes)."""
    return [{k: _cell(v) for k, v in r.items()} for r in rows]


def _cell(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v if isinstance(v, int | float | str | bool | None) else str(v)
