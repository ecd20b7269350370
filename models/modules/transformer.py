"""Pre-norm transformer blocks: self-attention (`Block`), cross-attention (`CrossBlock`), a stack.

Pre-norm (LayerNorm before each sub-layer, residual around it) trains without warm-up tricks at
the depths used here; the stack ends with a final LayerNorm so heads see normalized features.
`init_weights` is GPT-2's: N(0, 0.02) for linear and embedding weights, residual projections
scaled by 1/sqrt(2 * n_layers) so the residual stream does not grow with depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from musicdata.models.modules.attention import MultiHeadAttention
from musicdata.models.modules.rope import RotaryEmbedding

__all__ = ["MLP", "Block", "CrossBlock", "Transformer", "init_weights"]


class MLP(nn.Module):
    """[.., D] -> [.., D]: Linear(D, r*D), GELU, Linear(r*D, D), dropout."""

    def __init__(self, dim: int, mlp_ratio: float = 4, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.fc = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """x + SelfAttn(LN(x)), then x + MLP(LN(x)); x [B, T, D] -> [B, T, D]."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: RotaryEmbedding | None = None,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask=mask, is_causal=is_causal, rope=rope, q_pos=pos)
        return x + self.mlp(self.ln2(x))


class CrossBlock(nn.Module):
    """x + CrossAttn(LN(x), LN(kv)), then x + MLP(LN(x)); x [B, Tq, D], kv [B, Tk, kv_dim]."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        mlp_ratio: float = 4,
        dropout: float = 0.0,
        kv_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.ln_q = nn.LayerNorm(dim)
        self.ln_kv = nn.LayerNorm(kv_dim or dim)
        self.attn = MultiHeadAttention(dim, n_heads, dropout, kv_dim=kv_dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: RotaryEmbedding | None = None,
        q_pos: torch.Tensor | None = None,
        k_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(
            self.ln_q(x),
            self.ln_kv(kv),
            mask=mask,
            is_causal=is_causal,
            rope=rope,
            q_pos=q_pos,
            k_pos=k_pos,
        )
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """A stack of `Block`s with rotary positions and a final LayerNorm: [B, T, D] -> [B, T, D]."""

    def __init__(
        self,
        n_layers: int,
        dim: int,
        n_heads: int,
        mlp_ratio: float = 4,
        dropout: float = 0.0,
        rope: bool = True,
    ) -> None:
        super().__init__()
        assert n_layers >= 1, f"a transformer needs at least one layer, got {n_layers}"
        self.rope = RotaryEmbedding(dim // n_heads) if rope else None
        self.blocks = nn.ModuleList(
            Block(dim, n_heads, mlp_ratio, dropout) for _ in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = True,
        pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask=mask, is_causal=is_causal, rope=self.rope, pos=pos)
        return self.ln_f(x)


def init_weights(module: nn.Module, n_layers: int) -> None:
    """GPT-2 initialisation over `module`'s tree (call once after building a model)."""
    if any(p.is_meta for p in module.parameters()):
        return  # built on the meta device to count parameters: there is nothing to fill
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            std = 0.02
            if name.endswith(("out_proj", "mlp.proj")):
                std = 0.02 / math.sqrt(2 * n_layers)
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
