"""`musicdata catalog ...`: read-only queries over the DuckDB catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from musicdata.cli.common import JsonOpt, catalog_app, emit, fail, table_text, workspace


@catalog_app.command("sql")
def catalog_sql(
    query: Annotated[str, typer.Argument(help="SQL over the views (sources, pieces, ...).")],
    as_json: JsonOpt = False,
) -> None:
    """Run a read-only SQL query against the catalog (safe while a pipeline is writing)."""
    import duckdb

    from musicdata.catalog import CatalogError

    ws = workspace()
    try:
        rows = ws.catalog.query(query).to_pylist()
    except CatalogError as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        fail(f"query failed: {exc}")
    emit({"rows": rows, "count": len(rows)}, as_json, table_text(rows) if rows else "(no rows)")


@catalog_app.command("stats")
def catalog_stats(as_json: JsonOpt = False) -> None:
    """Counts per view, token statistics and quarantine reasons."""
    from musicdata.catalog import CatalogError, records

    ws = workspace()
    try:
        ws.catalog.migrate()  # an older catalog is brought up to date by this command
        with ws.catalog.read() as con:
            counts = records.table_counts(con)
        tokens = ws.catalog.query("SELECT * FROM token_stats ORDER BY encoding, split").to_pylist()
        reasons = ws.catalog.query(
            "SELECT stage, reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC"
        ).to_pylist()
    except CatalogError as exc:
        fail(str(exc))
    summary = {
        "home": str(ws.root),
        "counts": counts,
        "token_stats": tokens,
        "quarantine_reasons": reasons,
    }
    emit(
        summary,
        as_json,
        f"catalog {ws.catalog_path}",
        ", ".join(f"{k}: {v}" for k, v in counts.items()),
        *([table_text(tokens)] if tokens else []),
        *([table_text(reasons)] if reasons else []),
    )
