"""`musicdata` command line: a thin layer over the library; pipeline commands run as Prefect flows.

Every command takes `--json` to print exactly one machine-readable summary object on stdout at the
end; logs and progress bars go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from musicdata import progress
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


def _workspace() -> Workspace:
    return Workspace.open(state.home, state.config)


def _emit(summary: dict[str, Any], as_json: bool, *human: Any) -> None:
    """One JSON object on stdout with --json, else the human renderables (no wrapping, so the
    commands it shows stay copy-pasteable)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=_json_default, sort_keys=True) + "\n")
        return
    out = Console(soft_wrap=True)
    for item in human:
        out.print(item)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _config_arg(ws: Workspace) -> str | None:
    return str(state.config) if state.config else None


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="MIDI files, folders (recursive), zip/tar.")],
    as_json: JsonOpt = False,
) -> None:
    """Ingest MIDI: hash, parse in isolation, validate, dedup, split; quarantine broken files."""
    from flows.ingest_tokenize import ingest_flow

    if not any(p.exists() for p in paths):  # fail before paying for Prefect's start-up
        _fail(f"none of the inputs exist: {', '.join(map(str, paths))}")
    progress.enable(not as_json)
    ws = _workspace()
    t0 = time.perf_counter()
    summary = ingest_flow([str(p) for p in paths], str(ws.root), _config_arg(ws))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["home"] = str(ws.root)
    _emit(summary, as_json, _ingest_text(summary))


def _ingest_text(s: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["reasons"].items())) or "none"
    return (
        f"ingest: [green]{s['ok']} ok[/green] ({s['near_duplicates']} near-duplicates), "
        f"[red]{s['quarantined']} quarantined[/red] ({reasons}), {s['duplicates']} exact "
        f"duplicates, {s['skipped']} skipped (already done), {s['ignored']} ignored "
        f"(not MIDI) in {s['seconds']} s"
    )


@app.command()
def tokenize(
    encoding: Annotated[
        list[str] | None, typer.Option("--encoding", "-e", help="Encoding name; repeatable.")
    ] = None,
    all_encodings: Annotated[
        bool, typer.Option("--all", help="Every registered encoding.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tokenize every ingested piece into Parquet shards (resumable; reruns do only new work)."""
    from musicdata.encodings import REGISTRY

    names = sorted(REGISTRY) if all_encodings else list(encoding or [])
    if not names:
        _fail("name an encoding with --encoding NAME (or --all); available: " + ", ".join(REGISTRY))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        _fail(f"unknown encoding(s) {unknown}; available: {', '.join(sorted(REGISTRY))}")
    from flows.ingest_tokenize import tokenize_flow

    progress.enable(not as_json)
    ws = _workspace()
    t0 = time.perf_counter()
    results = tokenize_flow(names, str(ws.root), _config_arg(ws))
    summary = {
        "encodings": results,
        "seconds": round(time.perf_counter() - t0, 2),
        "home": str(ws.root),
    }
    lines = [
        f"tokenize {r['encoding']}: {r['tokenized']} pieces -> {r['shards_written']} shards "
        f"({r['tokens']} tokens), {r['quarantined']} quarantined, {r['skipped']} skipped; "
        f"shards in {r['shard_dir']}"
        for r in results
    ]
    _emit(summary, as_json, *lines)


SPLIT_QUERY = "SELECT split, count(*) AS pieces FROM pieces GROUP BY split"
QUARANTINE_QUERY = "SELECT path, stage, reason FROM quarantine"
EXAMPLE_QUERY = (
    "SELECT encoding, split, pieces, tokens, vocab_size, round(mean_length) AS mean_len "
    "FROM token_stats ORDER BY encoding, split"
)


@app.command()
def demo(
    as_json: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(help="Use only the first N demo works.")] = None,
) -> None:
    """The main job on the embedded default: real public-domain scores -> ingest -> REMI shards."""
    from flows.ingest_tokenize import ingest_and_tokenize
    from musicdata.demo import build_demo_corpus

    progress.enable(not as_json)
    ws = _workspace()
    t0 = time.perf_counter()
    corpus = ws.root / "demo-corpus"
    if not as_json:
        err.print(f"building the demo corpus from music21's public-domain scores in {corpus} ...")
    files = build_demo_corpus(corpus, limit=limit)
    result = ingest_and_tokenize([str(corpus)], str(ws.root), ["remi"], _config_arg(ws))
    stats = ws.catalog.query(EXAMPLE_QUERY).to_pylist()
    summary = {
        "home": str(ws.root),
        "corpus": str(corpus),
        "files": len(files),
        "catalog": str(ws.catalog_path),
        **result,
        "token_stats": stats,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    shard_dirs = ", ".join(r["shard_dir"] for r in result["tokenize"])
    py_query = (
        f"import duckdb; print(duckdb.connect('{ws.catalog_path}', read_only=True)"
        f".sql('{SPLIT_QUERY}'))"
    )
    _emit(
        summary,
        as_json,
        _ingest_text({**result["ingest"], "seconds": summary["seconds"]}),
        f"catalog: {ws.catalog_path}\nshards:  {shard_dirs}\n\n{EXAMPLE_QUERY}",
        _table_text(stats),
        "Try:",
        f'  musicdata --home {ws.root} catalog sql "{EXAMPLE_QUERY}"',
        f'  musicdata --home {ws.root} catalog sql "{QUARANTINE_QUERY}"',
        f'  python -c "{py_query}"',
    )


def _table_text(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(
            *(str(_json_default(v)) if isinstance(v, Decimal) else str(v) for v in row.values())
        )
    return table


@catalog_app.command("sql")
def catalog_sql(
    query: Annotated[str, typer.Argument(help="SQL over the views (sources, pieces, ...).")],
    as_json: JsonOpt = False,
) -> None:
    """Run a read-only SQL query against the catalog (safe while a pipeline is writing)."""
    import duckdb

    from musicdata.catalog import CatalogError

    ws = _workspace()
    try:
        rows = ws.catalog.query(query).to_pylist()
    except CatalogError as exc:
        _fail(str(exc))
    except duckdb.Error as exc:
        _fail(f"query failed: {exc}")
    _emit({"rows": rows, "count": len(rows)}, as_json, _table_text(rows) if rows else "(no rows)")


@catalog_app.command("stats")
def catalog_stats(as_json: JsonOpt = False) -> None:
    """Counts per view, token statistics and quarantine reasons."""
    from musicdata.catalog import CatalogError, records

    ws = _workspace()
    try:
        ws.catalog.migrate()  # an older catalog is brought up to date by this command
        with ws.catalog.read() as con:
            counts = records.table_counts(con)
        tokens = ws.catalog.query("SELECT * FROM token_stats ORDER BY encoding, split").to_pylist()
        reasons = ws.catalog.query(
            "SELECT stage, reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC"
        ).to_pylist()
    except CatalogError as exc:
        _fail(str(exc))
    summary = {
        "home": str(ws.root),
        "counts": counts,
        "token_stats": tokens,
        "quarantine_reasons": reasons,
    }
    _emit(
        summary,
        as_json,
        f"catalog {ws.catalog_path}",
        ", ".join(f"{k}: {v}" for k, v in counts.items()),
        *([_table_text(tokens)] if tokens else []),
        *([_table_text(reasons)] if reasons else []),
    )


if __name__ == "__main__":
    app()
