"""PerceiverS: shapes, causality, left padding, the scale mask, cached == naive generation,
overfitting a real performance-encoded piece, registry entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicdata.models.builders import MODELS, build
from musicdata.models.data.collate import collate
from musicdata.models.perceivers import PerceiverS, PerceiverSConfig, paper_lr
from musicdata.schemas.manifest import ShardManifest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "midi"
V = 390  # the performance vocabulary


def _model(**kw: object) -> PerceiverS:
    torch.manual_seed(0)
    base: dict[str, object] = {
        "max_len": 40,
        "query_len": 8,
        "scales": [None, 16],
        "dim": 16,
        "n_heads": 2,
        "n_layers": 2,
        "dropout": 0.0,
    }
    return PerceiverS(PerceiverSConfig(**{**base, **kw})).double().eval()


def _tokens(b: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(2, V, (b, n), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_loss() -> None:
    m = _model()
    assert m(_tokens(3, 40)).shape == (3, 8, V)  # the last query_len positions
    assert m(_tokens(3, 5)).shape == (3, 5, V)  # shorter than query_len: every position
    batch = collate([np.arange(2, 43), np.arange(2, 20)], pad_value=0, pad_side="left")
    loss, stats = m.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert stats.counts.tolist() == [8 + 8]  # both rows have >= 9 real tokens at the end
    assert abs(loss.item() - stats.mean_nll) < 1e-5  # the loss is computed in float32


def test_causality_query_logits_never_see_later_tokens() -> None:
    m = _model()
    x = _tokens(1, 40)
    base = m(x)  # [1, 8, V] for positions 32..39
    for j in (10, 33, 36, 39):
        y = x.clone()
        y[0, j] = (y[0, j] + 7) % V
        out = m(y)
        before = [i for i in range(8) if 32 + i < j]  # positions < j
        assert torch.equal(out[:, before], base[:, before]), f"token {j} leaked backwards"
        assert not torch.allclose(out[:, -1], base[:, -1]), f"token {j} had no effect at all"


def test_left_padding_changes_no_real_logit() -> None:
    m = _model()
    short = _tokens(1, 20, seed=1)
    alone = m(short)  # [1, 8, V]
    other = _tokens(1, 40, seed=2)
    padded = torch.cat([torch.full((1, 20), 0), short], dim=1)
    mask = torch.cat([torch.zeros(1, 20, dtype=torch.bool), torch.ones(1, 20, dtype=torch.bool)], 1)
    batch_out = m(torch.cat([padded, other]), torch.cat([mask, torch.ones_like(mask)]))
    torch.testing.assert_close(batch_out[:1], alone, rtol=0, atol=1e-10)
    torch.testing.assert_close(batch_out[1:], m(other), rtol=0, atol=1e-10)
    # fewer real tokens than queries: the padded query positions are dropped, real ones agree
    tiny = _tokens(1, 5, seed=3)
    p = torch.cat([torch.zeros(1, 35, dtype=torch.long), tiny], 1)
    pm = torch.arange(40)[None] >= 35
    torch.testing.assert_close(m(p, pm)[:, -5:], m(tiny), rtol=0, atol=1e-10)


def test_right_padding_is_refused_with_the_fix() -> None:
    mask = torch.ones(1, 40, dtype=torch.bool)
    mask[0, -3:] = False
    with pytest.raises(AssertionError, match="pad_side='left'"):
        _model()(_tokens(1, 40), mask)


def test_single_scale_sees_only_its_window() -> None:
    m = _model(scales=[16])
    x = _tokens(2, 40)
    y = x.clone()
    y[:, :24] = _tokens(2, 24, seed=5)  # everything before the last 16 tokens
    assert torch.equal(m(x), m(y))
    y[:, 24] = (y[:, 24] + 1) % V  # the window's first token does count
    assert not torch.equal(m(x), m(y))


def test_cascade_second_layer_reads_old_tokens_only_through_the_first() -> None:
    m = _model()  # scales [None, 16]
    x = _tokens(1, 40)
    y = x.clone()
    y[:, :24] = _tokens(1, 24, seed=6)
    assert not torch.allclose(m(x), m(y))  # the full-context layer sees them
    seen: dict[str, torch.Tensor] = {}
    h1 = m.cross[0].register_forward_hook(lambda _m, _i, out: seen.setdefault("z1", out))
    h2 = m.cross[1].register_forward_hook(lambda _m, _i, out: seen.setdefault("z2", out))
    m(x)
    z1, z2 = seen.pop("z1"), seen.pop("z2")
    h1.remove()
    # second run: old tokens differ, but the second layer gets the first run's queries
    h1 = m.cross[0].register_forward_hook(lambda _m, _i, _out: z1)
    m(y)
    h1.remove()
    h2.remove()
    assert torch.equal(seen["z2"], z2)


@pytest.mark.parametrize(
    ("stride", "prompt_len", "batch"), [(1, 3, 1), (5, 3, 1), (8, 50, 2), (None, 1, 1)]
)
def test_cached_generation_equals_naive(stride: int | None, prompt_len: int, batch: int) -> None:
    m = _model()
    prompt = _tokens(batch, prompt_len, seed=7)
    n = 45  # runs past max_len (40): the window rolls and the query set slides
    out = {}
    for cached in (True, False):
        g = torch.Generator().manual_seed(11)
        out[cached] = m.generate(
            prompt, n, generator=g, stride=stride, cached=cached, return_logits=True
        )
    (tc, lc), (tn, ln) = out[True], out[False]
    assert tc.shape == (batch, prompt_len + n)
    assert torch.equal(tc, tn)
    torch.testing.assert_close(lc, ln, rtol=0, atol=1e-10)


def test_stride_one_is_a_plain_forward_on_the_last_window() -> None:
    m = _model()
    g = torch.Generator().manual_seed(3)
    seq, logits = m.generate(_tokens(1, 30), 15, generator=g, stride=1, return_logits=True)
    for step in (0, 9, 14):
        ctx = seq[:, : 30 + step][:, -40:]
        torch.testing.assert_close(logits[:, step], m(ctx)[:, -1], rtol=0, atol=1e-10)


def test_overfits_a_real_performance_piece() -> None:
    symusic = pytest.importorskip("symusic")
    from musicdata.encodings import get_encoding

    ids = get_encoding("performance").encode(symusic.Score(str(FIXTURES / "chorale_4_4.mid")))
    assert len(ids) > 100, "fixture too short to make windows"
    ends = [9, 40, 80, len(ids)]  # effective segmentation: windows end anywhere, reach 33 back
    batch = collate(
        [ids[max(0, e - 33) : e].astype(np.int64) for e in ends], pad_value=0, pad_side="left"
    )
    torch.manual_seed(0)
    cfg = PerceiverSConfig(
        max_len=32, query_len=8, scales=[None, 8], dim=32, n_heads=2, n_layers=1, dropout=0.0
    )
    m = PerceiverS(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = m.loss(batch)[0].item()
    for _ in range(60):
        loss, _stats = m.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = m.loss(batch)[0].item()
    assert last < 0.5 * first, f"loss {first:.3f} -> {last:.3f} did not halve"


def test_registry_presets_and_config_round_trip() -> None:
    man = ShardManifest(
        encoding="performance",
        config_hash="h",
        kind="flat",
        sub_tokens=["token"],
        vocab_sizes=[V],
        pad_id=0,
        files=[],
    )
    ps, ar = MODELS["perceivers"], MODELS["perceiver-ar"]
    assert (ps.segmentation, ps.pad_side, ar.segmentation, ar.pad_side) == (
        "effective",
        "left",
        "random",
        "left",
    )
    assert ps.presets["paper"]["max_len"] == 32768 and ps.presets["paper"]["n_layers"] == 24
    m = build("perceivers", "debug", man)
    assert isinstance(m, PerceiverS) and m.cfg.scales == [None, 16]
    assert build("perceiver-ar", "debug", man).cfg.scales == [None]
    assert PerceiverSConfig.from_dict(m.cfg.to_dict()) == m.cfg
    with pytest.raises(AssertionError, match="scale 4"):
        PerceiverSConfig(query_len=8, scales=[None, 4])
    assert abs(paper_lr(4000) - 0.03125 / 4000**0.5) < 1e-12 and paper_lr(100) < paper_lr(4000)
