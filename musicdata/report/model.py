"""What a report is made of: sections of text, tables and figures (rendered to HTML and to Prefect
artifacts from the same objects, so the two never disagree)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Rows = list[dict[str, Any]]
Query = Callable[..., Rows]  # (sql, params=None) -> rows as dicts


@dataclass
class Table:
    title: str
    rows: Rows
    note: str = ""
    max_rows: int = 60  # the HTML shows this many; the full table is in the CSV beside it
    # column -> display format ("percent": a fraction shown as 99.98%); the CSV keeps raw values
    formats: dict[str, str] = field(default_factory=dict)


@dataclass
class Figure:
    name: str  # file stem, e.g. "lengths"
    png: bytes
    caption: str


@dataclass
class Section:
    key: str  # anchor and artifact key: lowercase letters, digits, dashes
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.tables or self.figures)
