"""Cadenza end to end: variations of an input, ideas from the prior, interpolation, evaluation.

Composition from the Composer (models/cadenza.py), performance from the Performer
(models/cadenza_performer.py), PerTok id sequences out, which the pertok encoding decodes to MIDI.
The evaluation helpers are pure torch over token ids (no MIDI): reconstruction accuracy, KL per
latent dimension and active units (posterior collapse), pitch-class similarity of a variation to
its input, and the KL divergence between the Performer's velocity / microtiming histograms and
held-out data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from musicdata.models.cadenza import Composer
from musicdata.models.cadenza_performer import Performer
from musicdata.models.cadenza_tokens import TokenRoles, performance_histograms

__all__ = [
    "active_units",
    "histogram_kl",
    "interpolate",
    "kl_per_dim",
    "performance_kl",
    "pitch_class_histogram",
    "pitch_class_similarity",
    "reconstruction_accuracy",
    "sample_prior",
    "variations",
]


def _input_latent(composer: Composer, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """PerTok ids [T] or [1, T] -> (mu [1, Z], logvar [1, Z], composition length)."""
    ids = input_ids.reshape(1, -1).to(composer.step.device)
    comp, cmask = composer.composition(ids)
    assert bool(cmask.any()), "the input holds no composition tokens (only performance/PAD)"
    mu, logvar = composer.encode(comp, cmask)
    return mu, logvar, int(cmask.sum())


@torch.no_grad()
def variations(
    composer: Composer,
    performer: Performer,
    input_ids: torch.Tensor,
    n: int,
    *,
    temperature: float = 1.0,
    spread: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """n variations of one PerTok sequence: z = mu + spread * sigma * eps around the input's
    posterior (spread 0: its mean, 1: a posterior sample), decoded to compositions as long as the
    input's (or `max_new_tokens`), then performed. Inputs longer than the Composer's window are
    cropped to its first max_len + 1 composition tokens. -> n PerTok id tensors [T_i]."""
    assert n >= 1 and spread >= 0, f"need n >= 1 and spread >= 0, got {n}, {spread}"
    was = composer.training
    composer.eval()
    mu, logvar, length = _input_latent(composer, input_ids)
    eps = torch.randn(n, mu.shape[1], generator=generator, device=mu.device)
    z = mu + spread * (0.5 * logvar).exp() * eps  # [n, Z]
    comps = composer.sample_compositions(
        z, max_new_tokens or length, temperature=temperature, top_p=top_p, generator=generator
    )
    composer.train(was)
    return [performer.perform(c, temperature=temperature, generator=generator) for c in comps]


@torch.no_grad()
def sample_prior(
    composer: Composer,
    performer: Performer,
    n: int,
    *,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """n unconditional ideas: z ~ N(0, I), composition of up to `max_new_tokens` (default
    max_len // 2, about one PerTok window), then performed. -> n PerTok id tensors."""
    was = composer.training
    composer.eval()
    device = composer.step.device
    z = torch.randn(n, composer.cfg.latent_dim, generator=generator, device=device)
    length = max_new_tokens or max(composer.cfg.max_len // 2, 1)
    comps = composer.sample_compositions(
        z, length, temperature=temperature, top_p=top_p, generator=generator
    )
    composer.train(was)
    return [performer.perform(c, temperature=temperature, generator=generator) for c in comps]


@torch.no_grad()
def interpolate(
    composer: Composer,
    performer: Performer,
    a: torch.Tensor,
    b: torch.Tensor,
    steps: int,
    *,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Decode `steps` points on the line between the posterior means of PerTok inputs a and b
    (greedy by default, so the path shows the latent space, not sampling noise)."""
    assert steps >= 2, f"interpolation needs at least 2 steps, got {steps}"
    was = composer.training
    composer.eval()
    mu_a, _, len_a = _input_latent(composer, a)
    mu_b, _, len_b = _input_latent(composer, b)
    w = torch.linspace(0.0, 1.0, steps, device=mu_a.device)[:, None]  # [S, 1]
    z = (1 - w) * mu_a + w * mu_b  # [S, Z]
    comps = composer.sample_compositions(
        z, max(len_a, len_b), temperature=temperature, generator=generator
    )
    composer.train(was)
    return [performer.perform(c, temperature=temperature, generator=generator) for c in comps]


# ---- evaluation -------------------------------------------------------------------------------


@torch.no_grad()
def reconstruction_accuracy(
    composer: Composer, batches: Iterable[dict[str, torch.Tensor]]
) -> float:
    """Share of composition tokens the decoder's argmax gets right, teacher-forced from the
    posterior mean z = mu of each window (how much of the input the latent carries back)."""
    was = composer.training
    composer.eval()
    right = total = 0
    for batch in batches:
        comp, cmask = composer.composition(batch["tokens"], batch["mask"])
        mu, _ = composer.encode(comp, cmask)
        pred = composer.decode(composer.teacher_input(comp), mu).argmax(-1)  # [B, T]
        right += int(((pred == comp) & cmask).sum())
        total += int(cmask.sum())
    composer.train(was)
    assert total, "no composition tokens in the batches"
    return right / total


@torch.no_grad()
def kl_per_dim(composer: Composer, batches: Iterable[dict[str, torch.Tensor]]) -> torch.Tensor:
    """[Z] mean KL(q(z_d|x) || N(0, 1)) in nats over all windows (near 0: an unused dimension)."""
    was = composer.training
    composer.eval()
    total, n = None, 0
    for batch in batches:
        kl, mu = composer.kl_stats(batch)
        total = kl * len(mu) if total is None else total + kl * len(mu)
        n += len(mu)
    composer.train(was)
    assert total is not None and n, "no batches"
    return total / n


def active_units(
    composer: Composer, batches: Sequence[dict[str, torch.Tensor]], threshold: float = 0.01
) -> int:
    """Latent dimensions in use (Burda et al. 2016); see Composer.active_units."""
    return composer.active_units(list(batches), threshold)


def pitch_class_histogram(ids: torch.Tensor, roles: TokenRoles) -> torch.Tensor:
    """[12] counts of Pitch_* tokens by pitch class (drum hits are not pitches)."""
    hist = torch.zeros(12, dtype=torch.float64)
    for i in torch.as_tensor(ids).reshape(-1).tolist():
        tok = roles.vocab[i]
        if tok.startswith("Pitch_"):
            hist[int(tok.split("_", 1)[1]) % 12] += 1
    return hist


def pitch_class_similarity(a: torch.Tensor, b: torch.Tensor, roles: TokenRoles) -> float:
    """Cosine similarity of two PerTok sequences' pitch-class histograms, in [0, 1] (1: same
    key content; how related a variation is to its input, against novelty)."""
    ha, hb = pitch_class_histogram(a, roles), pitch_class_histogram(b, roles)
    norm = float(ha.norm() * hb.norm())
    return float(ha @ hb) / norm if norm else 0.0


def histogram_kl(p_counts: torch.Tensor, q_counts: torch.Tensor, alpha: float = 1.0) -> float:
    """KL(P || Q) in nats between two count histograms, both add-alpha smoothed (so a value the
    model never emits costs a finite, large amount instead of infinity)."""
    assert p_counts.shape == q_counts.shape, f"{p_counts.shape} vs {q_counts.shape}"
    p = (p_counts.double() + alpha) / (p_counts.sum() + alpha * len(p_counts))
    q = (q_counts.double() + alpha) / (q_counts.sum() + alpha * len(q_counts))
    return float((p * (p / q).log()).sum())


def performance_kl(
    generated: Sequence[torch.Tensor],
    reference: Sequence[torch.Tensor],
    roles: TokenRoles,
    alpha: float = 1.0,
) -> dict[str, float]:
    """KL(held-out || generated) of the velocity and microtiming token histograms (nats): how far
    the Performer's expressive distribution is from the data's. 0 = the same histogram."""
    gen_v, gen_m = performance_histograms(generated, roles)
    ref_v, ref_m = performance_histograms(reference, roles)
    assert ref_v.sum() > 0, "the reference sequences hold no Velocity tokens"
    return {
        "velocity": histogram_kl(ref_v, gen_v, alpha),
        "microtiming": histogram_kl(ref_m, gen_m, alpha),
    }
