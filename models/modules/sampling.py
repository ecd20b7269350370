"""Sampling one token from logits: temperature, top-k, nucleus (top-p).

Shared by every model's `generate`, so "temperature 0.9, top-p 0.95" means the same thing for
NMT, the flat baseline, PerceiverS and Cadenza. Temperature 0 is greedy (argmax).
"""

from __future__ import annotations

import torch

__all__ = ["filter_logits", "sample"]


def filter_logits(logits: torch.Tensor, top_p: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """logits [.., V] with everything outside the top-k / top-p nucleus set to -inf."""
    assert 0.0 < top_p <= 1.0, f"top_p must be in (0, 1], got {top_p}"
    assert top_k >= 0, f"top_k must be >= 0 (0 = off), got {top_k}"
    neg_inf = torch.finfo(logits.dtype).min
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # [.., 1]
        logits = logits.masked_fill(logits < kth, neg_inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, neg_inf)
    return logits


def sample(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [.., V] -> ids [..] long. Tokens a model must never emit: set their logit to -inf
    before calling (the filter keeps them out)."""
    assert temperature >= 0.0, f"temperature must be >= 0, got {temperature}"
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / temperature, top_p=top_p, top_k=top_k)
    probs = logits.softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    ids = torch.multinomial(flat, 1, generator=generator)  # [N, 1]
    return ids.reshape(probs.shape[:-1])
