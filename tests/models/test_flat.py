"""The flat (REMI baseline) decoder: shapes, causality, overfitting real tokens, generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicdata.models.flat import FlatConfig, FlatDecoder

MIDI = Path(__file__).parents[1] / "fixtures" / "midi" / "chorale_4_4.mid"


@pytest.fixture(scope="module")
def remi() -> tuple[np.ndarray, int]:
    """REMI ids of a real chorale and the vocabulary size."""
    import symusic

    from musicdata.encodings import get_encoding

    enc = get_encoding("remi")
    return enc.encode(symusic.Score(MIDI)), enc.vocab_size


def _model(vocab: int, **kw: object) -> FlatDecoder:
    torch.manual_seed(0)
    cfg = FlatConfig(
        vocab_sizes=[vocab],
        sub_tokens=["token"],
        pad_id=0,
        max_len=64,
        dim=32,
        n_heads=2,
        n_layers=2,
        dropout=0.0,
    )
    return FlatDecoder(cfg.replace(**kw))


def test_shapes_and_config_round_trip(remi: tuple[np.ndarray, int]) -> None:
    _, vocab = remi
    m = _model(vocab)
    assert m(torch.zeros(3, 10, dtype=torch.long)).shape == (3, 10, vocab)
    assert FlatConfig.from_dict(m.cfg.to_dict()) == m.cfg
    with pytest.raises(AssertionError, match="one field"):
        FlatConfig(vocab_sizes=[3, 4], sub_tokens=["a", "b"])


def test_future_tokens_never_change_earlier_logits(remi: tuple[np.ndarray, int]) -> None:
    ids, vocab = remi
    m = _model(vocab).eval()
    x = torch.as_tensor(ids[:20], dtype=torch.long)[None]
    y = x.clone()
    y[0, 12:] = torch.randint(1, vocab, (8,))
    torch.testing.assert_close(m(x)[:, :12], m(y)[:, :12])
    assert not torch.allclose(m(x)[:, 12:], m(y)[:, 12:])


def test_loss_masks_padding_and_overfits_real_tokens(remi: tuple[np.ndarray, int]) -> None:
    ids, vocab = remi
    m = _model(vocab)
    tokens = torch.as_tensor(np.stack([ids[:49], ids[40:89]]), dtype=torch.long)  # [2, 49]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[1, 30:] = False
    tokens[1, 30:] = 0
    _, stats = m.loss({"tokens": tokens, "mask": mask})
    assert stats.tokens == 48 + 29 and int(stats.counts[0]) == 48 + 29
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, _ = m.loss({"tokens": tokens, "mask": mask})
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    last = float(loss.detach())
    assert last < 0.3 * first, f"loss {first:.3f} -> {last:.3f}: did not overfit"


def test_generate_valid_ids_and_reproducible(remi: tuple[np.ndarray, int]) -> None:
    ids, vocab = remi
    m = _model(vocab, max_len=16)
    prompt = torch.as_tensor(ids[:4], dtype=torch.long)[None]
    out = m.generate(
        prompt, 20, temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (1, 24) and torch.equal(out[:, :4], prompt)
    assert int(out.min()) >= 1 and int(out.max()) < vocab  # never PAD (id 0)
    again = m.generate(
        prompt, 20, temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(out, again)
    assert m.training, "generate restores train mode"
