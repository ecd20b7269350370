"""`musicdata report`: an HTML page with plots and tables over the catalog and the shards."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from musicdata.cli.common import JsonOpt, app, emit, fail, workspace


@app.command()
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Output folder (default <home>/report)."),
    ] = None,
    token_names: Annotated[
        bool,
        typer.Option(
            "--token-names/--no-token-names",
            help="Name unused token ids from each encoding's vocabulary (loads the tokenizers).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write an HTML report of the workspace (open index.html).

    Length histograms, compression vs remi, vocabulary usage, quarantine reasons, audio hours,
    training curves and metrics."""
    from musicdata.catalog import CatalogError
    from musicdata.report import build_report

    ws = workspace()
    t0 = time.perf_counter()
    try:
        rep = build_report(ws, out, token_names=token_names)
    except CatalogError as exc:
        fail(str(exc))
    summary = {**rep.summary(), "home": str(ws.root), "seconds": round(time.perf_counter() - t0, 2)}
    figures = sum(s["figures"] for s in summary["sections"].values())
    emit(
        summary,
        as_json,
        f"report: {rep.index} ({len(rep.sections)} sections, {figures} figures) "
        f"in {summary['seconds']} s",
    )
