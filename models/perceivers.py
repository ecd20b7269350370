"""PerceiverS (arXiv 2411.08307): Perceiver AR with Effective Segmentation and Multi-Scale
cross-attention, for long performance-MIDI sequences (MAESTRO, 32k-token contexts).

Read top to bottom: config, model (forward, loss), generation (naive and cached), registry.

Perceiver AR core (Hawthorne et al. 2022, "final block" masks). tokens [B, L] are embedded to
x [B, L, D]; the last Q = query_len positions are the queries and their latents start as their
own embeddings (Perceiver AR's query residual). Cross-attention in cascade mode: one CrossBlock
per entry of `scales`, each layer's output the next layer's queries, keys/values always the input
embeddings. Scale None sees the whole window; scale N sees only the last N positions of the
window (the paper's scale mask, Eq. 16). Every cross-attention is causally aligned: the query at
position p sees inputs at positions <= p. Then n_layers causal self-attention Blocks over the
latents, a final LayerNorm and a linear head: logits [B, Q, V] for the query positions (position
p predicts token p + 1). Effective Segmentation lives in the data loader (segmentation
"effective", LEFT-padded windows); `mask` is False at pads, which are never attended to.

Positions: rotary (RoPE) on the first half of each head's channels, as Perceiver AR
(fraction_to_rotate 0.5, max_wavelength = max context); a token's position is its index among the
real tokens of its row, so left padding shifts nothing, and in cross-attention queries and keys
share that one time axis. Generation uses absolute positions in the piece (RoPE sees differences).

Optimizer (the paper: "Adam, initial learning rate 0.03125", schedule unstated). We read 0.03125
as the scale of the Transformer ("Noam") schedule, which for d_model 1024 is exactly
1024 ** -0.5 = 0.03125: lr(step) = 0.03125 * min(step ** -0.5, step * warmup ** -1.5) with
warmup 4000 (Vaswani et al.), peaking at 4.9e-4 at step 4000, close to Perceiver AR's Adam 3e-4
(a constant Adam rate of 0.03125 would be ~100x any used for transformers this size).
`paper_lr` is that schedule; with the trainer's linear warm-up + cosine, the nearest setting
is lr 4.9e-4, warmup_steps 4000, min_lr 1e-4 (Noam's rate at the shared 100k steps is 9.9e-5).
Both families' `paper` train preset (ModelSpec `train_presets`, read by
musicdata.models.api.train_config)
is that, plus what the paper states or implies: plain Adam (weight_decay 0, betas 0.9/0.999),
no data augmentation ("no key or tempo changes": transpose 0). Batch size and step count are
not stated; the shared `paper` values (8, 100k) stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from musicdata.models.modules import (
    Block,
    CrossBlock,
    ModelConfig,
    MultiHeadAttention,
    RotaryEmbedding,
    causal_mask,
    compound_cross_entropy,
    init_weights,
    sample,
)
from musicdata.models.nll import NLLStats, sub_token_nll

__all__ = ["PerceiverS", "PerceiverSConfig", "paper_lr"]


@dataclass(frozen=True)
class PerceiverSConfig(ModelConfig):
    vocab_sizes: list[int] = field(default_factory=lambda: [390])  # [V]: one field (flat)
    sub_tokens: list[str] = field(default_factory=lambda: ["token"])
    pad_id: int | None = 0
    max_len: int = 256  # max context: input tokens the cross-attention sees (loader cuts +1)
    query_len: int = 64  # Q: latents = the last Q input positions
    scales: list[int | None] = field(default_factory=lambda: [None, 64])  # cascade, in order
    dim: int = 128
    n_heads: int = 4
    n_layers: int = 2  # self-attention layers over the latents
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    rope_fraction: float = 0.5  # share of each head's channels that RoPE rotates
    rope_base: float | None = None  # None: max_len (Perceiver AR's max_wavelength)
    # read by the trainer: queries are the last positions, so short windows pad on the left
    pad_side: ClassVar[str] = "left"

    def __post_init__(self) -> None:
        assert len(self.vocab_sizes) == 1, (
            f"PerceiverS predicts one flat token stream, got vocab sizes {self.vocab_sizes}; "
            "use a flat encoding (e.g. 'performance')"
        )
        assert self.dim % self.n_heads == 0, f"dim {self.dim} % n_heads {self.n_heads} != 0"
        assert 1 <= self.query_len <= self.max_len, (
            f"query_len {self.query_len} must be in 1..max_len ({self.max_len})"
        )
        assert self.scales, "scales needs at least one entry (None = the whole context)"
        for s in self.scales:
            # a scale shorter than the query block would leave the first queries nothing to see
            assert s is None or self.query_len <= s <= self.max_len, (
                f"scale {s} must be None or in query_len..max_len "
                f"({self.query_len}..{self.max_len})"
            )
        assert 0.0 < self.rope_fraction <= 1.0, f"rope_fraction {self.rope_fraction} not in (0, 1]"


def paper_lr(step: int, scale: float = 0.03125, warmup: int = 4000) -> float:
    """The paper's learning rate as we read it (module docstring): Noam, scale 0.03125."""
    step = max(1, step)
    return scale * min(step**-0.5, step * warmup**-1.5)


