"""Plots of the set comparison, drawn from the catalog alone (the `<feature>.oa` detail_json).

`plot_metric(detail, ax)` draws the intra-reference and inter-set distance densities of one
feature on their common grid and shades their overlap (the OA). `evaluation_figure` lays all
features out in the suite's order (mgeval / PerceiverS: PC, NC, PCH, PCTM, PR, PI, IOI, NLH, NLTM,
then the per-segment ones) with one legend above the grid, so no legend covers a peak;
`plot_evaluation` saves that figure. Distances are never negative: the curves start at 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from musicdata.metrics.features import FEATURES

__all__ = ["evaluation_figure", "in_suite_order", "plot_evaluation", "plot_metric"]

FEATURE_TITLES = {
    "pc": "pitch count (PC)",
    "nc": "note count (NC)",
    "pch": "pitch-class histogram (PCH)",
    "pctm": "pitch-class transitions (PCTM)",
    "pr": "pitch range (PR)",
    "pi": "avg pitch interval (PI)",
    "ioi": "avg inter-onset interval (IOI)",
    "nlh": "note-length histogram (NLH)",
    "nltm": "note-length transitions (NLTM)",
    "pc_seg": "PC per segment",
    "nc_seg": "NC per segment",
    "pch_seg": "PCH per segment",
    "ioi_seg": "IOI per segment",
}
COLORS = {"intra": "#1f77b4", "inter": "#ff7f0e", "overlap": "#2ca02c"}


def in_suite_order(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Details sorted as the suite lists its features (`FEATURES`); unknown features last."""
    rank = {name: i for i, name in enumerate(FEATURES)}
    return sorted(details, key=lambda d: (rank.get(d["feature"], len(rank)), d["feature"]))


def _non_negative(x: np.ndarray, *pdfs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cut a grid (and its densities) at distance 0, interpolating the value at 0; rows
    recorded before the support was clipped in `sets.compare_distributions` reach below 0."""
    if len(x) == 0 or x[0] >= 0:
        return (x, *pdfs)
    keep = x > 0
    head = [np.interp(0.0, x, p) for p in pdfs]
    return (
        np.concatenate([[0.0], x[keep]]),
        *(np.concatenate([[h], p[keep]]) for h, p in zip(head, pdfs, strict=True)),
    )


def plot_metric(detail: dict[str, Any], ax: Any, *, legend: bool = True) -> Any:
    """Draw one feature's intra-ref and inter densities on a matplotlib Axes; returns the Axes.

    `legend=False` leaves the legend to the caller (one for a grid of panels)."""
    for key in ("feature", "grid", "intra_ref_pdf", "inter_pdf"):
        if key not in detail:
            msg = f"detail lacks {key!r}: pass the detail_json of a '<feature>.oa' eval_results row"
            raise KeyError(msg)
    x, p, q = _non_negative(
        np.asarray(detail["grid"], dtype=float),
        np.asarray(detail["intra_ref_pdf"], dtype=float),
        np.asarray(detail["inter_pdf"], dtype=float),
    )
    ax.plot(x, p, color=COLORS["intra"], label=f"intra-ref (n={detail.get('n_ref', '?')})")
    ax.plot(x, q, color=COLORS["inter"], label=f"inter (n_gen={detail.get('n_gen', '?')})")
    ax.fill_between(x, np.minimum(p, q), color=COLORS["overlap"], alpha=0.25, label="overlap")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    name = detail["feature"]
    title = FEATURE_TITLES.get(name, name)
    stats = []
    if detail.get("oa") is not None:
        stats.append(f"OA {detail['oa']:.3f}")
    if detail.get("kld") is not None:
        stats.append(f"KLD {detail['kld']:.3f}")
    ax.set_title(title + (f"\n{', '.join(stats)}" if stats else ""), fontsize=10)
    ax.set_xlabel("euclidean distance", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=8)
    if legend:
        ax.legend(fontsize=7, loc="best", frameon=False)
    return ax


def evaluation_figure(
    details: list[dict[str, Any]], *, columns: int = 3, panel: tuple[float, float] = (4.2, 2.9)
) -> Any:
    """All features of one evaluation, suite order, `columns` panels per row and one shared
    legend above them (a matplotlib Figure; the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display in CI or on a worker
    from matplotlib.figure import Figure

    details = in_suite_order(details)
    columns = max(1, min(columns, len(details)))
    rows = max(1, -(-len(details) // columns))
    # Fixed margins in inches (a layout solver costs seconds for 13 panels): a band on top for
    # the shared legend, room for two-line titles and the x label between rows.
    width, height = panel[0] * columns, panel[1] * rows + 0.45
    fig = Figure(figsize=(width, height), layout="none")  # not rcParams' autolayout
    fig.subplots_adjust(
        left=0.55 / width,
        right=1 - 0.15 / width,
        top=1 - 0.95 / height,
        bottom=0.45 / height,
        hspace=1.0 / (panel[1] - 1.0),
        wspace=0.7 / (panel[0] - 0.7),
    )
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(details) :]:
        ax.set_visible(False)
    for detail, ax in zip(details, axes, strict=False):
        plot_metric(detail, ax, legend=False)
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    if details:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            loc="upper center",
            bbox_to_anchor=(0.5, 1 - 0.08 / height),
            ncol=3,
            frameon=False,
            fontsize=10,
        )
    return fig


def plot_evaluation(details: list[dict[str, Any]], path: Path, *, columns: int = 3) -> Path:
    """All features of one evaluation in a grid of panels, saved as an image (PNG/SVG by suffix)."""
    fig = evaluation_figure(details, columns=columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
