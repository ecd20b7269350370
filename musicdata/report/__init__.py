"""`musicdata report`: one HTML page (plots + tables) over the catalog and the shards in place.

`build_report(ws, out)` collects the sections with short read-only queries (a pipeline may be
writing meanwhile) and writes `out/index.html`; `flows/report.py` also publishes the same tables as
Prefect artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata import __version__
from musicdata.catalog.connection import now
from musicdata.catalog.shard_views import refresh_shard_views
from musicdata.report import sections, sections_ml, vocab
from musicdata.report.html import write_html
from musicdata.report.model import Section
from musicdata.workspace import Workspace

__all__ = ["Report", "build_report", "collect_sections"]


@dataclass(frozen=True)
class Report:
    index: Path
    sections: list[Section]

    def summary(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "sections": {
                s.key: {"tables": len(s.tables), "figures": len(s.figures)} for s in self.sections
            },
        }


def _query(ws: Workspace) -> Callable[..., Any]:
    """One short read-only connection per query, so writers wait at most one query's time."""

    def q(sql: str, params: list | None = None, *, arrow: bool = False) -> Any:
        table = ws.catalog.query(sql, params)
        return table if arrow else table.to_pylist()

    return q


def collect_sections(ws: Workspace, *, token_names: bool = True) -> list[Section]:
    """Refresh the shard views (one short write), then build every section read-only."""
    with ws.catalog.write() as con:  # also migrates a catalog written by an older version
        refresh_shard_views(con, ws.root)
    q = _query(ws)
    return [
        sections.corpus(q),
        sections.lengths(q),
        sections.compression(q),
        vocab.vocabulary(q, token_names=token_names),
        sections.quarantine(q),
        sections_ml.audio(q),
        sections_ml.training(q),
    ]


def build_report(ws: Workspace, out: Path | None = None, *, token_names: bool = True) -> Report:
    """Write the report to `out` (default <workspace>/report) and return where it is."""
    out = Path(out) if out else ws.root / "report"
    secs = collect_sections(ws, token_names=token_names)
    subtitle = (
        f"workspace {ws.root} · generated {now():%Y-%m-%d %H:%M} UTC · musicdata {__version__}"
    )
    index = write_html(secs, out, title="musicdata report", subtitle=subtitle)
    return Report(index, secs)
