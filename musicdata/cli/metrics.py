"""`musicdata metrics REF_DIR GEN_DIR`: set-level music metrics of a generated set against a
reference set (mgeval / PerceiverS suite), recorded in the catalog's eval_results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from musicdata.cli.common import JsonOpt, app, emit, err, fail, workspace


@app.command()
def metrics(
    ref_dir: Annotated[Path, typer.Argument(help="Folder of reference MIDI files (recursive).")],
    gen_dir: Annotated[Path, typer.Argument(help="Folder of generated MIDI files (recursive).")],
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Write the results into the catalog."),
    ] = True,
    segments: Annotated[
        int, typer.Option("--segments", min=1, help="Equal-duration segments for */seg.")
    ] = 64,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also save all density plots to this image.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare a generated set of MIDI files to a reference set (mgeval metrics).

    Per feature: intra-ref and inter-set distance densities, their KL divergence and overlap
    area. Files that fail to parse are skipped and listed. With --record (the default) the
    results go into the workspace's catalog."""
    from musicdata.catalog import CatalogError
    from musicdata.metrics import FeatureConfig
    from musicdata.stages.metrics import evaluate_folders, record_evaluation

    for d in (ref_dir, gen_dir):
        if not d.is_dir():
            fail(
                f"{d} is not a folder",
                error="usage",
                hint="pass two folders of MIDI files: REF_DIR GEN_DIR",
            )
    t0 = time.perf_counter()
    try:
        ev = evaluate_folders(ref_dir, gen_dir, feature_config=FeatureConfig(n_segments=segments))
    except ValueError as exc:
        fail(str(exc), error="metrics")
    summary = ev.summary()
    # durations are numbers: the total in `seconds`, the parts in `timings`
    summary["timings"] = summary.pop("seconds")
    summary["recorded"] = False
    summary["home"] = None  # no workspace used unless the results are recorded
    if record:
        ws = workspace(create=True)  # recording results is bringing data in
        try:
            summary["rows_new"] = record_evaluation(ws.catalog, ev)
        except CatalogError as exc:
            fail(str(exc), error="catalog")
        summary["recorded"] = True
        summary["home"] = str(ws.root)
    if plot is not None:
        from musicdata.metrics.plots import plot_evaluation

        details = [r | {"feature": k} for k, r in ev.results.items()]
        summary["plot"] = str(plot_evaluation(details, plot))
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    for s in summary["skipped"]:
        err.print(f"[yellow]skipped[/yellow] {s['path']}: {s['reason']} ({s['detail']})")
    emit(summary, as_json, _table(ev.results), _footer(summary))


def _fmt(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{mean:.4g} ± {std:.3g}"


def _table(results: dict[str, dict[str, Any]]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for col in ("feature", "intra-ref mean ± std", "inter mean ± std", "KLD", "OA"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for name, r in results.items():
        flag = " *" if r["degenerate"] else ""
        table.add_row(
            name + flag,
            _fmt(r["intra_ref_mean"], r["intra_ref_std"]),
            _fmt(r["inter_mean"], r["inter_std"]),
            f"{r['kld']:.4f}",
            f"{r['oa']:.4f}",
        )
    return table


def _footer(s: dict[str, Any]) -> str:
    lines = [
        f"eval {s['eval_id']}: {s['n_ref']} reference vs {s['n_gen']} generated pieces, "
        f"{len(s['skipped'])} file(s) skipped, {s['seconds']:.1f} s"
    ]
    degenerate = [f"{k}: {'; '.join(v['degenerate'])}" for k, v in s["features"].items()]
    lines += [f"* {d}" for d in degenerate if not d.endswith(": ")]
    if s["recorded"]:
        # a hint printed for the user, never executed here
        hint = f"SELECT metric, value FROM eval_results WHERE eval_id = '{s['eval_id']}'"  # noqa: S608
        lines.append(
            f"recorded {s['rows_new']} new row(s) in {s['home']} "
            f'(query: musicdata catalog sql "{hint}")'
        )
    if s.get("plot"):
        lines.append(f"plot: {s['plot']}")
    return "\n".join(lines)
