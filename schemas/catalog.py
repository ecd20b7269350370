"""Catalog DDL: numbered migrations plus the analyst views, from the SQL files beside it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).parent
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """All migrations in version order; versions are contiguous from 1."""
    found = []
    for path in sorted((_HERE / "migrations").glob("*.sql")):
        m = _MIGRATION_RE.match(path.name)
        if not m:
            msg = f"{path}: migration files are named NNNN_name.sql"
            raise ValueError(msg)
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    versions = [m.version for m in found]
    assert versions == list(range(1, len(found) + 1)), (
        f"migration versions not contiguous: {versions}"
    )
    return found


def latest_version() -> int:
    return len(migrations())


def views_sql() -> str:
    return (_HERE / "views.sql").read_text()
