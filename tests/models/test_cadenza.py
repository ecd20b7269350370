"""Cadenza on real PerTok tokens of the fixture MIDI: token roles, Composer VAE, Performer,
variations, prior samples, interpolation, evaluation helpers, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import symusic
import torch

from musicdata.encodings import get_encoding
from musicdata.models.builders import build, build_config, count_parameters
from musicdata.models.cadenza import Composer, ComposerConfig, kl_beta, kl_term
from musicdata.models.cadenza_performer import Performer, PerformerConfig
from musicdata.models.cadenza_tokens import (
    IGNORE,
    MICROTIMED,
    NOTE_ON,
    TokenRoles,
    add_performance,
    align_performance,
    strip_performance,
)
from musicdata.models.cadenza_variations import (
    active_units,
    interpolate,
    kl_per_dim,
    performance_kl,
    pitch_class_similarity,
    reconstruction_accuracy,
    sample_prior,
    variations,
)
from musicdata.schemas.manifest import ShardManifest

MIDI = Path(__file__).parent.parent / "fixtures" / "midi"
REAL = ["chorale_4_4", "cut_time_2_2", "folk_6_8", "multitrack_tempo_change", "waltz_3_4"]
ENC = get_encoding("pertok")


@pytest.fixture(scope="module")
def pieces() -> dict[str, torch.Tensor]:
    return {
        n: torch.as_tensor(ENC.encode(symusic.Score(str(MIDI / f"{n}.mid"))), dtype=torch.long)
        for n in REAL
    }


@pytest.fixture(scope="module")
def manifest() -> ShardManifest:
    voc = ENC.tokenizer.vocab
    vocab = [""] * len(voc)
    for tok, i in voc.items():
        vocab[i] = tok
    return ShardManifest(
        encoding="pertok",
        config_hash=ENC.config_hash,
        kind="flat",
        sub_tokens=["token"],
        vocab_sizes=[len(vocab)],
        pad_id=0,
        files=[],
        extra={"vocab": [vocab]},
    )


@pytest.fixture(scope="module")
def roles(manifest: ShardManifest) -> TokenRoles:
    return TokenRoles.from_vocab(manifest.extra["vocab"])


def windows(pieces: dict[str, torch.Tensor], length: int, per_piece: int = 1, offset: int = 0):
    """Right-padded PerTok windows [B, length] as the loader cuts them (the last may be short)."""
    rows = []
    for ids in pieces.values():
        for k in range(per_piece):
            rows.append(ids[offset + k * length : offset + (k + 1) * length])
    tokens = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)], mask[i, : len(r)] = r, True
    return {"tokens": tokens, "mask": mask}


def notes(ids: torch.Tensor) -> list[tuple[int, int, int, int]]:
    score = ENC.decode(ids.numpy())
    return sorted((n.time, n.pitch, n.duration, n.velocity) for t in score.tracks for n in t.notes)


def assert_valid_pertok(ids: torch.Tensor, roles: TokenRoles) -> None:
    """Ids in range; a MicroTiming right after every micro-timed token, a Velocity after every
    note-on's MicroTiming, and performance tokens nowhere else."""
    assert ids.dim() == 1 and ids.dtype == torch.long
    assert int(ids.min()) >= 0 and int(ids.max()) < len(roles.vocab)
    toks = [roles.vocab[i] for i in ids.tolist()]
    expected = set()
    for i, t in enumerate(toks):
        kind = t.split("_")[0]
        assert kind not in ("PAD", "BOS", "MASK"), f"special token {t} at {i}"
        if kind in MICROTIMED:
            assert toks[i + 1].startswith("MicroTiming_"), f"{t} at {i} not micro-timed"
            expected.add(i + 1)
        if kind in NOTE_ON:
            assert toks[i + 2].startswith("Velocity_"), f"{t} at {i} has no velocity"
            expected.add(i + 2)
    perf = {i for i, t in enumerate(toks) if t.startswith(("Velocity_", "MicroTiming_"))}
    assert perf == expected, "performance tokens out of place"


def debug_models(manifest: ShardManifest, **kw: object) -> tuple[Composer, Performer]:
    torch.manual_seed(0)
    composer = build("cadenza", "debug", manifest, **kw)
    performer = build("cadenza-performer", "debug", manifest)
    assert isinstance(composer, Composer) and isinstance(performer, Performer)
    return composer, performer


