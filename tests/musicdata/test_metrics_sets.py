"""Set statistics: known answers (a set against itself, disjoint sets), the common support that
fixes mgeval's KL bug, KDE accuracy, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from musicdata.metrics.features import Notes, extract_features
from musicdata.metrics.sets import (
    SetConfig,
    compare_distributions,
    evaluate_sets,
    inter_distances,
    intra_distances,
    kde,
    scott_bandwidth,
)


def random_piece(rng: np.random.Generator, low: int, high: int, step: float) -> Notes:
    """A line of notes: pitches in [low, high), onsets every ~step seconds, varied lengths."""
    n = int(rng.integers(20, 60))
    on = np.cumsum(rng.uniform(0.5 * step, 1.5 * step, n))
    return Notes.from_arrays(on, on + step * rng.uniform(0.3, 3.0, n), rng.integers(low, high, n))


def test_distance_counts_and_leave_one_out() -> None:
    x = np.array([[0.0], [3.0], [4.0]])
    d = intra_distances(x)
    assert sorted(d.tolist()) == [1, 1, 3, 3, 4, 4]  # n(n-1) ordered pairs, no self-pairs
    inter = inter_distances(x, np.array([[0.0, 0.0][:1], [10.0]]))
    assert sorted(inter.tolist()) == [0, 3, 4, 6, 7, 10]
    # features are flattened: a 2x2 matrix per piece is a 4-vector
    m = np.zeros((2, 2, 2))
    m[1] = [[3, 0], [0, 4]]
    assert intra_distances(m).tolist() == [5.0, 5.0]


def test_a_distribution_against_itself_is_identical() -> None:
    a = np.random.default_rng(0).gamma(2.0, 1.0, 400)
    c = compare_distributions(a, a)
    assert c.oa == pytest.approx(1.0, abs=1e-9)
    assert c.kld == pytest.approx(0.0, abs=1e-9)


def test_a_set_against_itself_gives_oa_near_1_and_kld_near_0() -> None:
    rng = np.random.default_rng(1)
    pieces = [random_piece(rng, 48, 72, 0.25) for _ in range(120)]
    f = extract_features(pieces)
    res = evaluate_sets(f, f)
    for name, r in res.items():
        # inter includes the n self-pairs at distance 0 (mgeval's definition): OA = 1 - O(1/n)
        assert r["oa"] > 0.9, (name, r["oa"])
        assert r["kld"] < 0.1, (name, r["kld"])
        assert not r["degenerate"], name


def test_two_samples_of_one_source_overlap_and_another_source_does_not() -> None:
    rng = np.random.default_rng(2)
    ref = extract_features([random_piece(rng, 48, 60, 0.25) for _ in range(60)])
    same = extract_features([random_piece(rng, 48, 60, 0.25) for _ in range(60)])
    # another register, a 4 times wider range and 4 times the tempo: disjoint features
    other = extract_features([random_piece(rng, 40, 88, 1.0) for _ in range(60)])
    near, far = evaluate_sets(ref, same), evaluate_sets(ref, other)
    for name in ("pc", "pr", "ioi", "pi"):
        assert near[name]["oa"] > 0.8, (name, near[name]["oa"])
        assert far[name]["oa"] < 0.05, (name, far[name]["oa"])
        assert far[name]["kld"] > 5 * max(near[name]["kld"], 0.1), name


def test_disjoint_distributions_give_oa_near_0_and_a_large_finite_kld() -> None:
    rng = np.random.default_rng(3)
    c = compare_distributions(rng.normal(1, 0.2, 300), rng.normal(50, 2, 300))
    assert c.oa < 1e-6
    assert 10 < c.kld < 40 and np.isfinite(c.kld)


def test_common_support_fixes_the_reference_kl() -> None:
    """mgeval samples each density on its own min..max: two equal-shaped densities far apart
    look identical to it (KL ~ 0). On a common support they are disjoint."""
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, 500)
    b = a + 10
    x_a, x_b = np.linspace(a.min(), a.max(), 1000), np.linspace(b.min(), b.max(), 1000)
    mgeval_kl = stats.entropy(stats.gaussian_kde(a)(x_a), stats.gaussian_kde(b)(x_b))
    assert mgeval_kl < 1e-6  # the bug
    c = compare_distributions(a, b)
    assert c.kld > 10 and c.oa < 1e-3
    # both densities live on the one grid returned, which covers both samples
    assert c.grid[0] < a.min() and c.grid[-1] > b.max()
    assert np.trapz(c.pdf_a, c.grid) == pytest.approx(1, abs=0.02)
    assert np.trapz(c.pdf_b, c.grid) == pytest.approx(1, abs=0.02)


@pytest.mark.parametrize("n", [50, 5000])  # the exact and the binned (FFT) KDE paths
def test_kde_matches_scipy(n: int) -> None:
    s = np.random.default_rng(5).lognormal(0, 0.5, n)
    x = np.linspace(-1, 6, 1001)
    want = stats.gaussian_kde(s)(x)
    got = kde(s, scott_bandwidth(s), x)
    assert np.abs(got - want).max() < 1e-4 * want.max()


def test_zero_variance_sets_use_the_documented_fallback() -> None:
    c = compare_distributions(np.zeros(10), np.zeros(6))
    assert c.oa == pytest.approx(1.0, abs=1e-6) and c.kld == pytest.approx(0.0, abs=1e-6)
    assert len(c.degenerate) == 2 and "fallback bandwidth" in c.degenerate[0]
    c = compare_distributions(np.full(5, 2.0), np.random.default_rng(6).normal(8, 1, 50))
    assert np.isfinite([c.oa, c.kld]).all() and c.oa < 0.01
    assert c.degenerate and c.degenerate[0].startswith("a: zero variance")
    # identical pieces: every distance 0, still no NaN
    f = extract_features([Notes.from_arrays([0, 1], [1, 2], [60, 62])] * 4)
    for r in evaluate_sets(f, f).values():
        assert np.isfinite([r["oa"], r["kld"]]).all() and r["degenerate"]


def test_bad_inputs_are_reported() -> None:
    with pytest.raises(ValueError, match="empty distance sets"):
        compare_distributions(np.zeros(0), np.ones(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        compare_distributions(np.array([1.0, np.nan]), np.ones(3))
    one = extract_features([Notes.from_arrays([0], [1], [60])])
    with pytest.raises(ValueError, match="at least 2 reference pieces"):
        evaluate_sets(one, one)


def test_result_holds_the_plot_contract() -> None:
    rng = np.random.default_rng(8)
    f = extract_features([random_piece(rng, 50, 70, 0.3) for _ in range(12)])
    r = evaluate_sets(f, f, SetConfig(detail_points=100))["pch"]
    assert len(r["grid"]) == len(r["intra_ref_pdf"]) == len(r["inter_pdf"]) == 100
    assert r["n_ref"] == r["n_gen"] == 12
    assert all(isinstance(v, float) for v in r["grid"])


samples = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(samples, samples)
def test_oa_and_kld_are_bounded_finite_and_oa_is_symmetric(a: list, b: list) -> None:
    ab = compare_distributions(np.array(a), np.array(b))
    ba = compare_distributions(np.array(b), np.array(a))
    assert 0.0 <= ab.oa <= 1.0 and np.isfinite(ab.kld) and ab.kld >= 0
    assert ab.oa == pytest.approx(ba.oa, abs=2e-3)
    assert not np.isnan(ab.pdf_a).any() and not np.isnan(ab.pdf_b).any()
