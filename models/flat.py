"""A GPT-style causal decoder over flat token ids: the REMI baseline of the NMT paper.

Read top to bottom: config, model (embed -> causal transformer with rotary positions -> one head),
loss (teacher forcing on the shifted window), generate (one token per step, context cropped to
`max_len`). Batches follow the model contract: tokens [B, L] with L = window + 1, mask [B, L].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from musicdata.models.modules import (
    Embedding,
    ModelConfig,
    Transformer,
    compound_cross_entropy,
    init_weights,
    sample,
)
from musicdata.models.nll import NLLStats, sub_token_nll

__all__ = ["FlatConfig", "FlatDecoder"]


@dataclass(frozen=True)
class FlatConfig(ModelConfig):
    vocab_sizes: list[int] = field(default_factory=lambda: [512])  # [V]: one field
    sub_tokens: list[str] = field(default_factory=lambda: ["token"])
    pad_id: int | None = 0
    max_len: int = 256  # input window (the loader cuts max_len + 1 tokens)
    dim: int = 128
    n_heads: int = 4
    n_layers: int = 2
    mlp_ratio: float = 4.0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        assert len(self.vocab_sizes) == 1, (
            f"a flat decoder predicts one field, got vocab sizes {self.vocab_sizes}; "
            "use the 'nmt' model for compound tokens"
        )
        assert self.dim % self.n_heads == 0, f"dim {self.dim} % n_heads {self.n_heads} != 0"


class FlatDecoder(nn.Module):
    def __init__(self, cfg: FlatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        v = cfg.vocab_sizes[0]
        self.tok_emb = Embedding(v, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = Transformer(cfg.n_layers, cfg.dim, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
        self.head = nn.Linear(cfg.dim, v, bias=False)
        init_weights(self, cfg.n_layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, V] (position t predicts token t + 1)."""
        assert tokens.dim() == 2, f"flat tokens are [B, T], got {tuple(tokens.shape)}"
        assert tokens.shape[1] <= self.cfg.max_len, (
            f"sequence of {tokens.shape[1]} tokens is longer than max_len {self.cfg.max_len}"
        )
        x = self.drop(self.tok_emb(tokens))  # [B, T, D]
        h = self.decoder(x, is_causal=True)  # [B, T, D]
        return self.head(h)  # [B, T, V]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, NLLStats]:
        """Mean NLL of tokens[:, 1:] given tokens[:, :-1]; masked (padding) targets are dropped."""
        tokens, mask = batch["tokens"], batch["mask"]  # [B, L], [B, L]
        assert tokens.dim() == 2, f"flat batch tokens are [B, L], got {tuple(tokens.shape)}"
        inp, tgt, tmask = tokens[:, :-1], tokens[:, 1:], mask[:, 1:]
        logits = self(inp)  # [B, L-1, V]
        loss = compound_cross_entropy([logits], tgt[..., None], tmask)
        with torch.no_grad():
            stats = sub_token_nll(logits.detach(), tgt, tmask)
        return loss, stats

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
        """prompt [B, T0] -> [B, T0 + max_new_tokens]; PAD is never sampled."""
        assert prompt.dim() == 2 and prompt.shape[1] >= 1, (
            f"prompt must be [B, T0] with T0 >= 1, got {tuple(prompt.shape)}"
        )
        was_training = self.training
        self.eval()
        seq = prompt
        for _ in range(max_new_tokens):
            logits = self(seq[:, -self.cfg.max_len :])[:, -1]  # [B, V]
            if self.cfg.pad_id is not None:
                logits[:, self.cfg.pad_id] = float("-inf")
            nxt = sample(logits, temperature, top_p, top_k, generator)  # [B]
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        self.train(was_training)
        return seq
