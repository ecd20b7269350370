"""The Cadenza Performer (Lenz & Mani 2024, arXiv 2410.02060): performance for a composition.

A bidirectional transformer reads the composition (PerTok without Velocity / MicroTiming) and
predicts, for every position, the Velocity and the MicroTiming token that follow it there. Two
heads over local vocabularies (the sorted Velocity_* and MicroTiming_* ids of the PerTok vocab),
so it can only ever emit performance tokens and its NLL is reported per kind
(sub_tokens ["velocity", "microtiming"]). Positions with no such token (Bar, TimeShift, Duration,
a note cut off by the window) are ignored in the loss. Trained apart from the Composer, so a small
performance set can teach a style. Reads the same PerTok windows as the Composer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from musicdata.models.cadenza_tokens import (
    TokenRoles,
    add_performance,
    align_performance,
    attach_roles,
    module_tables,
    pad_rows,
    strip_performance,
)
from musicdata.models.modules import ModelConfig, Transformer, init_weights, sample
from musicdata.models.modules import compound_cross_entropy as mean_ce
from musicdata.models.nll import NLLStats, sub_token_nll

__all__ = ["Performer", "PerformerConfig"]


@dataclass(frozen=True)
class PerformerConfig(ModelConfig):
    vocab_sizes: list[int] = field(default_factory=lambda: [0, 0])  # [n_velocity, n_microtiming]
    sub_tokens: list[str] = field(default_factory=lambda: ["velocity", "microtiming"])
    pad_id: int | None = 0
    max_len: int = 256  # PerTok window the loader cuts
    dropout: float = 0.1
    vocab: tuple[str, ...] = ()  # PerTok token strings (input vocabulary), index = id
    dim: int = 256
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", tuple(self.vocab))  # JSON gives a list
        assert self.vocab, "PerformerConfig.vocab is empty: build it from a PerTok manifest"
        roles = TokenRoles.from_vocab(self.vocab)
        sizes = [len(roles.velocity_ids), len(roles.microtiming_ids)]
        assert self.vocab_sizes == sizes, f"vocab_sizes {self.vocab_sizes} != head sizes {sizes}"
        assert self.dim % self.n_heads == 0, f"dim {self.dim} % n_heads {self.n_heads} != 0"


class Performer(nn.Module):
    def __init__(self, cfg: PerformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.roles = attach_roles(self, cfg.vocab)
        d = cfg.dim
        self.tok_emb = nn.Embedding(len(cfg.vocab), d)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Transformer(cfg.n_layers, d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
        self.vel_head = nn.Linear(d, cfg.vocab_sizes[0])
        self.mt_head = nn.Linear(d, cfg.vocab_sizes[1])
        init_weights(self, cfg.n_layers)

    def forward(
        self, comp: torch.Tensor, cmask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """composition [B, T] -> velocity logits [B, T, n_vel], microtiming logits [B, T, n_mt]."""
        assert comp.dim() == 2, f"composition ids must be [B, T], got {tuple(comp.shape)}"
        mask = None if cmask is None else cmask[:, None, None, :]
        h = self.encoder(self.drop(self.tok_emb(comp)), mask=mask, is_causal=False)
        return self.vel_head(h), self.mt_head(h)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, NLLStats]:
        """Mean over the two heads of the NLL of the true velocity / microtiming per position."""
        comp, cmask, targets = align_performance(
            batch["tokens"], batch["mask"], module_tables(self), self.roles.pad_id
        )  # [B, T], [B, T], [B, T, 2]
        comp, cmask, targets = (t[:, : self.cfg.max_len + 1] for t in (comp, cmask, targets))
        logits = list(self(comp, cmask))
        loss = mean_ce(logits, targets, cmask)
        with torch.no_grad():
            stats = sub_token_nll([x.detach() for x in logits], targets, cmask)
        return loss, stats

    @torch.no_grad()
    def perform(
        self,
        comp: torch.Tensor,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One composition [T] (PAD dropped) -> PerTok ids with sampled Velocity / MicroTiming.
        Long compositions are performed in chunks of max_len + 1 (the trained context)."""
        was = self.training
        self.eval()
        comp = comp.reshape(-1)
        comp = comp[comp != self.roles.pad_id].to(self.t_is_perf.device)
        vel, mt = [], []
        for chunk in comp.split(self.cfg.max_len + 1):
            v_logits, m_logits = self(chunk[None])  # [1, t, n]
            vel.append(sample(v_logits[0].float(), temperature, top_p, top_k, generator))
            mt.append(sample(m_logits[0].float(), temperature, top_p, top_k, generator))
        self.train(was)
        if not len(comp):
            return comp.new_zeros(0)
        return add_performance(comp, torch.cat(vel), torch.cat(mt), self.roles).to(comp.device)

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int = 0,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Re-perform PerTok prompts [B, T0]: the same composition, velocities and microtimings
        sampled anew. The Performer writes no new notes, so `max_new_tokens` is unused (the
        Composer writes notes); rows are right-padded with PAD."""
        comp, cmask = strip_performance(prompt, None, module_tables(self), self.roles.pad_id)
        rows = [
            self.perform(
                comp[i][cmask[i]],
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                generator=generator,
            ).cpu()
            for i in range(prompt.shape[0])
        ]
        return pad_rows(rows, self.roles.pad_id).to(prompt.device)