class PartialRotary(nn.Module):
    """RoPE on the first `rot_dim` channels of q or k [B, H, T, Dh]; the rest pass unrotated."""

    def __init__(self, head_dim: int, fraction: float, base: float) -> None:
        super().__init__()
        self.rot_dim = max(2, int(head_dim * fraction) // 2 * 2)
        self.rope = RotaryEmbedding(self.rot_dim, base)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        r = self.rot_dim
        if r == x.shape[-1]:
            return self.rope(x, pos)
        return torch.cat([self.rope(x[..., :r], pos), x[..., r:]], dim=-1)


# ---- attention on cached keys/values, with the weights of modules' MultiHeadAttention ---------


def _project_kv(
    attn: MultiHeadAttention, kv: torch.Tensor, rope: nn.Module, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """kv [B, T, D] (already normalized) -> rotated keys, values [B, H, T, Dh]."""
    b, t, _ = kv.shape
    k, v = attn.kv_proj(kv).view(b, t, 2, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return rope(k, pos), v


def _project_q(
    attn: MultiHeadAttention, x: torch.Tensor, rope: nn.Module, pos: torch.Tensor
) -> torch.Tensor:
    """x [B, T, D] (already normalized) -> rotated queries [B, H, T, Dh]."""
    b, t, _ = x.shape
    return rope(attn.q_proj(x).view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2), pos)


def _project_qkv(
    attn: MultiHeadAttention, x: torch.Tensor, rope: nn.Module, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-attention: q, k, v [B, H, T, Dh], q and k rotated in one call (same positions)."""
    b, t, _ = x.shape
    h, dh = attn.n_heads, attn.head_dim
    q = attn.q_proj(x).view(b, t, h, dh)
    k, v = attn.kv_proj(x).view(b, t, 2, h, dh).unbind(2)
    qk = rope(torch.cat([q, k], dim=2).transpose(1, 2), pos)  # [B, 2H, T, Dh]
    return qk[:, :h], qk[:, h:], v.transpose(1, 2)


def _attend(
    attn: MultiHeadAttention,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotated q [B, H, Tq, Dh] attends to k, v [B, H, Tk, Dh] -> [B, Tq, D] (out-projected)."""
    b, _, t, _ = q.shape
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, Tq, Dh]
    return attn.out_proj(y.transpose(1, 2).reshape(b, t, attn.dim))


class PerceiverS(nn.Module):
    def __init__(self, cfg: PerceiverSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        v, d, h = cfg.vocab_sizes[0], cfg.dim, cfg.n_heads
        self.tok_emb = nn.Embedding(v, d)
        self.drop = nn.Dropout(cfg.dropout)
        base = float(cfg.rope_base if cfg.rope_base is not None else max(cfg.max_len, 2))
        self.rope = PartialRotary(d // h, cfg.rope_fraction, base)
        self.cross = nn.ModuleList(CrossBlock(d, h, cfg.mlp_ratio, cfg.dropout) for _ in cfg.scales)
        self.blocks = nn.ModuleList(
            Block(d, h, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, v, bias=False)
        init_weights(self, cfg.n_layers + len(cfg.scales))

    def _starts(self, end: int) -> tuple[int, list[int]]:
        """Window-relative start of the queries and of each scale's keys, for a window whose
        (virtual) end is `end`: queries [end - Q, end), scale N keys [end - N, end)."""
        q0 = max(0, end - self.cfg.query_len)
        return q0, [0 if s is None else max(0, end - s) for s in self.cfg.scales]

    def forward(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        pos_offset: int = 0,
        n_future: int = 0,
    ) -> torch.Tensor:
        """tokens [B, L] (L <= max_len), mask [B, L] (True = real; pads on the left) ->
        logits [B, Tq, V] of the last Tq = min(L, Q - n_future) positions.

        n_future > 0 places the window's end n_future steps after the last input (generation:
        the training window these inputs belong to is not complete yet); query and scale windows
        are measured from that end. pos_offset: position of the first real token."""
        cfg = self.cfg
        assert tokens.dim() == 2, f"flat tokens are [B, L], got {tuple(tokens.shape)}"
        b, n = tokens.shape
        end = n + n_future
        assert n >= 1 and end <= cfg.max_len, (
            f"{n} inputs + {n_future} future steps exceed max_len {cfg.max_len}"
        )
        if mask is None:
            mask = torch.ones(b, n, dtype=torch.bool, device=tokens.device)
        assert mask.shape == (b, n), f"mask {tuple(mask.shape)} vs tokens {(b, n)}"
        assert bool(mask[:, -1].all()), (
            "PerceiverS reads its queries from the last positions, but a row ends in padding: "
            "collate its windows with pad_side='left'"
        )
        q0, k0s = self._starts(end)
        assert q0 < n, f"no query position: {n_future} future steps >= query_len {cfg.query_len}"
        padded = not bool(mask.all())
        pos = (mask.long().cumsum(1) - 1).clamp(min=0) + pos_offset  # [B, L]
        q_pos = pos[:, q0:]  # [B, Tq]
        x = self.drop(self.tok_emb(tokens))  # [B, L, D]
        z = x[:, q0:]  # [B, Tq, D]: latents start as the query embeddings
        for blk, k0 in zip(self.cross, k0s, strict=True):
            allowed = None  # [B, 1, Tq, Tk]: causally aligned (bottom-right), real keys only
            if padded:
                allowed = causal_mask(n - q0, n - k0, tokens.device) & mask[:, None, None, k0:]
            z = blk(
                z,
                x[:, k0:],
                mask=allowed,
                is_causal=not padded,
                rope=self.rope,
                q_pos=q_pos,
                k_pos=pos[:, k0:],
            )
        self_mask = None  # [B, 1, Tq, Tq]
        if padded:
            self_mask = causal_mask(n - q0, n - q0, tokens.device) & mask[:, None, None, q0:]
        for blk in self.blocks:
            z = blk(z, mask=self_mask, is_causal=not padded, rope=self.rope, pos=q_pos)
        return self.head(self.ln_f(z))  # [B, Tq, V]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, NLLStats]:
        """Mean NLL of the query positions' next tokens; pads (input or target) are dropped."""
        tokens = batch["tokens"]  # [B, L]
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones_like(tokens, dtype=torch.bool)
        assert tokens.dim() == 2, f"flat batch tokens are [B, L], got {tuple(tokens.shape)}"
        logits = self(tokens[:, :-1], mask[:, :-1])  # [B, Tq, V]
        tq = logits.shape[1]
        tgt = tokens[:, 1:][:, -tq:]  # [B, Tq]
        tmask = (mask[:, 1:] & mask[:, :-1])[:, -tq:]  # a target counts if its input is real
        loss = compound_cross_entropy([logits], tgt[..., None], tmask)
        with torch.no_grad():
            stats = sub_token_nll(logits.detach(), tgt, tmask)
        return loss, stats

    # ---- generation ---------------------------------------------------------------------------
    #
    # Both paths compute the same thing. The token at index m (sequence s[0:m]) is predicted by
    # the training forward of the window that ends at E = the smallest multiple of `stride` >= m,
    # evaluated causally: inputs s[a:m] with a = max(0, E - max_len), queries [E - Q, m), scale
    # N keys [E - N, m). With stride 1 that is exactly "re-run the model on the last max_len
    # tokens" at every step. With stride K the query set slides by K tokens at a time, so
    # inside a block everything already computed stays valid (Perceiver AR's sampler does the
    # same: it refills half the latent cache whenever it is full). Naive path: one full forward
    # per token. Cached path: every token's cross-attention keys/values are projected once and
    # kept while in the window; inside a block each step runs one new latent through the
    # cross-attention and the self-attention stack against cached keys/values; at a block
    # boundary the latents [E - Q, m) are recomputed in one batched pass from the cached keys.

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        stride: int | None = None,
        cached: bool = True,
        return_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """prompt [B, T0] long (T0 >= 1, no padding) -> [B, T0 + max_new_tokens] (and the
        [B, max_new_tokens, V] logits each token was sampled from, if return_logits).
        stride: block size of the query set (default query_len // 2); cached=False is the slow
        reference path (one full forward per token)."""
        cfg = self.cfg
        assert prompt.dim() == 2 and prompt.shape[1] >= 1, (
            f"prompt must be [B, T0] with T0 >= 1, got {tuple(prompt.shape)}"
        )
        stride = max(1, cfg.query_len // 2) if stride is None else stride
        assert 1 <= stride <= cfg.query_len, f"stride {stride} not in 1..query_len {cfg.query_len}"
        was_training = self.training
        self.eval()
        seq = prompt.to(self.head.weight.device)
        state = _Cache(self, seq) if cached else None
        all_logits = []
        try:
            for _ in range(max_new_tokens):
                m = seq.shape[1]
                end = -(-m // stride) * stride  # the block's window end, >= m
                a = max(0, end - cfg.max_len)
                if state is not None:
                    logits = state.next_logits(seq, end, a)  # [B, V]
                else:
                    logits = self(seq[:, a:], pos_offset=a, n_future=end - m)[:, -1]
                nxt = sample(logits, temperature, top_p, generator=generator)  # [B]
                seq = torch.cat([seq, nxt[:, None].to(seq.dtype)], dim=1)
                all_logits.append(logits)
        finally:
            self.train(was_training)
        if return_logits:
            empty = seq.new_zeros((seq.shape[0], 0, cfg.vocab_sizes[0]), dtype=torch.float)
            return seq, torch.stack(all_logits, dim=1) if all_logits else empty
        return seq


class _Cache:
    """Cached-generation state: projected cross-attention keys/values of the tokens in the window
    (a buffer compacted every max_len tokens) and the self-attention keys/values of the current
    block's latents."""

    def __init__(self, model: PerceiverS, seq: torch.Tensor) -> None:
        cfg = model.cfg
        self.m = model
        b, t0 = seq.shape
        p = model.head.weight
        h, dh = cfg.n_heads, cfg.dim // cfg.n_heads
        self.cap = 2 * cfg.max_len
        n_cross = len(cfg.scales)
        # [layer, K|V, B, H, slot, Dh]; slot i holds absolute position base + i
        self.ctx = torch.zeros(n_cross, 2, b, h, self.cap, dh, dtype=p.dtype, device=p.device)
        self.base = self.filled = max(0, t0 - cfg.max_len)  # positions [base, filled) projected
        # [layer, K|V, B, H, Q, Dh]: self-attention keys/values of latents [q0, q0 + n_lat)
        self.lat = torch.zeros(
            cfg.n_layers, 2, b, h, cfg.query_len, dh, dtype=p.dtype, device=p.device
        )
        self.n_lat, self.block_end = 0, -1

    def _project(self, seq: torch.Tensor) -> None:
        """Project keys/values of tokens [filled, len(seq)) into the buffer."""
        m, cfg = self.m, self.m.cfg
        n = seq.shape[1]
        if n - self.base > self.cap:  # keep only the last max_len positions (a >= n - max_len)
            keep = n - cfg.max_len
            live = self.filled - keep
            self.ctx[..., :live, :] = self.ctx[..., keep - self.base : self.filled - self.base, :]
            self.base = keep
        if n == self.filled:
            return
        x = m.tok_emb(seq[:, self.filled :])  # [B, T, D]
        pos = torch.arange(self.filled, n, device=seq.device)
        for i, blk in enumerate(m.cross):
            k, v = _project_kv(blk.attn, blk.ln_kv(x), m.rope, pos)  # [B, H, T, Dh]
            self.ctx[i, 0, :, :, self.filled - self.base : n - self.base] = k
            self.ctx[i, 1, :, :, self.filled - self.base : n - self.base] = v
        self.filled = n

    def next_logits(self, seq: torch.Tensor, end: int, a: int) -> torch.Tensor:
        """Logits [B, V] for the token after seq [B, m]; the block's window is [a, end)."""
        m, cfg = self.m, self.m.cfg
        n = seq.shape[1]
        self._project(seq)
        q0 = max(a, end - cfg.query_len)
        new_block = end != self.block_end
        first = q0 if new_block else n - 1  # latents computed in this call: [first, n)
        z = m.tok_emb(seq[:, first:])  # [B, T, D]
        q_pos = torch.arange(first, n, device=seq.device)
        for i, (blk, s) in enumerate(zip(m.cross, cfg.scales, strict=True)):
            k0 = a if s is None else max(a, end - s)
            sl = slice(k0 - self.base, n - self.base)
            k, v = self.ctx[i, 0, :, :, sl], self.ctx[i, 1, :, :, sl]  # [B, H, n - k0, Dh]
            cm = causal_mask(n - first, n - k0, seq.device) if new_block else None
            z = z + _attend(blk.attn, _project_q(blk.attn, blk.ln_q(z), m.rope, q_pos), k, v, cm)
            z = z + blk.mlp(blk.ln2(z))
        if new_block:
            self.n_lat, self.block_end = 0, end
        t = n - first
        cm = causal_mask(t, self.n_lat + t, seq.device) if t > 1 else None
        for j, blk in enumerate(m.blocks):
            q, k, v = _project_qkv(blk.attn, blk.ln1(z), m.rope, q_pos)  # [B, H, t, Dh]
            self.lat[j, 0, :, :, self.n_lat : self.n_lat + t] = k
            self.lat[j, 1, :, :, self.n_lat : self.n_lat + t] = v
            lk = self.lat[j, 0, :, :, : self.n_lat + t]
            lv = self.lat[j, 1, :, :, : self.n_lat + t]
            z = z + _attend(blk.attn, q, lk, lv, cm)
            z = z + blk.mlp(blk.ln2(z))
        self.n_lat += t
        return m.head(m.ln_f(z[:, -1]))  # [B, V]


# ---- registry ---------------------------------------------------------------------------------


# scales=[None, N] is PerceiverS' cascade; "perceiver-ar" (one full-context cross-attention,
# random-start windows) is the baseline of the paper's first experiment. Effective Segmentation
# alone is "perceivers" with the override scales=[None].
def _preset(dim: int, heads: int, layers: int, ctx: int, q: int, dropout: float) -> dict:
    return {"dim": dim, "n_heads": heads, "n_layers": layers, "max_len": ctx, "query_len": q,
            "scales": [None, q], "dropout": dropout}  # fmt: skip


_PRESETS: dict[str, dict] = {
    "debug": _preset(32, 2, 2, 64, 16, 0.0),  # seconds on CPU
    "small": _preset(128, 4, 4, 1024, 128, 0.1),  # a real CPU run in minutes
    # the paper: dim 1024, 24 self-attention layers, 16 heads of 64, context 32768, 1024
    # queries; the second cross-attention sees the last 1024 tokens
    "paper": _preset(1024, 16, 24, 32768, 1024, 0.1),
}


# the paper's optimizer as the trainer can express it (module docstring)
_TRAIN_PRESETS: dict[str, dict] = {
    "paper": {"lr": paper_lr(4000), "min_lr": 1e-4, "warmup_steps": 4000, "weight_decay": 0.0,
              "betas": (0.9, 0.999), "transpose": 0},
}  # fmt: skip


def _register() -> None:
    from musicdata.models.builders import (  # builders imports this module at its end
        ModelSpec,
        register,
    )

    @dataclass(frozen=True)
    class PerceiverSpec(ModelSpec):
        """ModelSpec plus the family's train presets (models.api.train_config reads them)."""

        train_presets: dict[str, dict] = field(default_factory=dict)

    for name, seg, single, what in (
        ("perceivers", "effective", False, "PerceiverS: Effective Segmentation + Multi-Scale"),
        ("perceiver-ar", "random", True, "Perceiver AR baseline: random-start windows, one scale"),
    ):
        presets = {k: {**v, "scales": [None]} if single else dict(v) for k, v in _PRESETS.items()}
        register(
            PerceiverSpec(
                name=name,
                config_cls=PerceiverSConfig,
                model_cls=PerceiverS,
                kinds=("flat",),
                presets=presets,
                segmentation=seg,
                pad_side="left",  # queries are the last positions: short windows pad on the left
                description=what,
                train_presets={k: dict(v) for k, v in _TRAIN_PRESETS.items()},
            )
        )


_register()
