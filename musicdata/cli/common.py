"""Shared pieces of the `musicdata` CLI: the typer app, workspace/config options and output.

Every command takes `--json` to print exactly one machine-readable object on stdout at the end
(it always has `home`; durations are numbers of seconds); an error with `--json` is one object
`{"error", "detail", "hint", "home"}` and a non-zero exit. Logs and progress bars go to stderr;
library chatter goes to the log (`musicdata.logs`), shown with `--verbose`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from musicdata import logs
from musicdata.workspace import DEFAULT_HOME, HOME_ENV, Workspace


def _display_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """Help shows a value placeholder only for options that take a value (typer 0.29 prints
    `<bool>` beside every flag), in click's own style: PATH, INTEGER, TEXT, or the metavar."""
    if self.metavar is not None:
        return self.metavar
    if self.is_flag or self.count:
        return None
    label = self.display_type(ctx).strip("<>")  # typer's own: <int>, <path>, <a|b>
    if "|" in label:  # choices, as click shows them
        return f"[{label}]"
    name = _METAVARS.get(label, label.upper().replace(" ", "_"))
    return f"{name}..." if self.nargs != 1 else name


_METAVARS = {
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "FLOAT",
    "float range": "FLOAT",
    "str": "TEXT",
    "path": "PATH",
    "bool": "BOOLEAN",
}


typer.core.TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]
# an argument's name (INPUTS..., REF_DIR) already says what it takes
typer.core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


class _Group(typer.core.TyperGroup):
    """With --json, a usage error (a missing argument, an unknown option) is the same one JSON
    error object as every other error, not click's text alone."""

    def main(self, args: Any = None, *rest: Any, standalone_mode: bool = True, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not standalone_mode:
            return super().main(args, *rest, standalone_mode=standalone_mode, **kw)
        try:
            code = super().main(argv, *rest, standalone_mode=False, **kw)
        except TyperException as exc:  # typer's click: UsageError, NoSuchOption, BadParameter
            if not hasattr(exc, "format_message"):
                raise
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx else "musicdata"
            obj = {
                "error": "usage",
                "detail": exc.format_message(),
                "hint": f"see `{command} --help`",
                "home": str(home_path()),
            }
            sys.stdout.write(json.dumps(obj) + "\n")
            err.print(f"[red]error:[/red] {escape(exc.format_message())}")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            err.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    help="musicdata: ingest, tokenize and catalog music for generative-model research.\n\n"
    "Start with `musicdata demo`, or `musicdata ingest <your MIDI/audio folder>` then "
    "`musicdata tokenize --all`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
catalog_app = typer.Typer(
    help="Query and check the catalog (only `views` writes).\n\n"
    "sql, stats, lineage and verify never change your data (stats and lineage first bring an "
    "older catalog's schema up to date); views recreates the in-place views over the shards.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(catalog_app, name="catalog")

# Help panels, in pipeline order (the commands are registered in this order in cli/__init__).
PIPELINE, MODELS, ANALYSE, WORKSPACE = "Pipeline", "Models", "Analyse and share", "Workspace"

err = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    home: Path | None = None
    config: Path | None = None
    json: bool = False
    verbose: bool = False


state = _State()


def _json_flag(value: bool) -> bool:
    if value:
        state.json = True  # so fail() answers with one JSON object
    return value


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON object on stdout.", callback=_json_flag, is_eager=True
    ),
]


@app.callback()
def main(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            metavar="DIR",
            help=f"Workspace folder (default ${HOME_ENV} or ./{DEFAULT_HOME}).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", metavar="FILE", help="TOML config (default <home>/musicdata.toml)."
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Also show library logs and warnings on stderr."),
    ] = False,
) -> None:
    state.home, state.config, state.verbose, state.json = home, config, verbose, False
    logs.set_environment(verbose)
    logs.configure(verbose)


def home_path() -> Path:
    """The workspace folder the options name, resolved as Workspace.open does, without creating
    it."""
    raw = state.home or os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


def workspace(create: bool = False) -> Workspace:
    """The workspace. Only commands that bring data in (`ingest`, `demo`) may create one: every
    other command refuses a folder without a catalog, naming it (a mistyped --home must not
    quietly become an empty workspace)."""
    root = home_path()
    if root.exists() and not root.is_dir():
        fail(f"workspace {root} exists and is not a folder", hint="pass another --home")
    if not create and not (root / "catalog.duckdb").exists():
        where = "does not exist" if not root.exists() else "has no catalog.duckdb"
        source = (
            "--home" if state.home else f"${HOME_ENV}" if os.environ.get(HOME_ENV) else "default"
        )
        fail(
            f"{root} is not a musicdata workspace ({where}; from {source})",
            error="not_a_workspace",
            hint="check --home or $MUSICDATA_HOME, or create a workspace with "
            "`musicdata ingest <folder>` or `musicdata demo`",
        )
    try:
        return Workspace.open(root, state.config)
    except (OSError, ValueError) as exc:
        fail(str(exc), error="workspace", hint="check --home and --config")


def emit(summary: dict[str, Any], as_json: bool, *human: Any) -> None:
    """One JSON object on stdout with --json, else the human renderables (no wrapping, so the
    commands it shows stay copy-pasteable)."""
    if as_json:
        summary.setdefault("home", str(home_path()))
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


def fail(
    message: str,
    *,
    error: str = "invalid",
    hint: str | None = None,
    code: int = 2,
    extra: dict[str, Any] | None = None,
    as_json: bool = False,
) -> NoReturn:
    """Stop with one clear error: `error: ...` (and the hint) on stderr, and with --json also
    one object {"error", "detail", "hint", "home"} on stdout. Exit code 2 unless told."""
    if as_json or state.json:
        obj = {"error": error, "detail": message, "hint": hint, "home": str(home_path())}
        sys.stdout.write(json.dumps({**obj, **(extra or {})}, default=json_default) + "\n")
    err.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/dim] {escape(hint)}")
    raise typer.Exit(code)


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str | None:
    """'did you mean X?' for a mistyped name, or None when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


def config_arg(ws: Workspace) -> str | None:
    return str(state.config) if state.config else None


def fmt(value: Any) -> str:
    """A table cell: floats rounded for reading (1005.8499999999997 -> 1005.85); JSON output
    keeps full precision."""
    if isinstance(value, Decimal):
        value = json_default(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.3g}"
        return repr(round(value, 4))
    return str(value)


def table_text(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(fmt(v)) for v in row.values()))
    return table


def tracked() -> bool:
    """Run through Prefect flows (tracked by a server) only when one is configured; locally the
    commands call the stages directly and pay no Prefect start-up."""
    return bool(os.environ.get("PREFECT_API_URL"))