# ---- token roles -------------------------------------------------------------------------------


def test_strip_align_round_trip_keeps_notes(pieces, roles) -> None:
    tables = roles.tables()
    for name, ids in pieces.items():
        comp, cmask, tgt = align_performance(ids[None], None, tables, roles.pad_id)
        c = comp[0][cmask[0]]
        assert not bool(tables["is_perf"][c].any()), f"{name}: performance left in composition"
        ok = tables["next_ok"][c[:-1], c[1:]]
        assert bool(ok.all()), (
            f"{name}: real data breaks the sampling grammar at {ok.logical_not().nonzero()}"
        )
        back = add_performance(c, tgt[0, :, 0][cmask[0]], tgt[0, :, 1][cmask[0]], roles)
        assert torch.equal(back, ids), f"{name}: strip + add is not the identity"
        # the composition alone (neutral performance) keeps every note: pitch, grid onset, length
        neutral = torch.full_like(c, -1)
        plain = notes(add_performance(c, neutral, neutral, roles))
        real = notes(ids)
        assert len(plain) == len(real) > 0
        assert sorted(p for _, p, _, _ in plain) == sorted(p for _, p, _, _ in real)
        mt_max = int(ENC.params["max_microtiming_shift"] * 480)
        for (t0, _, d0, _), (t1, _, d1, _) in zip(sorted(plain), sorted(real), strict=True):
            assert abs(t0 - t1) <= mt_max and d0 == d1, f"{name}: note moved beyond microtiming"


def test_align_on_padded_windows(pieces, roles) -> None:
    """Windows cut mid-note: orphan performance tokens at the start are dropped, targets of a
    note whose Velocity fell outside the window are IGNORE, padding gets no targets."""
    tables = roles.tables()
    batch = windows(pieces, 37, per_piece=2, offset=5)
    comp, cmask, tgt = align_performance(batch["tokens"], batch["mask"], tables, roles.pad_id)
    assert comp.shape == cmask.shape == tgt.shape[:2] and tgt.shape[2] == 2
    assert bool((tgt[~cmask] == IGNORE).all()) and bool((comp[~cmask] == roles.pad_id).all())
    has_vel = tgt[..., 0] != IGNORE
    assert bool(tables["vel_slot"][comp][has_vel].all()), "a velocity on a non-note token"
    for i in range(len(comp)):
        row = batch["tokens"][i][batch["mask"][i]]
        first = int((~tables["is_perf"][row]).nonzero()[0])
        back = add_performance(
            comp[i][cmask[i]], tgt[i, :, 0][cmask[i]], tgt[i, :, 1][cmask[i]], roles
        )
        kept = row[first:]
        if not torch.equal(back, kept):  # only a note cut at the window's end may differ
            assert torch.equal(back[: len(kept) - 2], kept[: len(kept) - 2])
    assert strip_performance(batch["tokens"], batch["mask"], tables, roles.pad_id)[0].equal(comp)


# ---- Composer --------------------------------------------------------------------------------


def test_decoder_depends_on_latent_at_every_layer(manifest, pieces) -> None:
    composer, _ = debug_models(manifest, dec_layers=3)
    composer.eval()
    comp, _ = composer.composition(windows(pieces, 40)["tokens"])
    inp = composer.teacher_input(comp)
    z1, z2 = torch.zeros(len(comp), 8), torch.randn(len(comp), 8)
    logits1, hid1 = composer.decode(inp, z1, return_hidden=True)
    logits2, hid2 = composer.decode(inp, z2, return_hidden=True)
    assert len(hid1) == 3
    for layer, (a, b) in enumerate(zip(hid1, hid2, strict=True)):
        # every position of every layer moves with z (position 0 sees only BOS: only z differs)
        diff = (a - b).abs().amax(dim=-1)  # [B, T]
        assert bool((diff > 1e-4).all()), f"decoder layer {layer} ignores the latent"
    assert not torch.allclose(logits1, logits2)
    # in-attention: every block's input is the previous layer's output plus the projected latent
    inputs: list[torch.Tensor] = []
    hooks = [
        b.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for b in composer.dec_blocks
    ]
    _, hid = composer.decode(inp, z2, return_hidden=True)
    for h in hooks:
        h.remove()
    cond = composer.latent_in(z2)[:, None, :]
    for layer in range(1, 3):
        torch.testing.assert_close(inputs[layer], hid[layer - 1] + cond)


