"""Shared pieces of the `musicdata` CLI: the typer app, workspace/config options and output.

Every command takes `--json` to print exactly one machine-readable summary object on stdout at the
end; logs and progress bars go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from musicdata.workspace import HOME_ENV, Workspace

app = typer.Typer(
    help="musicdata: ingest, tokenize and catalog music for generative-model research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Query the DuckDB catalog (read-only).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON summary object on stdout.")]


class _State:
    home: Path | None = None
    config: Path | None = None


state = _State()


@app.callback()
def main(
    home: Annotated[
        Path | None,
        typer.Option("--home", help=f"Workspace folder (default ${HOME_ENV} or ./musicdata-home)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config (default <home>/musicdata.toml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect logs.")] = False,
) -> None:
    state.home, state.config = home, config
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def workspace() -> Workspace:
    return Workspace.open(state.home, state.config)


def emit(summary: dict[str, Any], as_json: bool, *human: Any) -> None:
    """One JSON object on stdout with --json, else the human renderables (no wrapping, so the
    commands it shows stay copy-pasteable)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=json_default, sort_keys=True) + "\n")
        return
    # piped output is not cut to 80 columns: tables stay whole in files and CI logs
    out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    for item in human:
        out.print(item)


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def config_arg(ws: Workspace) -> str | None:
    return str(state.config) if state.config else None


def table_text(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(
            *(str(json_default(v)) if isinstance(v, Decimal) else str(v) for v in row.values())
        )
    return table


def tracked() -> bool:
    """Run through Prefect flows (tracked by a server) only when one is configured; locally the
    commands call the stages directly and pay no Prefect start-up."""
    return bool(os.environ.get("PREFECT_API_URL"))
