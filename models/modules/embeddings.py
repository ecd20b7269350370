"""Compound-token embeddings and per-field output heads.

A compound token (CP, NB, an EnCodec frame) is F sub-tokens, each from its own vocabulary. Its
input embedding is the sum of the F sub-token embeddings (the NMT paper's "embSum"); its output
is F logit vectors, one head per field. A flat encoding is the case F = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CompoundEmbedding", "CompoundHeads", "Embedding"]


class Embedding(nn.Embedding):
    """nn.Embedding that skips its random fill on the meta device: there `normal_` imports
    torch._dynamo (~10 s on first use), and a meta model built to count parameters needs no
    values. Elsewhere identical to nn.Embedding."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class CompoundEmbedding(nn.Module):
    """tokens [.., F] long -> [.., D]: the sum of one embedding per field."""

    def __init__(self, vocab_sizes: Sequence[int], dim: int) -> None:
        super().__init__()
        assert len(vocab_sizes) >= 1 and all(v > 0 for v in vocab_sizes), (
            f"every field needs a positive vocabulary size, got {list(vocab_sizes)}"
        )
        self.vocab_sizes = list(vocab_sizes)
        self.tables = nn.ModuleList(Embedding(v, dim) for v in self.vocab_sizes)

    def embed_field(self, f: int, ids: torch.Tensor) -> torch.Tensor:
        """ids [..] of field f -> [.., D]."""
        return self.tables[f](ids)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n_f = len(self.tables)
        assert tokens.shape[-1] == n_f, f"tokens have {tokens.shape[-1]} fields, expected {n_f}"
        out = self.tables[0](tokens[..., 0])
        for f in range(1, n_f):
            out = out + self.tables[f](tokens[..., f])
        return out


class CompoundHeads(nn.Module):
    """h [.., D] -> F logit tensors [.., V_f], one linear head per field."""

    def __init__(self, dim: int, vocab_sizes: Sequence[int]) -> None:
        super().__init__()
        self.vocab_sizes = list(vocab_sizes)
        self.heads = nn.ModuleList(nn.Linear(dim, v) for v in self.vocab_sizes)

    def head(self, f: int, h: torch.Tensor) -> torch.Tensor:
        """Logits of field f only: [.., D] -> [.., V_f]."""
        return self.heads[f](h)

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        return [head(h) for head in self.heads]