def test_free_bits_floor_and_schedules(manifest, pieces) -> None:
    mu = torch.zeros(4, 8, requires_grad=True)
    logvar = torch.zeros(4, 8, requires_grad=True)
    penalty, kl = kl_term(mu, logvar, free_bits=0.25)
    assert (
        float(penalty.detach()) == pytest.approx(0.25 * 8) and float(kl.detach().abs().max()) == 0.0
    )
    penalty.backward()
    assert float(mu.grad.abs().max()) == 0 and float(logvar.grad.abs().max()) == 0
    big = torch.full((4, 8), 2.0)
    penalty, kl = kl_term(big, torch.zeros(4, 8), free_bits=0.25)
    assert float(penalty) == pytest.approx(8 * 2.0) and bool((kl == 2.0).all())
    # the floor holds for the model's own penalty: never below free_bits * Z
    composer, _ = debug_models(manifest)
    batch = windows(pieces, 40)
    comp, cmask = composer.composition(batch["tokens"], batch["mask"])
    p, _ = kl_term(*composer.encode(comp, cmask), composer.cfg.free_bits)
    assert float(p.detach()) >= composer.cfg.free_bits * composer.cfg.latent_dim - 1e-6
    lin = composer.cfg
    assert kl_beta(lin, 0) == 0 and kl_beta(lin, lin.kl_warmup_steps) == lin.beta_max
    assert kl_beta(lin, 10 * lin.kl_warmup_steps) == lin.beta_max
    cyc = lin.replace(kl_schedule="cyclical", kl_warmup_steps=100, kl_cycle_ratio=0.5)
    assert [kl_beta(cyc, s) for s in (0, 25, 50, 99, 100, 125)] == [0, 0.5, 1, 1, 0, 0.5]


