"""NLL helpers against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from musicdata.models.nll import NLLStats, sub_token_nll


def test_flat_uniform_logits_give_log_vocab() -> None:
    logits = torch.zeros(2, 3, 8)  # uniform over 8 tokens: ln 8 nats = 3 bits each
    stats = sub_token_nll(logits, torch.randint(0, 8, (2, 3)))
    assert stats.mean_nll == pytest.approx(math.log(8))
    assert stats.bits_per_token == pytest.approx(3.0)
    assert stats.perplexity == pytest.approx(8.0)
    assert stats.tokens == 6


def test_compound_heads_masks_and_ignore_index_by_hand() -> None:
    # head 0: vocab 2, logits [ln 3, 0] -> p = [3/4, 1/4]; head 1: vocab 3, uniform.
    h0 = torch.tensor([[[math.log(3.0), 0.0]] * 3])  # [1, 3, 2]
    h1 = torch.zeros(1, 3, 3)
    targets = torch.tensor([[[0, 2], [1, -100], [1, 0]]])  # [1, 3, 2]
    mask = torch.tensor([[True, True, False]])  # the third token is padding
    stats = sub_token_nll([h0, h1], targets, mask)
    # head 0 sees targets 0, 1: -ln(3/4) - ln(1/4); head 1 sees only target 2: ln 3
    want0 = -math.log(0.75) - math.log(0.25)
    assert stats.nats.tolist() == pytest.approx([want0, math.log(3)])
    assert stats.counts.tolist() == [2, 1]
    assert stats.tokens == 2
    assert stats.mean_nll == pytest.approx((want0 + math.log(3)) / 3)
    bits = (want0 / 2 + math.log(3)) / math.log(2)
    assert stats.bits_per_token == pytest.approx(bits)
    assert stats.perplexity == pytest.approx(2**bits)
    d = stats.to_dict(["pitch", "duration"])
    assert d["sub_token_nll"]["duration"] == pytest.approx(math.log(3))
    assert d["sub_token_perplexity"]["duration"] == pytest.approx(3.0)


def test_stats_accumulate_over_batches_like_one_batch() -> None:
    torch.manual_seed(0)
    logits = [torch.randn(4, 5, 7), torch.randn(4, 5, 3)]
    targets = torch.stack([torch.randint(0, 7, (4, 5)), torch.randint(0, 3, (4, 5))], dim=-1)
    mask = torch.rand(4, 5) > 0.3
    whole = sub_token_nll(logits, targets, mask)
    parts = sub_token_nll([h[:2] for h in logits], targets[:2], mask[:2]) + sub_token_nll(
        [h[2:] for h in logits], targets[2:], mask[2:]
    )
    assert torch.allclose(whole.nats, parts.nats)
    assert whole.counts.tolist() == parts.counts.tolist()
    assert whole.mean_nll == pytest.approx(parts.mean_nll)


def test_everything_masked_gives_nan_not_a_crash() -> None:
    stats = sub_token_nll(
        torch.zeros(1, 2, 4),
        torch.zeros(1, 2, dtype=torch.long),
        torch.zeros(1, 2, dtype=torch.bool),
    )
    assert stats.tokens == 0
    assert math.isnan(stats.mean_nll)
    assert math.isnan(stats.bits_per_token)
    assert isinstance(stats, NLLStats)


def test_head_count_mismatch_is_reported() -> None:
    with pytest.raises(AssertionError, match="2 logit heads but targets have 3"):
        sub_token_nll([torch.zeros(1, 2, 4)] * 2, torch.zeros(1, 2, 3, dtype=torch.long))
