"""The one module that owns DuckDB connections: locking, retries, migrations.

DuckDB lets one process hold a database file read-write, and while it does no other process can
open it at all. So the pipeline opens the catalog only for short write transactions, readers open it
read-only for one query, and both sides retry on the lock (DESIGN rule 1). A writer waits long (an
hour by default) and says once whom it waits for: an analyst's open connection must delay the
pipeline, never make it throw away finished work.

Analyst SQL (`musicdata catalog sql`) runs through `analyst_query`: one statement, SELECT only
(checked with DuckDB's own parser), on a read-only connection whose file access is then limited
to the workspace's shards (`allowed_directories`, `enable_external_access = false`) and whose
settings are locked (`lock_configuration`), so no statement can write a file, change a setting or
read outside the shards.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from musicdata.schemas.catalog import Migration, latest_version, migrations, views_sql
from musicdata.schemas.faults import fault

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """The catalog cannot be opened or queried; the message says why and what to do."""


class QueryRefused(CatalogError):
    """An analyst statement that is not one SELECT (a write, ATTACH, COPY, SET, ...)."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


_HOLDER_RE = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")


def lock_holder(exc: Exception) -> str:
    """Who holds the catalog, from DuckDB's lock error: 'PID 123 (/usr/bin/python3)'."""
    m = _HOLDER_RE.search(str(exc))
    return f"PID {m.group(2)} ({m.group(1)})" if m else "another process"


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Catalog:
    """A DuckDB catalog file. Thread-safe for one writer process; readers may be other processes."""

    def __init__(
        self, path: Path, *, lock_timeout_s: float = 60.0, write_timeout_s: float = 3600.0
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s  # readers
        self.write_timeout_s = write_timeout_s  # writers: finished work waits, it is not dropped
        self._write_lock = threading.Lock()
        self._migrated = False

    def _connect(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        timeout = self.lock_timeout_s if read_only else self.write_timeout_s
        start = time.monotonic()
        delay = 0.02
        told = False
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc):
                    raise
                waited = time.monotonic() - start
                if waited >= timeout:
                    msg = (
                        f"catalog {self.path} stayed locked by {lock_holder(exc)} for "
                        f"{timeout:.0f} s; close that connection (a long query, a notebook, a "
                        "second pipeline) and run the command again"
                    )
                    raise CatalogError(msg) from exc
                if not read_only and not told and waited >= 2.0:
                    log.warning(
                        "catalog %s is held by %s; waiting for it to close the connection "
                        "(up to %.0f s)",
                        self.path,
                        lock_holder(exc),
                        timeout,
                    )
                    told = True
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
                    fault("catalog.in_transaction")  # statements run, not committed
                except BaseException:
                    _rollback(con)
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

    def analyst_query(
        self, sql: str, readable: list[Path], *, relative_to: Path | None = None
    ) -> pa.Table:
        """Run an untrusted analyst's statement: SELECT only, files readable only under
        `readable` (the workspace's shards), settings locked. Raises QueryRefused (a
        CatalogError) on refusal, duckdb.PermissionException for a file outside `readable`.

        `relative_to` (the workspace root, for the CLI): relative paths in the query resolve
        against it, so `read_parquet('shards/...')` works from any folder. It changes the
        process's working directory for the query, so only a single-threaded caller passes it."""
        statement = read_only_statement(sql)
        base = Path(relative_to).resolve() if relative_to is not None else None
        rel = [Path(d).resolve().relative_to(base) for d in readable] if base else []
        here = contextlib.chdir(base) if base else contextlib.nullcontext()
        with self.read() as con, here:
            restrict(con, [*readable, *rel])
            return con.sql(statement).to_arrow_table()

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
            _rollback(con)
            raise
        self._migrated = True


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after an error, keeping that error: DuckDB has already aborted a transaction
    whose write failed (a full disk), and a second error here would hide the first."""
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException as exc:
        log.debug("rollback after an error: %s", exc)


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


_EXPLAIN_RE = re.compile(r"^\s*EXPLAIN\s+(?:ANALYZE\s+)?(.*)$", re.IGNORECASE | re.DOTALL)


def read_only_statement(sql: str) -> str:
    """The one SELECT (or EXPLAIN [ANALYZE] SELECT) statement in `sql`, else CatalogError.

    DuckDB's parser decides the statement type, so comments, case and string quoting cannot
    smuggle a COPY, EXPORT, ATTACH, INSTALL/LOAD, PRAGMA, SET, CALL or DDL/DML past it."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        msg = f"query failed: {exc}"
        raise QueryRefused(msg) from exc
    if len(statements) != 1:
        msg = f"send exactly one statement (got {len(statements)})"
        raise QueryRefused(msg)
    stmt = statements[0]
    kind = stmt.type
    if kind == duckdb.StatementType.EXPLAIN:
        m = _EXPLAIN_RE.match(stmt.query)
        inner = duckdb.extract_statements(m.group(1)) if m else []
        kind = inner[0].type if len(inner) == 1 else kind
    if kind != duckdb.StatementType.SELECT:
        name = str(stmt.type).rsplit(".", 1)[-1]
        msg = (
            f"catalog sql is read-only: {name} statements are refused; send one SELECT "
            "(WITH, FROM, DESCRIBE, SUMMARIZE and SHOW are SELECTs too)"
        )
        raise QueryRefused(msg)
    return stmt.query


def sql_str(value: str) -> str:
    """A SQL string literal, for the few places that cannot take parameters (view bodies,
    SET lists); every other value goes in as a parameter."""
    return "'" + value.replace("'", "''") + "'"


def restrict(con: duckdb.DuckDBPyConnection, readable: list[Path]) -> None:
    """Limit this (read-only) connection's file access to `readable` folders and lock its
    settings, after the catalog itself is open. Views over the shards keep working."""
    # absolute folders as given; relative ones (see analyst_query) as written, and DuckDB
    # refuses a path whose `..` climbs out of them
    dirs = ", ".join(
        sql_str(str(Path(d).resolve() if Path(d).is_absolute() else Path(d)).rstrip("/") + "/")
        for d in readable
    )
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