def fit(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@pytest.fixture(scope="module")
def trained(manifest, pieces):
    """Debug Composer and Performer overfit on one window per fixture piece (shared by the
    generation tests, so they decode real notes rather than an untrained model's noise)."""
    composer, performer = debug_models(manifest, kl_warmup_steps=30)
    batch = windows(pieces, 65)
    composer.eval()
    acc0 = reconstruction_accuracy(composer, [batch])
    c_losses, p_losses = fit(composer, batch, 80), fit(performer, batch, 40)
    return {
        "composer": composer,
        "performer": performer,
        "batch": batch,
        "acc0": acc0,
        "c_losses": c_losses,
        "p_losses": p_losses,
    }


def test_composer_overfits_tiny_batch(trained) -> None:
    composer, batch, losses = trained["composer"], trained["batch"], trained["c_losses"]
    assert int(composer.step) == 80 and composer.last_beta == composer.cfg.beta_max
    # the total loss carries the free-bits KL floor at full beta by step 80, so it falls less than
    # the reconstruction NLL (which must halve, below)
    assert losses[-1] < 0.6 * losses[0], f"loss {losses[0]:.2f} -> {losses[-1]:.2f}"
    _, stats = composer.loss(batch)
    assert int(composer.step) == 80, "eval-mode loss must not advance the KL schedule"
    n_comp = int(composer.composition(batch["tokens"], batch["mask"])[1].sum())
    assert stats.counts.tolist() == [n_comp] and stats.mean_nll < 0.5 * losses[0]
    assert composer.last_kl_per_dim.shape == (8,)
    assert reconstruction_accuracy(composer, [batch]) > trained["acc0"] + 0.2
    kl = kl_per_dim(composer, [batch])
    assert kl.shape == (8,) and bool((kl >= 0).all())
    assert 0 <= active_units(composer, [batch]) <= 8


def test_performer_overfits_tiny_batch(trained, roles) -> None:
    performer, batch, losses = trained["performer"], trained["batch"], trained["p_losses"]
    assert losses[-1] < 0.5 * losses[0], f"loss {losses[0]:.2f} -> {losses[-1]:.2f}"
    _, stats = performer.loss(batch)
    names = stats.to_dict(performer.cfg.sub_tokens)["sub_token_nll"]
    assert names.keys() == {"velocity", "microtiming"}
    assert stats.mean_nll < 0.5 * losses[0]
    # re-performing the training windows at temperature 0 matches the data's histograms closely
    comp = performer.generate(batch["tokens"][:, :65], temperature=0.0)
    gen = [r[r != roles.pad_id] for r in comp]
    ref = [r[m] for r, m in zip(batch["tokens"], batch["mask"], strict=True)]
    kl = performance_kl(gen, ref, roles)
    assert kl["velocity"] < 0.5 and kl["microtiming"] < 0.5
    assert performance_kl(ref, ref, roles) == {"velocity": 0.0, "microtiming": 0.0}


# ---- generation ------------------------------------------------------------------------------


def test_variations_valid_pertok(trained, pieces, roles) -> None:
    composer, performer = trained["composer"], trained["performer"]
    src = pieces["folk_6_8"][:60]
    g = torch.Generator().manual_seed(1)
    outs = variations(composer, performer, src, 3, temperature=1.0, spread=1.0, generator=g)
    assert len(outs) == 3
    for ids in outs:
        assert_valid_pertok(ids, roles)
        assert 0.0 <= pitch_class_similarity(ids, src, roles) <= 1.0
    g = torch.Generator().manual_seed(1)
    again = variations(composer, performer, src, 3, temperature=1.0, spread=1.0, generator=g)
    assert all(torch.equal(a, b) for a, b in zip(outs, again, strict=True)), "not reproducible"
    same = variations(composer, performer, src, 2, temperature=0.0, spread=0.0)
    assert torch.equal(same[0], same[1]), "spread 0 at temperature 0 must decode the mean"
    assert pitch_class_similarity(src, src, roles) == pytest.approx(1.0)


def test_prior_samples_and_interpolation_decode_to_midi(trained, pieces, roles, tmp_path) -> None:
    composer, performer = trained["composer"], trained["performer"]
    g = torch.Generator().manual_seed(2)
    samples = sample_prior(composer, performer, 2, max_new_tokens=40, generator=g)
    path = interpolate(composer, performer, pieces["waltz_3_4"][:50], pieces["chorale_4_4"][:50], 3)
    assert len(samples) == 2 and len(path) == 3
    for i, ids in enumerate(samples + path):
        assert_valid_pertok(ids, roles)
        out = tmp_path / f"{i}.mid"
        ENC.decode(ids.numpy()).dump_midi(str(out))
        assert symusic.Score(str(out)).note_num() > 0, f"sample {i} decodes to no notes"


def test_generate_contract(manifest, pieces, roles) -> None:
    composer, performer = debug_models(manifest)
    prompt = pieces["chorale_4_4"][None, :20]
    out = composer.generate(prompt, 12, generator=torch.Generator().manual_seed(0))
    assert out.shape[0] == 1 and torch.equal(out[0, :20], prompt[0])
    assert_valid_pertok(out[0][out[0] != roles.pad_id], roles)
    re = performer.generate(prompt, 0, temperature=0.0)
    tables = roles.tables()
    assert strip_performance(re, None, tables, 0)[0].equal(
        strip_performance(prompt, None, tables, 0)[0]
    )


# ---- registry --------------------------------------------------------------------------------


def test_registry_config_round_trip(manifest) -> None:
    composer, performer = debug_models(manifest)
    for model, cls in ((composer, ComposerConfig), (performer, PerformerConfig)):
        cfg = cls.from_dict(json.loads(json.dumps(model.cfg.to_dict())))
        assert cfg == model.cfg
        twin = type(model)(cfg)
        twin.load_state_dict(model.state_dict())
    assert performer.cfg.vocab_sizes == [32, 31]
    assert build_config("cadenza", "paper", manifest).latent_dim == 128
    # sizes without allocating (meta device): the role tables must still build on the CPU
    sizes = [count_parameters("cadenza", p, manifest) for p in ("debug", "small", "paper")]
    assert sizes == sorted(sizes) and sizes[0] == sum(x.numel() for x in composer.parameters())
    bare = ShardManifest(**{**manifest.to_dict(), "files": [], "extra": {}})
    with pytest.raises(ValueError, match="extra\\['vocab'\\]"):
        build("cadenza", "debug", bare)
