"""Cadenza (Lenz & Mani 2024, arXiv 2410.02060): a Composer VAE and a Performer over PerTok.

What is played and how it is played are learned apart (models/cadenza_tokens.py splits them):

- `Composer`: a transformer VAE over composition sequences (PerTok without Velocity and
  MicroTiming). A bidirectional encoder mean-pools to q(z|x) = N(mu, diag(exp(logvar))); a causal
  decoder with rotary positions reconstructs the sequence from BOS. In-attention conditioning
  (MuseMorphose, Wu & Yang 2023): z is projected once and added to the hidden state before every
  decoder layer, so no layer can ignore it. KL warm-up (linear or cyclical, by training step) and a
  free-bits floor per latent dimension (Kingma et al. 2016) keep the posterior from collapsing.
- `Performer`: a bidirectional transformer over the composition that predicts, per position, the
  Velocity and the MicroTiming that follow it: two heads over local vocabularies (the sorted
  Velocity_* / MicroTiming_* ids), so it can never emit a non-performance token. Trained apart.
  (models/cadenza_performer.py)
- `variations` / `sample_prior` / `interpolate` and the evaluation helpers: composition from the
  Composer, performance from the Performer, PerTok ids out (models/cadenza_variations.py).

Both models read the same PerTok windows (tokens [B, L], mask [B, L]) and strip them internally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from musicdata.models.builders import ModelSpec, register
from musicdata.models.cadenza_performer import Performer, PerformerConfig
from musicdata.models.cadenza_tokens import (
    TokenRoles,
    add_performance,
    align_performance,
    attach_roles,
    module_tables,
    pad_rows,
    strip_performance,
)
from musicdata.models.modules import (
    Block,
    ModelConfig,
    RotaryEmbedding,
    Transformer,
    init_weights,
    sample,
)
from musicdata.models.modules import compound_cross_entropy as mean_ce
from musicdata.models.nll import NLLStats, sub_token_nll
from musicdata.schemas.manifest import ShardManifest

__all__ = ["Composer", "ComposerConfig", "Performer", "PerformerConfig", "kl_beta", "kl_term"]


@dataclass(frozen=True)
class ComposerConfig(ModelConfig):
    vocab_sizes: list[int] = field(default_factory=lambda: [0])  # [V] of the full PerTok vocab
    sub_tokens: list[str] = field(default_factory=lambda: ["token"])
    pad_id: int | None = 0
    max_len: int = 256  # PerTok window the loader cuts (the composition is about half of it)
    dropout: float = 0.1
    vocab: tuple[str, ...] = ()  # PerTok token strings, index = id (manifest.extra["vocab"])
    dim: int = 256
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 4
    mlp_ratio: float = 4.0
    latent_dim: int = 64
    kl_schedule: str = "cyclical"  # "linear" | "cyclical" | "constant"
    kl_warmup_steps: int = 2000  # linear: steps to reach beta_max; cyclical: one cycle's length
    kl_cycle_ratio: float = 0.5  # cyclical: share of a cycle spent rising (Fu et al. 2019)
    beta_max: float = 1.0
    free_bits: float = 0.25  # nats per latent dimension, batch mean, below which KL is free

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", tuple(self.vocab))  # JSON gives a list
        assert self.vocab, (
            "ComposerConfig.vocab is empty: build through "
            "musicdata.models.builders.build('cadenza', ...) "
            "with a PerTok manifest whose extra['vocab'] lists the token strings"
        )
        assert self.vocab_sizes == [len(self.vocab)], (
            f"vocab_sizes {self.vocab_sizes} != [{len(self.vocab)}] PerTok token strings"
        )
        assert self.dim % self.n_heads == 0, f"dim {self.dim} % n_heads {self.n_heads} != 0"
        assert self.kl_schedule in ("linear", "cyclical", "constant"), self.kl_schedule
        assert 0 < self.kl_cycle_ratio <= 1, f"kl_cycle_ratio {self.kl_cycle_ratio}"


def kl_beta(cfg: ComposerConfig, step: int) -> float:
    """KL weight at training step `step`: linear warm-up, or cyclical (rise, then hold, repeat)."""
    if cfg.kl_schedule == "constant":
        return cfg.beta_max
    warm = max(cfg.kl_warmup_steps, 1)
    if cfg.kl_schedule == "linear":
        return cfg.beta_max * min(1.0, step / warm)
    rise = max(cfg.kl_cycle_ratio * warm, 1.0)
    return cfg.beta_max * min(1.0, (step % warm) / rise)


def kl_term(
    mu: torch.Tensor, logvar: torch.Tensor, free_bits: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(q(z|x) || N(0, I)) with a free-bits floor: mu, logvar [B, Z] -> (penalty, kl [Z]).

    kl[d] is the batch mean of dimension d's KL (nats); penalty = sum_d max(kl[d], free_bits), so
    a dimension under the floor costs a constant and gets no gradient pushing it to collapse."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)  # [B, Z]
    kl_dim = kl.mean(dim=0)  # [Z]
    return kl_dim.clamp(min=free_bits).sum(), kl_dim


class Composer(nn.Module):
    def __init__(self, cfg: ComposerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.roles = attach_roles(self, cfg.vocab)
        v, d = len(cfg.vocab), cfg.dim
        self.tok_emb = nn.Embedding(v, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Transformer(cfg.enc_layers, d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
        self.to_latent = nn.Linear(d, 2 * cfg.latent_dim)  # -> [mu, logvar]
        self.latent_in = nn.Linear(cfg.latent_dim, d)  # in-attention: added before each layer
        self.rope = RotaryEmbedding(d // cfg.n_heads)
        self.dec_blocks = nn.ModuleList(
            Block(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.dec_layers)
        )
        self.dec_ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, v, bias=False)
        init_weights(self, cfg.enc_layers + cfg.dec_layers)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # drives the KL schedule
        self.last_kl_per_dim: torch.Tensor | None = None  # [Z] of the last loss() call
        self.last_beta: float = 0.0
        # the decoder never emits performance, PAD, BOS or MASK ids
        self.register_buffer("never", self.t_is_perf | self.t_special, persistent=False)

    # ---- composition, encoder, decoder ----------------------------------------------------
    def composition(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PerTok ids [B, L] -> composition [B, L'] + mask, cropped to max_len + 1 tokens."""
        mask = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask
        mask = mask & (tokens != self.roles.bos_id)  # a BOS in the data is implied by ours
        comp, cmask = strip_performance(tokens, mask, module_tables(self), self.roles.pad_id)
        return comp[:, : self.cfg.max_len + 1], cmask[:, : self.cfg.max_len + 1]

    def encode(self, comp: torch.Tensor, cmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """composition [B, T] + mask -> mu, logvar [B, Z] (masked mean pool of the encoder)."""
        x = self.drop(self.tok_emb(comp))  # [B, T, D]
        h = self.encoder(x, mask=cmask[:, None, None, :], is_causal=False)  # [B, T, D]
        w = cmask.unsqueeze(-1).to(h.dtype)
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)  # [B, D]
        mu, logvar = self.to_latent(pooled).chunk(2, dim=-1)
        return mu, logvar.clamp(-20.0, 10.0)

    def decode(
        self, inp: torch.Tensor, z: torch.Tensor, *, return_hidden: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """inp [B, T] (BOS first) and z [B, Z] -> logits [B, T, V] (position t predicts t + 1);
        with return_hidden also each decoder layer's output [B, T, D]."""
        assert z.shape == (inp.shape[0], self.cfg.latent_dim), f"z {tuple(z.shape)}"
        h = self.drop(self.tok_emb(inp))  # [B, T, D]
        cond = self.latent_in(z)[:, None, :]  # [B, 1, D]
        hidden = []
        for block in self.dec_blocks:
            h = block(h + cond, is_causal=True, rope=self.rope)  # in-attention conditioning
            hidden.append(h)
        logits = self.head(self.dec_ln(h))
        return (logits, hidden) if return_hidden else logits

    def teacher_input(self, comp: torch.Tensor) -> torch.Tensor:
        """Decoder input: BOS, then the composition shifted right by one."""
        bos = torch.full_like(comp[:, :1], self.roles.bos_id)
        return torch.cat([bos, comp[:, :-1]], dim=1)

    # ---- training ---------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, NLLStats]:
        """Negative ELBO per composition token: NLL + beta * KL(free bits) / tokens per sequence.

        Training samples z from q(z|x) and advances the KL schedule; eval mode decodes from the
        posterior mean, so validation NLL is deterministic."""
        comp, cmask = self.composition(batch["tokens"], batch["mask"])  # [B, T]
        mu, logvar = self.encode(comp, cmask)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu) if self.training else mu
        logits = self.decode(self.teacher_input(comp), z)  # [B, T, V]
        nll = mean_ce([logits], comp[..., None], cmask)
        penalty, kl_dim = kl_term(mu, logvar, self.cfg.free_bits)
        beta = kl_beta(self.cfg, int(self.step))
        per_seq = cmask.sum().clamp(min=1).to(nll.dtype) / comp.shape[0]
        loss = nll + beta * penalty / per_seq
        if self.training:
            self.step += 1
        self.last_kl_per_dim, self.last_beta = kl_dim.detach(), beta
        with torch.no_grad():
            stats = sub_token_nll(logits.detach(), comp, cmask)
        return loss, stats

    @torch.no_grad()
    def kl_stats(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (kl per latent dimension [Z], posterior means [B, Z]) of one batch, no update."""
        comp, cmask = self.composition(batch["tokens"], batch["mask"])
        mu, logvar = self.encode(comp, cmask)
        return kl_term(mu, logvar, 0.0)[1], mu

    @torch.no_grad()
    def active_units(self, batches: list[dict[str, torch.Tensor]], threshold: float = 0.01) -> int:
        """Latent dimensions whose posterior mean varies over the data: Cov_x(E_q[z_d]) >
        threshold (Burda et al. 2016). Few active units = posterior collapse."""
        was = self.training
        self.eval()
        mus = torch.cat([self.kl_stats(b)[1] for b in batches])  # [N, Z]
        self.train(was)
        assert mus.shape[0] >= 2, "active units need at least two sequences"
        return int((mus.var(dim=0) > threshold).sum())

    # ---- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def sample_compositions(
        self,
        z: torch.Tensor,
        max_new_tokens: int,
        *,
        prefix: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode z [N, Z] (after an optional composition prefix [N, T0]) -> [N, T0 + new]
        composition ids under PerTok's note grammar (cadenza_tokens.TokenRoles.grammar), so
        every sampled note decodes; a row that emits EOS is padded after it."""
        n = z.shape[0]
        bos = torch.full((n, 1), self.roles.bos_id, dtype=torch.long, device=z.device)
        seq = bos if prefix is None else torch.cat([bos, prefix.to(z.device)], dim=1)
        done = torch.zeros(n, dtype=torch.bool, device=z.device)
        eos, pad = self.roles.eos_id, self.roles.pad_id
        for _ in range(max_new_tokens):
            logits = self.decode(seq[:, -(self.cfg.max_len + 1) :], z)[:, -1].float()  # [N, V]
            banned = self.never | ~self.t_next_ok[seq[:, -1]]  # [N, V]
            logits = logits.masked_fill(banned, float("-inf"))
            nxt = sample(logits, temperature, top_p, top_k, generator)  # [N]
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == eos if eos is not None else torch.zeros_like(done)
            if bool(done.all()):
                break
        return seq[:, 1:]

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """PerTok prompt [B, T0] -> prompt + continuation, z ~ N(0, I). `max_new_tokens` counts
        composition tokens; the new notes get neutral performance (MicroTiming 0, velocity ~64;
        use `sample_prior` with a Performer for an expressive one). Rows right-padded with PAD."""
        was = self.training
        self.eval()
        z = torch.randn(
            prompt.shape[0], self.cfg.latent_dim, generator=generator, device=prompt.device
        )
        rows = []
        for i in range(prompt.shape[0]):
            head, prefix = self._complete_prompt(prompt[i])
            new = self.sample_compositions(
                z[i : i + 1],
                max_new_tokens,
                prefix=prefix[None],
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                generator=generator,
            )[0, len(prefix) :]
            neutral = torch.full_like(new, -1)
            rows.append(torch.cat([head, add_performance(new, neutral, neutral, self.roles)]))
        self.train(was)
        return pad_rows(rows, self.roles.pad_id).to(prompt.device)

    def _complete_prompt(self, row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One PerTok prompt [T0] -> (the prompt, plus neutral performance tokens if it stops
        mid-note, so new notes start cleanly; its composition without BOS, the decoder prefix)."""
        row = row[row != self.roles.pad_id].cpu()
        tables = {k: v.cpu() for k, v in module_tables(self).items()}
        comp, cmask, tgt = align_performance(row[None], None, tables, self.roles.pad_id)
        c, keep = comp[0], cmask[0]
        kept = (~tables["is_perf"][row]).nonzero()
        first = int(kept[0]) if len(kept) else len(row)  # performance before the first note
        done = add_performance(c[keep], tgt[0, :, 0][keep], tgt[0, :, 1][keep], self.roles)
        prefix = c[keep]
        return torch.cat([row[:first], done]), prefix[prefix != self.roles.bos_id].to(
            self.step.device
        )


# ---- registry -------------------------------------------------------------------------------


def _vocab_of(m: ShardManifest) -> tuple[str, ...]:
    vocab = m.extra.get("vocab")
    if not vocab:
        msg = (
            f"manifest of {m.encoding!r} ({m.config_hash}) has no extra['vocab']: Cadenza needs "
            "the PerTok token strings to find Velocity/MicroTiming ids; re-export the manifest"
        )
        raise ValueError(msg)
    return tuple(TokenRoles.from_vocab(vocab).vocab)


def _performer_fields(m: ShardManifest) -> dict[str, object]:
    roles = TokenRoles.from_vocab(_vocab_of(m))
    sizes = [len(roles.velocity_ids), len(roles.microtiming_ids)]
    return {"vocab": roles.vocab, "vocab_sizes": sizes, "sub_tokens": ["velocity", "microtiming"]}


# Sizes: the paper states none. "paper" ASSUMES MuseMorphose's (the in-attention VAE Cadenza builds
# on): 512 wide, 8 heads, 12 + 12 layers, 128-d latent, cyclical beta up to 1, free bits 0.25,
# dropout 0.1; a 512-token PerTok window (a few bars: an "idea"); a 6-layer Performer as wide.
_DEBUG = {"dim": 32, "n_heads": 2, "max_len": 64, "dropout": 0.0}
register(
    ModelSpec(
        name="cadenza",
        config_cls=ComposerConfig,
        model_cls=Composer,
        kinds=("pertok",),
        presets={
            "debug": {
                **_DEBUG,
                "enc_layers": 1,
                "dec_layers": 2,
                "latent_dim": 8,
                "kl_schedule": "linear",
                "kl_warmup_steps": 20,
                "free_bits": 0.1,
            },
            "small": {
                "dim": 128,
                "n_heads": 4,
                "enc_layers": 2,
                "dec_layers": 4,
                "latent_dim": 32,
                "max_len": 256,
                "kl_warmup_steps": 1000,
            },
            "paper": {
                "dim": 512,
                "n_heads": 8,
                "enc_layers": 12,
                "dec_layers": 12,
                "latent_dim": 128,
                "max_len": 512,
                "kl_warmup_steps": 5000,
            },
        },
        segmentation="stride",
        from_manifest=lambda m: {"vocab": _vocab_of(m)},
        description="Cadenza Composer: transformer VAE over PerTok compositions (in-attention)",
    )
)
register(
    ModelSpec(
        name="cadenza-performer",
        config_cls=PerformerConfig,
        model_cls=Performer,
        kinds=("pertok",),
        presets={
            "debug": {**_DEBUG, "n_layers": 2},
            "small": {"dim": 128, "n_heads": 4, "n_layers": 4, "max_len": 256},
            "paper": {"dim": 512, "n_heads": 8, "n_layers": 6, "max_len": 512},
        },
        segmentation="stride",
        from_manifest=_performer_fields,
        description="Cadenza Performer: velocity/microtiming of a PerTok composition",
    )
)
