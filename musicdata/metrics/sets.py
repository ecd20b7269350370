"""Set-level statistics: intra-/inter-set distances, their Gaussian KDEs, KL divergence and
overlap area, as in mgeval (Yang & Lerch 2018) and the PerceiverS evaluation.

For each feature, every piece is a flattened feature vector and distances are euclidean:
- intra-set (leave-one-out, as mgeval): each piece against every *other* piece of the same set,
  both directions, n * (n - 1) distances;
- inter-set: each reference piece against every generated piece, n_ref * n_gen distances.
The two distributions compared are intra-ref and inter: KLD(intra_ref || inter) and their overlap
area (OA). A generated set that matches the reference has inter distances distributed like the
intra-ref distances: OA near 1, KLD near 0.

Fixed against the reference code: mgeval samples the two densities on *different* supports (each
on its own min..max) before taking the KL, and integrates the overlap only between the sample
extremes. Here both densities are evaluated on one common grid covering both (each sample range
plus 5 bandwidths either side, refined where either density is narrow), renormalised to integrate
to 1 on it, and KLD and OA are trapezoid integrals over that same grid. Distances are never
negative, so for non-negative samples the support starts at 0 (`SetConfig.clip_at_zero`).

Degenerate cases, never a silent NaN:
- a distance set with zero variance (or one value) has no Scott bandwidth; it gets the fallback
  bandwidth 1e-3 x the pooled std of both sets (or 1e-3 x max(|value|, 1) when that is 0 too),
  and the result lists it under `degenerate`;
- KLD uses q floored at 1e-12 x the larger peak density, so disjoint distributions give a large
  finite value (about 28 nats) instead of inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "Comparison",
    "SetConfig",
    "compare_distributions",
    "evaluate_sets",
    "flatten_features",
    "inter_distances",
    "intra_distances",
    "kde",
    "scott_bandwidth",
]

_SQRT_2PI = float(np.sqrt(2 * np.pi))
_EXACT_LIMIT = 4_000_000  # samples x grid points evaluated exactly; above, binned + FFT


@dataclass(frozen=True)
class SetConfig:
    """Numerics of the set comparison; hashed into the evaluation id."""

    grid_points: int = 1001  # per grid piece of the common support
    detail_points: int = 100  # grid stored for plots
    tail_bandwidths: float = 5.0
    kld_floor: float = 1e-12
    # Distances are never negative: samples that are all >= 0 get a support that starts at 0
    # (the Gaussian tails below 0 are cut and each density renormalised on what is left).
    clip_at_zero: bool = True

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def flatten_features(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name -> [P, D] float64 (scalars become D = 1)."""
    return {k: np.asarray(v, np.float64).reshape(len(v), -1) for k, v in feats.items()}


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(x), len(y)]. Wide features (the 768-dim pch_seg) go through one
    BLAS product, |a|^2 + |b|^2 - 2 a.b; pairs where that cancels badly (near-identical pieces)
    are recomputed directly, so identical pieces keep a distance of exactly 0."""
    if x.shape[1] < 32:
        from scipy.spatial.distance import cdist

        return cdist(x, y, metric="euclidean")
    nx, ny = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    d2 = nx[:, None] + ny[None, :] - 2.0 * (x @ y.T)
    np.maximum(d2, 0.0, out=d2)
    scale = nx[:, None] + ny[None, :]
    i, j = np.nonzero((d2 <= 1e-9 * scale) & (scale > 0))  # two zero vectors are exactly 0
    if len(i):
        d2[i, j] = ((x[i] - y[j]) ** 2).sum(axis=1)
    return np.sqrt(d2)


def intra_distances(x: np.ndarray) -> np.ndarray:
    """Leave-one-out distances within one set: all ordered pairs (i, j), i != j."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    d = _pairwise(x, x)
    return d[~np.eye(len(x), dtype=bool)]


def inter_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distances of every piece of x to every piece of y."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    return _pairwise(x, y).reshape(-1)


