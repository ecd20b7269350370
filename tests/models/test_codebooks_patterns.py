"""Codebook interleaving patterns: build then revert is the identity, for numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from musicdata.models.codebooks_patterns import MUSICGEN_DELAYS, PATTERNS, build_pattern

SPECIAL = 2048


@st.composite
def codes_and_pattern(draw: st.DrawFn) -> tuple[str, np.ndarray, tuple[int, ...] | None]:
    name = draw(st.sampled_from(PATTERNS))
    k = draw(st.integers(1, 6))
    t = draw(st.integers(1, 40))
    b = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    codes = np.random.default_rng(seed).integers(0, SPECIAL, size=(b, k, t))
    delays = None
    if name == "delay":
        delays = tuple(draw(st.lists(st.integers(0, 5), min_size=k, max_size=k)))
    return name, codes, delays


@settings(max_examples=150, deadline=None)
@given(codes_and_pattern())
def test_revert_build_is_identity_numpy(case: tuple) -> None:
    name, codes, delays = case
    b, k, t = codes.shape
    p = build_pattern(name, k, t, delays)
    seq, mask = p.build(codes, SPECIAL)
    assert seq.shape == (b, k, p.sequence_steps) and mask.shape == (k, p.sequence_steps)
    assert np.array_equal(p.revert(seq), codes)
    # every real code appears exactly once; every other position is the special token
    assert mask.sum() == k * t
    assert (seq[:, ~mask] == SPECIAL).all() and (seq[:, mask] != SPECIAL).all()


@settings(max_examples=60, deadline=None)
@given(codes_and_pattern())
def test_revert_build_is_identity_torch_and_logits(case: tuple) -> None:
    name, codes, delays = case
    b, k, t = codes.shape
    p = build_pattern(name, k, t, delays)
    x = torch.as_tensor(codes)
    seq, mask = p.build(x, SPECIAL)
    assert isinstance(seq, torch.Tensor) and torch.equal(p.revert(seq), x)
    # logits laid out like the sequence: the logit at (q, s) "predicts" the code held there
    card = 5
    logits = torch.randn(b, card, k, t)
    laid = torch.zeros(b, card, k, p.sequence_steps)
    laid[..., torch.arange(k)[:, None], torch.as_tensor(p.step_index)] = logits
    assert torch.equal(p.revert_logits(laid), logits)
    del mask


def test_musicgen_delay_layout() -> None:
    codes = np.arange(4 * 3).reshape(1, 4, 3)  # K=4, T=3
    p = build_pattern("delay", 4, 3, MUSICGEN_DELAYS)
    seq, mask = p.build(codes, -1)
    assert p.sequence_steps == 6
    assert seq[0].tolist() == [
        [0, 1, 2, -1, -1, -1],
        [-1, 3, 4, 5, -1, -1],
        [-1, -1, 6, 7, 8, -1],
        [-1, -1, -1, 9, 10, 11],
    ]
    assert mask.sum() == 12


def test_flatten_and_coarse_first_layouts() -> None:
    codes = np.array([[[1, 2], [3, 4]]])  # K=2, T=2
    flat, _ = build_pattern("flatten", 2, 2).build(codes, 0)
    assert flat[0].tolist() == [[1, 0, 2, 0], [0, 3, 0, 4]]
    coarse, _ = build_pattern("coarse_first", 2, 2).build(codes, 0)
    assert coarse[0].tolist() == [[1, 2, 0, 0], [0, 0, 3, 4]]
    par, m = build_pattern("parallel", 2, 2).build(codes, 0)
    assert np.array_equal(par, codes) and m.all()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown codebook pattern"):
        build_pattern("zigzag", 4, 10)
    with pytest.raises(ValueError, match="non-negative delays"):
        build_pattern("delay", 4, 10, (0, 1))
    p = build_pattern("parallel", 4, 10)
    with pytest.raises(AssertionError, match="expected"):
        p.build(np.zeros((1, 4, 9), np.int64), 0)
