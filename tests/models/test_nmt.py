"""The Nested Music Transformer on real NB tokens and on codec frames (with the delay pattern)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicdata.models.nmt import CrossSubDecoder, NestedMusicTransformer, NMTConfig

MIDI = Path(__file__).parents[1] / "fixtures" / "midi" / "chorale_4_4.mid"
VARIANTS = [
    pytest.param({"sub_decoder": "parallel", "enricher": False}, id="parallel"),
    pytest.param({"sub_decoder": "cross", "enricher": False}, id="cross"),
    pytest.param(
        {"sub_decoder": "cross", "enricher": True, "enricher_window": 2}, id="cross+enricher"
    ),
]


@pytest.fixture(scope="module")
def nb() -> tuple[np.ndarray, list[int], list[str]]:
    """nb-pf tokens [T, F] of a real chorale, its field vocabulary sizes and names."""
    import symusic

    from musicdata.encodings import get_encoding

    enc = get_encoding("nb-pf")
    return enc.encode(symusic.Score(MIDI)).astype(np.int64), enc.sub_vocab_sizes, enc.sub_tokens


def _model(vocab: list[int], names: list[str], **kw: object) -> NestedMusicTransformer:
    torch.manual_seed(0)
    cfg = NMTConfig(
        vocab_sizes=vocab,
        sub_tokens=names,
        pad_id=0,
        max_len=32,
        dim=32,
        n_heads=2,
        n_layers=2,
        dropout=0.0,
    )
    return NestedMusicTransformer(cfg.replace(**kw))


def _codec_model(**kw: object) -> NestedMusicTransformer:
    torch.manual_seed(0)
    cfg = NMTConfig(
        vocab_sizes=[11, 11, 11, 11],
        sub_tokens=["q0", "q1", "q2", "q3"],
        pad_id=None,
        kind="codec",
        max_len=16,
        dim=32,
        n_heads=2,
        n_layers=2,
        dropout=0.0,
    )
    return NestedMusicTransformer(cfg.replace(**kw))


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes(nb: tuple, variant: dict) -> None:
    ids, vocab, names = nb
    m = _model(vocab, names, **variant)
    x = torch.as_tensor(ids[None, :11])
    logits = m(x[:, :-1], x[:, 1:])
    assert [tuple(lg.shape) for lg in logits] == [(1, 10, v) for v in vocab]
    assert NMTConfig.from_dict(m.cfg.to_dict()) == m.cfg


@pytest.mark.parametrize("variant", VARIANTS)
def test_future_tokens_never_change_earlier_logits(nb: tuple, variant: dict) -> None:
    ids, vocab, names = nb
    m = _model(vocab, names, **variant).eval()
    x = torch.as_tensor(ids[None, :21])
    y = x.clone()
    y[0, 13:] = torch.as_tensor(ids[40:48])  # other real notes from position 13 on
    lx, ly = m(x[:, :-1], x[:, 1:]), m(y[:, :-1], y[:, 1:])
    for f, (a, b) in enumerate(zip(lx, ly, strict=True)):
        torch.testing.assert_close(a[:, :12], b[:, :12], msg=f"field {names[f]} saw the future")
    assert any(not torch.allclose(a[:, 12:], b[:, 12:]) for a, b in zip(lx, ly, strict=True))


def test_cross_sub_decoder_field_f_sees_only_earlier_fields_of_its_token(nb: tuple) -> None:
    ids, vocab, names = nb
    m = _model(vocab, names, sub_decoder="cross", enricher=True).eval()
    x = torch.as_tensor(ids[None, :9])
    tgt = x[:, 1:].clone()
    base = m(x[:, :-1], tgt)
    tgt2 = tgt.clone()
    tgt2[..., 3] = (tgt2[..., 3] + 1) % vocab[3]  # change field 3 of every target
    changed = m(x[:, :-1], tgt2)
    for f in range(4):
        torch.testing.assert_close(base[f], changed[f], msg=f"field {f} saw field 3")
    assert not torch.allclose(base[4], changed[4]), "field 4 must depend on field 3"


def test_sampling_step_matches_teacher_forcing(nb: tuple) -> None:
    """Generation decodes fields in order with the same conditionals training optimises."""
    ids, vocab, names = nb
    m = _model(vocab, names, sub_decoder="cross", enricher=True, enricher_window=1).eval()
    assert isinstance(m.sub, CrossSubDecoder)
    x = torch.as_tensor(ids[None, :7])
    teacher = m(x[:, :-1], x[:, 1:])  # position 5 predicts x[6]
    seen: dict[int, torch.Tensor] = {}

    def pick(f: int, logits: torch.Tensor) -> torch.Tensor:
        seen[f] = logits
        return x[:, 6, f]

    with torch.no_grad():
        out = m.sub.step(m.hidden(x[:, :6]), pick)
    assert torch.equal(out, x[:, 6])
    for f in range(len(vocab)):
        torch.testing.assert_close(seen[f], teacher[f][:, 5], msg=f"field {names[f]}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_overfits_a_tiny_batch_of_real_tokens(nb: tuple, variant: dict) -> None:
    ids, vocab, names = nb
    m = _model(vocab, names, **variant)
    tokens = torch.as_tensor(np.stack([ids[:25], ids[30:55]]))  # [2, 25, F]
    mask = torch.ones(2, 25, dtype=torch.bool)
    mask[1, 18:] = False
    tokens[1, 18:] = 0
    _, stats = m.loss({"tokens": tokens, "mask": mask})
    assert stats.tokens == 24 + 17 and stats.counts.tolist() == [41] * len(vocab)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, stats = m.loss({"tokens": tokens, "mask": mask})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert set(stats.to_dict(names)["sub_token_nll"]) == set(names)


@pytest.mark.parametrize("variant", VARIANTS)
def test_generate_valid_ids_in_each_field(nb: tuple, variant: dict) -> None:
    ids, vocab, names = nb
    m = _model(vocab, names, max_len=8, **variant)
    prompt = torch.as_tensor(ids[None, :3])
    gen = torch.Generator().manual_seed(0)
    out = m.generate(prompt, 10, temperature=1.0, top_p=0.95, generator=gen)
    assert out.shape == (1, 13, len(vocab)) and torch.equal(out[:, :3], prompt)
    new = out[0, 3:]
    assert (new >= 1).all(), "PAD (id 0) must never be sampled"
    assert (new < torch.tensor(vocab)).all()
    again = m.generate(
        prompt, 10, temperature=1.0, top_p=0.95, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out, again)


@pytest.mark.parametrize("pattern", ["parallel", "delay"])
def test_codec_layout_loss_and_generation(pattern: str) -> None:
    m = _codec_model(codec_pattern=pattern)
    assert m.cfg.field_sizes == [12] * 4  # one special id per codebook
    frames = torch.randint(0, 11, (2, 9, 4))
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    frames[1, 6:] = 0  # codec padding holds 0
    steps, valid = m.layout(frames, mask)
    delay = 3 if pattern == "delay" else 0
    assert steps.shape == (2, 9 + delay, 4)
    if pattern == "delay":
        assert steps[0, 0].tolist() == [int(frames[0, 0, 0]), 11, 11, 11]
        assert torch.equal(steps[0, 3:12, 3], frames[0, :, 3])  # codebook 3 three steps late
    assert (steps[~valid] == 11).all() and int(valid[1].sum()) == 6 * 4
    loss, stats = m.loss({"tokens": frames, "mask": mask})
    # parallel: frame 0 is never a target; delay: frame 0 of codebooks 1..3 is (after an empty slot)
    expect = [13] * 4 if pattern == "parallel" else [13, 15, 15, 15]
    assert torch.isfinite(loss) and stats.counts.tolist() == expect
    prompt = frames[:1, :3]
    out = m.generate(prompt, 6, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 9, 4) and torch.equal(out[:, :3], prompt)
    assert int(out.min()) >= 0 and int(out.max()) <= 10, "special id never reaches the output"


def test_codec_delay_is_causal_per_codebook() -> None:
    """With the delay pattern, frame t of codebook q is predicted before frame t of q+1 is seen."""
    m = _codec_model(codec_pattern="delay").eval()
    frames = torch.randint(0, 11, (1, 8, 4))
    steps, _ = m.layout(frames, torch.ones(1, 8, dtype=torch.bool))
    later = frames.clone()
    later[0, 5, 2] = (later[0, 5, 2] + 1) % 11  # frame 5, codebook 2 -> step 7
    steps2, _ = m.layout(later, torch.ones(1, 8, dtype=torch.bool))
    a, b = m(steps[:, :-1], steps[:, 1:]), m(steps2[:, :-1], steps2[:, 1:])
    for f in range(4):  # position 6 predicts step 7: only fields after codebook 2 may change
        torch.testing.assert_close(a[f][:, :6], b[f][:, :6])
    for f in range(3):
        torch.testing.assert_close(a[f][:, 6], b[f][:, 6])


@pytest.mark.parametrize("variant", VARIANTS)
def test_safetensors_and_json_round_trip(nb: tuple, variant: dict, tmp_path: Path) -> None:
    """What a checkpoint holds (weights as safetensors, config as JSON) rebuilds the same model."""
    import json

    from safetensors.torch import load_file, save_file

    ids, vocab, names = nb
    m = _model(vocab, names, **variant).eval()
    save_file(m.state_dict(), tmp_path / "w.safetensors")
    cfg = NMTConfig.from_dict(json.loads(json.dumps(m.cfg.to_dict())))
    m2 = NestedMusicTransformer(cfg).eval()
    m2.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x = torch.as_tensor(ids[None, :9])
    for a, b in zip(m(x[:, :-1], x[:, 1:]), m2(x[:, :-1], x[:, 1:]), strict=True):
        torch.testing.assert_close(a, b)
