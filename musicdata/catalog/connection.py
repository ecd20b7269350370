"""The one module that owns DuckDB connections: locking, retries, migrations.

DuckDB lets one process hold a database file read-write, and while it does no other process can
open it at all. So the pipeline opens the catalog only for short write transactions, readers open it
read-only for one query, and both sides retry on the lock for a bounded time (DESIGN rule 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.catalog import Migration, latest_version, migrations, views_sql

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The catalog cannot be opened or queried; the message says why and what to do."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Catalog:
    """A DuckDB catalog file. Thread-safe for one writer process; readers may be other processes."""

    def __init__(self, path: Path, *, lock_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._write_lock = threading.Lock()
        self._migrated = False

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        msg = (
                            f"catalog {self.path} stayed locked by another process for "
                            f"{self.lock_timeout_s:.0f} s; is a long query or a second pipeline "
                            "holding it?"
                        )
                        raise CatalogError(msg) from exc
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One short read-write transaction; committed on success, rolled back on error."""
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._connect(read_only=False)
            try:
                if not self._migrated:
                    self._migrate(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; retries while a writer holds the file."""
        if not self.path.exists():
            msg = f"no catalog at {self.path}; run `musicdata ingest` first (or check --home)"
            raise CatalogError(msg)
        con = self._connect(read_only=True)
        try:
            version = _current_version(con)
            if version < latest_version():
                msg = (
                    f"catalog {self.path} is at schema version {version}, this code expects "
                    f"{latest_version()}; run a write command once (e.g. `musicdata catalog "
                    "stats`) "
                    "once to migrate it"
                )
                raise CatalogError(msg)
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list | None = None) -> pa.Table:
        """Run one read-only query and return an Arrow table."""
        with self.read() as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    def migrate(self) -> int:
        """Bring the file to the latest schema version; returns that version."""
        with self.write():
            pass
        return latest_version()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        # Views are code, not data: recreate them once per process, after any pending migration.
        con.execute("BEGIN TRANSACTION")
        try:
            for m in migrate_to(con, latest_version()):
                log.info("catalog %s: applied migration %04d_%s", self.path, m.version, m.name)
            con.execute(views_sql())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._migrated = True


def _current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()
    if not exists[0][0]:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0])


def migrate_to(con: duckdb.DuckDBPyConnection, version: int) -> list[Migration]:
    """Apply pending migrations up to `version` (tests use it to build an older catalog)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    current = _current_version(con)
    applied = [m for m in migrations() if current < m.version <= version]
    for m in applied:
        con.execute(m.sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [m.version, m.name, now()])
    return applied
