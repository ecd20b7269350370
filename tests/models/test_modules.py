"""The shared blocks: attention masks and causality, rotary positions, embeddings, sampling."""

from __future__ import annotations

import pytest
import torch

from musicdata.models.modules import (
    Block,
    CompoundEmbedding,
    CompoundHeads,
    CrossBlock,
    MultiHeadAttention,
    RotaryEmbedding,
    Transformer,
    causal_mask,
    compound_cross_entropy,
    filter_logits,
    sample,
)


def test_causal_mask_is_bottom_right_aligned() -> None:
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_attention_shapes_and_cross_kv_dim() -> None:
    attn = MultiHeadAttention(32, 4, kv_dim=24)
    y = attn(torch.randn(2, 3, 32), torch.randn(2, 7, 24))
    assert y.shape == (2, 3, 32)


def test_causal_attention_matches_explicit_mask_and_ignores_future() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4).eval()
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 6, 32)
    y = attn(x, is_causal=True, rope=rope)
    y_mask = attn(x, mask=causal_mask(6, 6), rope=rope)
    torch.testing.assert_close(y, y_mask)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 32)
    torch.testing.assert_close(attn(x2, is_causal=True, rope=rope)[:, :4], y[:, :4])


def test_fully_masked_query_row_gives_finite_output() -> None:
    attn = MultiHeadAttention(16, 2)
    mask = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    mask[..., 0, :] = False  # a left-padding query that may see nothing
    y = attn(torch.randn(1, 3, 16), mask=mask)
    assert torch.isfinite(y).all()


def test_rope_depends_on_relative_position_only() -> None:
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq: int, pk: int) -> torch.Tensor:
        return (rope(q, torch.tensor([pq])) * rope(k, torch.tensor([pk]))).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))
    assert not torch.allclose(score(3, 1), score(3, 2))


def test_blocks_and_stack_shapes() -> None:
    x = torch.randn(2, 5, 32)
    assert Block(32, 4)(x, is_causal=True).shape == (2, 5, 32)
    assert CrossBlock(32, 4, kv_dim=8)(x, torch.randn(2, 3, 8)).shape == (2, 5, 32)
    assert Transformer(2, 32, 4)(x).shape == (2, 5, 32)


def test_compound_embedding_sums_fields_and_heads_split_them() -> None:
    emb = CompoundEmbedding([5, 7], 8)
    tok = torch.tensor([[[1, 6], [4, 0]]])  # [1, 2, 2]
    expect = emb.tables[0](tok[..., 0]) + emb.tables[1](tok[..., 1])
    torch.testing.assert_close(emb(tok), expect)
    logits = CompoundHeads(8, [5, 7])(emb(tok))
    assert [tuple(lg.shape) for lg in logits] == [(1, 2, 5), (1, 2, 7)]
    with pytest.raises(AssertionError, match="fields"):
        emb(torch.zeros(1, 2, 3, dtype=torch.long))


def test_compound_cross_entropy_weighs_heads_equally_and_skips_masked() -> None:
    logits = [torch.zeros(1, 2, 4), torch.zeros(1, 2, 2)]
    targets = torch.tensor([[[1, 0], [2, -100]]])
    mask = torch.tensor([[True, True]])
    loss = compound_cross_entropy(logits, targets, mask)
    expect = (torch.log(torch.tensor(4.0)) + torch.log(torch.tensor(2.0))) / 2
    torch.testing.assert_close(loss, expect)


def test_sampling_filters() -> None:
    logits = torch.tensor([[4.0, 3.0, 0.0, -1.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isfinite(kept).sum() == 4 and (kept[0, 2:] < -1e30).all()
    probs = logits.softmax(-1)[0]  # ~[0.70, 0.26, 0.01, 0.004]
    nucleus = filter_logits(logits, top_p=0.9)
    assert (nucleus[0, :2] == logits[0, :2]).all() and (nucleus[0, 2:] < -1e30).all()
    assert float(probs[0]) < 0.9  # so the second token is needed
    assert sample(logits, temperature=0.0).item() == 0
    g = torch.Generator().manual_seed(0)
    draws = sample(logits.expand(200, 4), top_k=2, generator=g)
    assert set(draws.tolist()) <= {0, 1} and len(set(draws.tolist())) == 2
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(
        sample(logits.expand(9, 4), generator=g1), sample(logits.expand(9, 4), generator=g2)
    )