def scott_bandwidth(samples: np.ndarray) -> float:
    """scipy.stats.gaussian_kde's bandwidth in 1-D: std (ddof=1) x n^(-1/5); 0 if undefined."""
    n = len(samples)
    if n < 2:
        return 0.0
    return float(np.std(samples, ddof=1) * n ** (-0.2))


def kde(samples: np.ndarray, bandwidth: float, x: np.ndarray) -> np.ndarray:
    """Gaussian KDE of 1-D samples at points x: exact for small inputs, else linear binning on a
    grid that resolves the bandwidth and an FFT convolution (error far below plotting precision)."""
    s = np.asarray(samples, np.float64)
    x = np.asarray(x, np.float64)
    h = float(bandwidth)
    assert h > 0 and len(s) > 0, "kde needs samples and a positive bandwidth"
    if len(s) * len(x) <= _EXACT_LIMIT:
        out = np.empty(len(x))
        step = max(1, _EXACT_LIMIT // max(len(s), 1))
        for i in range(0, len(x), step):
            z = (x[i : i + step, None] - s[None, :]) / h
            out[i : i + step] = np.exp(-0.5 * z * z).sum(axis=1)
        return out / (len(s) * h * _SQRT_2PI)
    lo, hi = s.min() - 6 * h, s.max() + 6 * h
    m = int(np.clip(np.ceil((hi - lo) / (h / 8)), 1024, 2**21))
    dx = (hi - lo) / (m - 1)
    t = (s - lo) / dx
    i = np.clip(np.floor(t).astype(np.int64), 0, m - 2)
    w = t - i
    counts = np.bincount(i, 1 - w, minlength=m) + np.bincount(i + 1, w, minlength=m)
    k = int(np.ceil(6 * h / dx))
    j = np.arange(-k, k + 1) * dx / h
    # linear convolution by FFT (numpy's; scipy.signal costs seconds to import)
    size = m + 2 * k
    full = np.fft.irfft(
        np.fft.rfft(counts[:m], size) * np.fft.rfft(np.exp(-0.5 * j * j), size), size
    )
    dens = full[k : k + m]
    grid = lo + np.arange(m) * dx
    return np.interp(x, grid, np.maximum(dens, 0.0), left=0.0, right=0.0) / (len(s) * h * _SQRT_2PI)


@dataclass(frozen=True)
class Comparison:
    """KLD(a || b) and overlap area of the KDEs of two distance samples on a common grid."""

    kld: float
    oa: float
    grid: np.ndarray  # detail grid for plots
    pdf_a: np.ndarray
    pdf_b: np.ndarray
    bandwidth_a: float
    bandwidth_b: float
    degenerate: list[str]


def _bandwidth(samples: np.ndarray, fallback: float, name: str, notes: list[str]) -> float:
    h = scott_bandwidth(samples)
    if h > 0 and np.isfinite(h):
        return h
    notes.append(
        f"{name}: zero variance ({len(samples)} values); fallback bandwidth {fallback:.3g}"
    )
    return fallback


def compare_distributions(
    a: np.ndarray, b: np.ndarray, config: SetConfig = SetConfig(), *, names: tuple = ("a", "b")
) -> Comparison:
    """Evaluate both KDEs on one common support, then KLD(a || b) and OA by trapezoid rule."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        msg = f"cannot compare empty distance sets ({names[0]}: {len(a)}, {names[1]}: {len(b)})"
        raise ValueError(msg)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        msg = "distance samples contain NaN or inf; check the features for non-finite values"
        raise ValueError(msg)
    pooled = np.concatenate([a, b])
    sd = float(np.std(pooled))
    fallback = 1e-3 * (sd if sd > 0 else max(float(np.abs(pooled).max()), 1.0))
    notes: list[str] = []
    ha = _bandwidth(a, fallback, names[0], notes)
    hb = _bandwidth(b, fallback, names[1], notes)
    tail = config.tail_bandwidths
    lo_a, hi_a = a.min() - tail * ha, a.max() + tail * ha
    lo_b, hi_b = b.min() - tail * hb, b.max() + tail * hb
    if config.clip_at_zero and min(a.min(), b.min()) >= 0:
        lo_a, lo_b = max(lo_a, 0.0), max(lo_b, 0.0)
    lo, hi = min(lo_a, lo_b), max(hi_a, hi_b)
    n = config.grid_points
    # the common grid: uniform over both, plus dense pieces where each density lives
    x = np.unique(
        np.concatenate(
            [np.linspace(lo, hi, n), np.linspace(lo_a, hi_a, n), np.linspace(lo_b, hi_b, n)]
        )
    )
    p, q = kde(a, ha, x), kde(b, hb, x)
    p /= np.trapz(p, x)
    q /= np.trapz(q, x)
    oa = float(np.clip(np.trapz(np.minimum(p, q), x), 0.0, 1.0))
    floor = config.kld_floor * max(p.max(), q.max())
    ratio = np.where(p > 0, p / np.maximum(q, floor), 1.0)
    kld = float(max(np.trapz(p * np.log(ratio), x), 0.0))
    grid = np.linspace(lo, hi, config.detail_points)
    return Comparison(
        kld=kld,
        oa=oa,
        grid=grid,
        pdf_a=np.interp(grid, x, p),
        pdf_b=np.interp(grid, x, q),
        bandwidth_a=ha,
        bandwidth_b=hb,
        degenerate=notes,
    )


def _stats(d: np.ndarray | None) -> tuple[float | None, float | None]:
    if d is None or len(d) == 0:
        return None, None
    return float(d.mean()), float(d.std())


def evaluate_sets(
    ref: dict[str, np.ndarray],
    gen: dict[str, np.ndarray],
    config: SetConfig = SetConfig(),
) -> dict[str, dict[str, Any]]:
    """Per feature: intra-ref / inter / intra-gen distance statistics, KLD and OA with the
    densities on the detail grid (JSON-ready: floats and lists)."""
    ref_f, gen_f = flatten_features(ref), flatten_features(gen)
    missing = sorted(set(ref_f) ^ set(gen_f))
    if missing:
        msg = f"reference and generated sets have different features: {missing}"
        raise ValueError(msg)
    out: dict[str, dict[str, Any]] = {}
    for name in ref_f:
        r, g = ref_f[name], gen_f[name]
        if len(r) < 2 or len(g) < 1:
            msg = (
                f"need at least 2 reference pieces and 1 generated piece for intra/inter "
                f"distances, got {len(r)} and {len(g)}"
            )
            raise ValueError(msg)
        intra_ref = intra_distances(r)
        inter = inter_distances(r, g)
        intra_gen = intra_distances(g) if len(g) >= 2 else None
        c = compare_distributions(intra_ref, inter, config, names=("intra_ref", "inter"))
        ir_mean, ir_std = _stats(intra_ref)
        in_mean, in_std = _stats(inter)
        ig_mean, ig_std = _stats(intra_gen)
        out[name] = {
            "feature": name,
            "kld": c.kld,
            "oa": c.oa,
            "intra_ref_mean": ir_mean,
            "intra_ref_std": ir_std,
            "inter_mean": in_mean,
            "inter_std": in_std,
            "intra_gen_mean": ig_mean,
            "intra_gen_std": ig_std,
            "ref_feature_mean": float(r.mean()) if r.shape[1] == 1 else None,
            "gen_feature_mean": float(g.mean()) if g.shape[1] == 1 else None,
            "n_ref": len(r),
            "n_gen": len(g),
            "grid": c.grid.tolist(),
            "intra_ref_pdf": c.pdf_a.tolist(),
            "inter_pdf": c.pdf_b.tolist(),
            "bandwidth_intra_ref": c.bandwidth_a,
            "bandwidth_inter": c.bandwidth_b,
            "degenerate": c.degenerate,
        }
    return out
