"""Matplotlib figures of the report, rendered headless (Agg) to PNG bytes.

Each function takes plain rows or arrays (no SQL here) and returns a PNG, so the same plots can
be drawn from a notebook.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

WIDTH, HEIGHT, DPI = 9.0, 3.4, 90
SPLITS = ("train", "validation", "test")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display in CI or on a worker
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.autolayout": True,
        }
    )
    return plt


def render(
    draw: Callable[[Any], None], *, ncols: int = 1, nrows: int = 1, height: float = HEIGHT
) -> bytes:
    """Draw into a fresh figure with nrows x ncols axes (passed flat) and return PNG bytes."""
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height * nrows), squeeze=False)
    try:
        draw([ax for row in axes for ax in row])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)


def length_histograms(lengths: dict[str, dict[str, np.ndarray]], *, ncols: int = 3) -> bytes:
    """Sequence-length histograms, one panel per encoding (shared log-x bins), the splits
    overlaid: train filled, validation and test as outlines."""
    encs = sorted(lengths)
    every = np.concatenate([a for v in lengths.values() for a in v.values()] or [np.ones(1)])
    lo, hi = max(1, int(every.min())), max(2, int(every.max()))
    bins = np.logspace(np.log10(lo), np.log10(hi + 1), 30)
    ncols = min(ncols, max(1, len(encs)))
    nrows = -(-len(encs) // ncols) or 1
    colors = {"train": "#4C72B0", "validation": "#DD8452", "test": "#55A868"}

    def draw(axes: list[Any]) -> None:
        for ax, enc in zip(axes, encs, strict=False):
            for split in SPLITS:
                data = lengths[enc].get(split)
                if data is None or not len(data):
                    continue
                style = (
                    {"alpha": 0.45, "histtype": "stepfilled"}
                    if split == "train"
                    else {"histtype": "step", "linewidth": 1.4}
                )
                ax.hist(data, bins=bins, color=colors[split], label=split, **style)
            ax.set_xscale("log")
            _plain_log_ticks(ax)
            ax.set_title(enc, fontsize=9)
        for ax in axes[len(encs) :]:
            ax.axis("off")
        for ax in axes[::ncols]:
            ax.set_ylabel("pieces")
        for ax in axes[max(0, len(encs) - ncols) : len(encs)]:
            ax.set_xlabel("tokens per piece (log)")
        # the legend goes into a spare cell when there is one, never over a panel's bars
        handles, names = axes[0].get_legend_handles_labels()
        spare = axes[len(encs)] if len(axes) > len(encs) else None
        if spare is not None:
            spare.legend(handles, names, loc="center", frameon=False, title="split")
        else:
            axes[0].legend(fontsize=7, frameon=False, loc="best")

    return render(draw, ncols=ncols, nrows=nrows, height=2.3)


def _plain_log_ticks(ax: Any) -> None:
    """Label log axes 100, 1k, 10k (matplotlib's minor labels collide on short ranges)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _si(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    title: str,
    reference: float | None = None,
    fmt: str = "{:.2f}",
) -> bytes:
    """Horizontal bars with their values written at the end (readable for long labels)."""
    height = max(1.6, 0.32 * len(labels) + 0.9)

    def draw(axes: list[Any]) -> None:
        ax = axes[0]
        y = np.arange(len(labels))
        ax.barh(y, values, color="#4C72B0")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=8)
        if reference is not None:
            ax.axvline(reference, color="#C44E52", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.12)

    return render(draw, height=height)


def coverage(rows: list[dict[str, Any]]) -> bytes:
    """Stacked bars per vocabulary (encoding, or encoding/field): ids seen vs never seen."""
    labels = [r["label"] for r in rows]
    seen = np.array([r["seen"] for r in rows], dtype=float)
    never = np.array([r["never_seen"] for r in rows], dtype=float)
    height = max(1.6, 0.32 * len(rows) + 0.9)

    def draw(axes: list[Any]) -> None:
        ax = axes[0]
        y = np.arange(len(rows))
        ax.barh(y, seen, color="#55A868", label="used")
        ax.barh(y, never, left=seen, color="#DDDDDD", label="never used")
        for yi, s, n in zip(y, seen, never, strict=True):
            ax.text(s + n, yi, f" {s / (s + n):.0%} of {int(s + n)}", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlabel("token ids")
        ax.set_title("Vocabulary usage", loc="left")
        ax.legend(fontsize=8, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.18)

    return render(draw, height=height)


def rank_frequency(flat: dict[str, np.ndarray], compound: dict[str, np.ndarray]) -> bytes:
    """Token counts sorted by rank, log-log: how skewed each vocabulary's use is. Flat
    vocabularies are solid lines, compound ones (counted per whole compound token) dashed; the
    legend sits outside the axes."""
    lines = [(k, v, "-") for k, v in sorted(flat.items())]
    lines += [(k, v, "--") for k, v in sorted(compound.items())]

    def draw(axes: list[Any]) -> None:
        ax = axes[0]
        for label, values, style in lines:
            counts = np.sort(np.asarray(values))[::-1]
            ranks = np.arange(1, len(counts) + 1)
            ax.plot(ranks, counts, style, label=f"{label} ({len(counts):,})", linewidth=1.3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rank (distinct tokens used in parentheses)")
        ax.set_ylabel("occurrences")
        ax.set_title("Token frequency by rank", loc="left")
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    return render(draw, height=max(HEIGHT, 0.17 * len(lines) + 1.2))


def curves(series: dict[str, list[tuple[float, float]]], *, xlabel: str, title: str) -> bytes:
    """One line per series (e.g. a metric per training run) over steps."""

    def draw(axes: list[Any]) -> None:
        ax = axes[0]
        for label in sorted(series):
            pts = sorted(series[label])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.legend(fontsize=8, frameon=False)

    return render(draw)


def metric_panels(details: list[dict[str, Any]], *, columns: int = 3) -> bytes:
    """The set-level density panels of one evaluation (musicdata.metrics.plots: suite order,
    non-negative distances, one legend above the grid) as PNG bytes."""
    from musicdata.metrics.plots import evaluation_figure

    fig = evaluation_figure(details, columns=columns)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
