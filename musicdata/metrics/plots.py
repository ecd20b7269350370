"""Plots of the set comparison, drawn from the catalog alone (the `<feature>.oa` detail_json).

`plot_metric(detail, ax)` draws the intra-reference and inter-set distance densities of one
feature on their common grid and shades their overlap (the OA). The report calls it per feature;
`plot_evaluation` lays all features out in one figure and saves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_evaluation", "plot_metric"]

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


def plot_metric(detail: dict[str, Any], ax: Any) -> Any:
    """Draw one feature's intra-ref and inter densities on a matplotlib Axes; returns the Axes."""
    for key in ("feature", "grid", "intra_ref_pdf", "inter_pdf"):
        if key not in detail:
            msg = f"detail lacks {key!r}: pass the detail_json of a '<feature>.oa' eval_results row"
            raise KeyError(msg)
    x = np.asarray(detail["grid"], dtype=float)
    p = np.asarray(detail["intra_ref_pdf"], dtype=float)
    q = np.asarray(detail["inter_pdf"], dtype=float)
    ax.plot(x, p, color="tab:blue", label=f"intra-ref (n={detail.get('n_ref', '?')})")
    ax.plot(x, q, color="tab:orange", label=f"inter (n_gen={detail.get('n_gen', '?')})")
    ax.fill_between(x, np.minimum(p, q), color="tab:green", alpha=0.25, label="overlap")
    name = detail["feature"]
    title = FEATURE_TITLES.get(name, name)
    stats = []
    if detail.get("oa") is not None:
        stats.append(f"OA {detail['oa']:.3f}")
    if detail.get("kld") is not None:
        stats.append(f"KLD {detail['kld']:.3f}")
    ax.set_title(title + (f"\n{', '.join(stats)}" if stats else ""), fontsize=9)
    ax.set_xlabel("euclidean distance", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return ax


def plot_evaluation(details: list[dict[str, Any]], path: Path, *, columns: int = 4) -> Path:
    """All features of one evaluation in a grid of panels, saved as an image (PNG/SVG by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(details) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(details) :]:
        ax.axis("off")
    for detail, ax in zip(details, axes.flat, strict=False):
        plot_metric(detail, ax)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
