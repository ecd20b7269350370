"""Rotary position embedding (Su et al. 2021, RoFormer): relative positions without parameters.

Rotating query and key features by an angle proportional to their position makes the dot product
depend on the distance only, so a model trained on windows of length L still sees familiar
distances when it attends across a longer context, and no position table has to be learned.
Positions are explicit (`pos`), so cross-attention (Perceiver AR latents vs. their inputs, a
sub-decoder vs. its memory) can place queries and keys on one time axis.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RotaryEmbedding"]


class RotaryEmbedding(nn.Module):
    """Rotates the features of q or k [B, H, T, Dh] by their positions (the "half-split" layout)."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        assert head_dim % 2 == 0, f"rotary embedding needs an even head dim, got {head_dim}"
        self.head_dim, self.base = head_dim, base

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, H, T, Dh]; pos [T] or [B, T] (integer or float positions), default 0..T-1."""
        assert x.shape[-1] == self.head_dim, f"x head dim {x.shape[-1]} != {self.head_dim}"
        t = x.shape[-2]
        if pos is None:
            pos = torch.arange(t, device=x.device)
        assert pos.shape[-1] == t, f"{pos.shape[-1]} positions for {t} steps"
        # frequencies computed per call (Dh/2 numbers): no buffer to move between devices
        exps = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=x.device)
        inv_freq = 1.0 / (self.base ** (exps / self.head_dim))  # [Dh/2]
        angles = pos.to(torch.float32)[..., None] * inv_freq  # [(B,) T, Dh/2]
        if angles.dim() == 3:  # per-batch positions: [B, 1, T, Dh/2] broadcasts over heads
            angles = angles[:, None]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., : self.head_dim // 2], x[..., self.head_dim // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
