"""Multi-head attention (self or cross) on `scaled_dot_product_attention`.

One module serves every model here: causal self-attention (GPT, NMT main decoder), cross-attention
with a different key/value width (Perceiver AR latents, the NMT sub-decoder and its Embedding
Enricher), optional rotary positions. SDPA picks the flash / memory-efficient kernel on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from musicdata.models.modules.rope import RotaryEmbedding

__all__ = ["MultiHeadAttention", "causal_mask"]


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> torch.Tensor:
    """[Tq, Tk] bool, True = attend. Bottom-right aligned: the last query sees every key, so a
    query block that ends a longer key sequence (Perceiver AR, cached decoding) stays causal."""
    q = torch.arange(t_q, device=device)[:, None] + (t_k - t_q)
    k = torch.arange(t_k, device=device)[None, :]
    return k <= q


class MultiHeadAttention(nn.Module):
    """x [B, Tq, D] attends to kv [B, Tk, kv_dim] (kv=None: to itself) -> [B, Tq, D]."""

    def __init__(
        self, dim: int, n_heads: int, dropout: float = 0.0, kv_dim: int | None = None
    ) -> None:
        super().__init__()
        assert dim % n_heads == 0, f"dim {dim} is not divisible by n_heads {n_heads}"
        self.dim, self.n_heads, self.head_dim = dim, n_heads, dim // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.kv_proj = nn.Linear(kv_dim or dim, 2 * dim, bias=False)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        self.out_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: RotaryEmbedding | None = None,
        q_pos: torch.Tensor | None = None,
        k_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mask: bool, True = attend, broadcastable to [B, H, Tq, Tk]; is_causal adds a
        bottom-right aligned causal mask; rope rotates q/k at q_pos/k_pos ([T] or [B, T])."""
        self_attn = kv is None
        kv = x if kv is None else kv
        b, t_q, _ = x.shape
        assert kv.shape[0] == b, f"batch of x ({b}) and kv ({kv.shape[0]}) differ"
        t_k = kv.shape[1]
        h, dh = self.n_heads, self.head_dim
        q = self.q_proj(x).view(b, t_q, h, dh).transpose(1, 2)  # [B, H, Tq, Dh]
        k, v = self.kv_proj(kv).view(b, t_k, 2, h, dh).permute(2, 0, 3, 1, 4)  # [B, H, Tk, Dh]
        if rope is not None:
            if self_attn and k_pos is None:
                k_pos = q_pos
            q, k = rope(q, q_pos), rope(k, k_pos)
        if is_causal and mask is None and t_q == t_k:
            attn_mask, causal = None, True  # SDPA's own causal path (flash kernel on CUDA)
        else:
            attn_mask, causal = mask, False
            if is_causal:
                cm = causal_mask(t_q, t_k, x.device)
                attn_mask = cm if attn_mask is None else attn_mask & cm
            if attn_mask is not None:
                assert attn_mask.dtype == torch.bool, f"mask must be bool, got {attn_mask.dtype}"
                # a query that may attend to nothing (a padding position) would give NaN; let it
                # attend everywhere instead: its output is padding and never reaches the loss
                attn_mask = attn_mask | ~attn_mask.any(dim=-1, keepdim=True)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal,
        )  # [B, H, Tq, Dh]
        y = y.transpose(1, 2).reshape(b, t_q, self.dim)
        return self.out_drop(self.out_proj(y))
