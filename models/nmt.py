"""The Nested Music Transformer (Ryu, Dong, Jung, Jeong; ISMIR 2024, arXiv 2408.01180).

A compound token (one note in NB, one CP word, one EnCodec frame) is F sub-tokens. The model has
two parts, read top to bottom below:

1. the **main decoder**: a causal transformer over compound tokens; the input at step i is the
   sum of the F sub-token embeddings of token i; its output h_i summarises tokens 0..i;
2. a **sub-decoder** that turns h_i into the F sub-tokens of token i + 1:
   - `parallel`: one linear head per field, all fields independent given h_i (baseline);
   - `cross` (the paper's NMT): F queries h_i + q_f attend, through `sub_layers` cross-attention
     blocks, to a memory [BOS, e(s_0), .., e(s_{F-2})] under a causal mask, so field f sees the
     sub-tokens 0..f-1 of the same token: sub-tokens are decoded in the encoding's field order,
     teacher-forced in training, sampled one at a time in generation;
   - the **Embedding Enricher** (cross only): before entering the memory, each sub-token
     embedding cross-attends to [BOS, h_{i-w}, .., h_i], the main decoder's outputs of the
     current and previous w compound tokens, so a shallow embedding carries context.

Codec shards (EnCodec codes, kind "codec") are compound tokens with K codebook fields; they have
no PAD, so each field gets one special id (= its codebook size) for padding and for the slots the
optional MusicGen delay pattern (models/codebooks_patterns.py) leaves empty. The pattern is laid
out inside the model: the loader hands frames [B, L, K] either way.

Reference implementation read for the design (not copied): github.com/JudeJiwoo/nmt,
`nested_music_transformer/sub_decoder_zoo.py` (CrossAttention, FeatureEnricher).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from musicdata.models.codebooks_patterns import build_pattern
from musicdata.models.modules import (
    CompoundEmbedding,
    CompoundHeads,
    CrossBlock,
    ModelConfig,
    Transformer,
    causal_mask,
    compound_cross_entropy,
    init_weights,
    sample,
)
from musicdata.models.nll import NLLStats, sub_token_nll

__all__ = ["CrossSubDecoder", "NMTConfig", "NestedMusicTransformer", "ParallelSubDecoder"]

IGNORE = -100  # a target the loss skips (codec slots held by the special id)
Pick = Callable[[int, torch.Tensor], torch.Tensor]  # (field f, logits [B, V_f]) -> ids [B]


@dataclass(frozen=True)
class NMTConfig(ModelConfig):
    vocab_sizes: list[int] = field(default_factory=lambda: [16, 16, 16])  # per field, from shards
    sub_tokens: list[str] = field(default_factory=lambda: ["a", "b", "c"])  # field names, in order
    pad_id: int | None = 0  # None for codec shards
    max_len: int = 256  # input window in compound tokens (frames for codec)
    kind: str = "compound"  # "compound" | "codec"
    dim: int = 128
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    sub_decoder: str = "cross"  # "cross" (NMT) | "parallel"
    sub_layers: int = 1  # cross-attention blocks in the sub-decoder
    enricher: bool = True  # Embedding Enricher (cross only)
    enricher_window: int = 0  # w: previous compound tokens the enricher sees besides the current
    codec_pattern: str = "parallel"  # "parallel" | "delay" (codec only)
    codec_delays: list[int] | None = None  # delay per codebook; None = 0, 1, .., K-1

    def __post_init__(self) -> None:
        assert self.kind in ("compound", "codec"), f"NMT takes compound or codec, not {self.kind}"
        assert len(self.vocab_sizes) == len(self.sub_tokens) >= 1, (
            f"{len(self.vocab_sizes)} vocab sizes vs {len(self.sub_tokens)} sub-token names"
        )
        assert self.sub_decoder in ("cross", "parallel"), (
            f"sub_decoder must be 'cross' or 'parallel', got {self.sub_decoder!r}"
        )
        assert self.dim % self.n_heads == 0, f"dim {self.dim} % n_heads {self.n_heads} != 0"
        assert self.enricher_window >= 0, f"enricher_window {self.enricher_window} < 0"
        assert self.codec_pattern in ("parallel", "delay"), (
            f"codec_pattern must be 'parallel' or 'delay', got {self.codec_pattern!r}"
        )
        assert self.codec_pattern == "parallel" or self.kind == "codec", (
            "the delay pattern applies to codec shards only"
        )

    @property
    def compound(self) -> bool:
        """Tokens are [.., F] even when F = 1 (a one-codebook codec): for generic callers."""
        return True

    @property
    def field_sizes(self) -> list[int]:
        """Embedding/head sizes: codec fields get one extra (special) id."""
        extra = 1 if self.kind == "codec" else 0
        return [v + extra for v in self.vocab_sizes]

    @property
    def delays(self) -> list[int]:
        if self.codec_pattern != "delay":
            return [0] * len(self.vocab_sizes)
        return list(self.codec_delays or range(len(self.vocab_sizes)))


# ---- sub-decoders ----------------------------------------------------------------------------


class ParallelSubDecoder(nn.Module):
    """h [B, T, D] -> F logits [B, T, V_f], every field from h alone."""

    def __init__(self, cfg: NMTConfig) -> None:
        super().__init__()
        self.heads = CompoundHeads(cfg.dim, cfg.field_sizes)

    def forward(self, h: torch.Tensor, targets: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self.heads(h)

    def step(self, h: torch.Tensor, pick: Pick) -> torch.Tensor:
        """The next token's fields from the last hidden state of h [B, T, D] -> ids [B, F]."""
        logits = self.heads(h[:, -1])  # F x [B, V_f]
        return torch.stack([pick(f, lg) for f, lg in enumerate(logits)], dim=-1)


class CrossSubDecoder(nn.Module):
    """The NMT sub-decoder: queries h_i + q_f, memory of the already decoded sub-tokens."""

    def __init__(self, cfg: NMTConfig) -> None:
        super().__init__()
        d, n_f = cfg.dim, len(cfg.vocab_sizes)
        self.n_fields, self.window = n_f, cfg.enricher_window
        self.emb = CompoundEmbedding(cfg.field_sizes, d)  # its own tables, as in the paper's code
        self.query_pos = nn.Parameter(torch.zeros(n_f, d))  # q_f: which field a query asks for
        self.bos = nn.Parameter(torch.zeros(1, 1, d))  # memory slot 0: "nothing decoded yet"
        self.layers = nn.ModuleList(
            CrossBlock(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.sub_layers)
        )
        self.enricher = (
            CrossBlock(d, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) if cfg.enricher else None
        )
        self.enricher_bos = nn.Parameter(torch.zeros(1, 1, d)) if cfg.enricher else None
        self.ln = nn.LayerNorm(d)
        self.heads = CompoundHeads(d, cfg.field_sizes)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.query_pos, std=0.02)
        nn.init.normal_(self.bos, std=0.02)
        if self.enricher_bos is not None:
            nn.init.normal_(self.enricher_bos, std=0.02)

    def _context(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Enricher keys per position: [B, T, w+2, D] = [BOS, h_{i-w}, .., h_i] and its
        validity [T, w+2] (False before the start of the sequence)."""
        b, t, d = h.shape
        w = self.window
        padded = torch.cat([h.new_zeros(b, w, d), h], dim=1)  # [B, T+w, D]
        win = padded.unfold(1, w + 1, 1).permute(0, 1, 3, 2)  # [B, T, w+1, D]
        assert self.enricher_bos is not None
        bos = self.enricher_bos.to(win.dtype).expand(b, t, 1, d)
        ctx = torch.cat([bos, win], dim=2)  # [B, T, w+2, D]
        offs = torch.arange(t, device=h.device)[:, None] + torch.arange(w + 1, device=h.device) - w
        valid = torch.cat([torch.ones(t, 1, dtype=torch.bool, device=h.device), offs >= 0], dim=1)
        return ctx, valid

    def _enrich(self, mem: torch.Tensor, ctx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """mem [N, M, D] each attends to its ctx [N, w+2, D] (valid [N, w+2]) -> [N, M, D]."""
        if self.enricher is None:
            return mem
        return self.enricher(mem, ctx, mask=valid[:, None, None, :])

    def _decode(
        self, q: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        for layer in self.layers:
            q = layer(q, mem, mask=mask)
        return self.ln(q)

    def forward(self, h: torch.Tensor, targets: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Teacher forcing: h [B, T, D], targets [B, T, F] (the tokens h predicts, real ids)."""
        assert targets is not None, "the cross sub-decoder needs the target sub-tokens in training"
        b, t, d = h.shape
        n, n_f = b * t, self.n_fields
        assert targets.shape == (b, t, n_f), f"targets {tuple(targets.shape)} vs {(b, t, n_f)}"
        q = h.reshape(n, 1, d) + self.query_pos  # [N, F, D]
        prev = [self.emb.embed_field(f, targets[..., f]).reshape(n, 1, d) for f in range(n_f - 1)]
        mem = torch.cat([self.bos.expand(n, 1, d), *prev], dim=1)  # [N, F, D]
        if self.enricher is not None:
            ctx, valid = self._context(h)  # [B, T, w+2, D], [T, w+2]
            valid = valid.expand(b, -1, -1).reshape(n, -1)
            mem = self._enrich(mem, ctx.reshape(n, -1, d), valid)
        causal = causal_mask(n_f, n_f, h.device)  # query f sees BOS and sub-tokens 0..f-1
        out = self._decode(q, mem, causal)  # [N, F, D]
        return [self.heads.head(f, out[:, f]).reshape(b, t, -1) for f in range(n_f)]

    def step(self, h: torch.Tensor, pick: Pick) -> torch.Tensor:
        """Sample the next token field by field from h [B, T, D] (last position) -> ids [B, F]."""
        b, _, d = h.shape
        h_last = h[:, -1:]  # [B, 1, D]
        if self.enricher is not None:
            ctx, valid = self._context(h)
            ctx, valid = ctx[:, -1], valid[-1:].expand(b, -1)  # [B, w+2, D], [B, w+2]
        mem = [self.bos.expand(b, 1, d)]
        ids = []
        for f in range(self.n_fields):
            m = torch.cat(mem, dim=1)  # [B, f+1, D]
            if self.enricher is not None:
                m = self._enrich(m, ctx, valid)
            out = self._decode(h_last + self.query_pos[f], m, None)  # [B, 1, D]
            idx = pick(f, self.heads.head(f, out[:, 0]))  # [B]
            ids.append(idx)
            mem.append(self.emb.embed_field(f, idx)[:, None])
        return torch.stack(ids, dim=-1)


# ---- the model -------------------------------------------------------------------------------


class NestedMusicTransformer(nn.Module):
    def __init__(self, cfg: NMTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.emb = CompoundEmbedding(cfg.field_sizes, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = Transformer(cfg.n_layers, cfg.dim, cfg.n_heads, cfg.mlp_ratio, cfg.dropout)
        sub = CrossSubDecoder if cfg.sub_decoder == "cross" else ParallelSubDecoder
        self.sub = sub(cfg)
        init_weights(self, cfg.n_layers)
        if isinstance(self.sub, CrossSubDecoder) and not self.sub.bos.is_meta:
            self.sub.reset_parameters()
        special = cfg.vocab_sizes if cfg.kind == "codec" else [-1] * len(cfg.vocab_sizes)
        self.register_buffer("special", torch.tensor(special), persistent=False)  # [F]

    @property
    def max_steps(self) -> int:
        """Longest input in steps: the window plus the delay pattern's extra steps."""
        return self.cfg.max_len + max(self.cfg.delays)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Main decoder: tokens [B, T, F] -> h [B, T, D] (h_i sees tokens 0..i)."""
        assert tokens.dim() == 3 and tokens.shape[-1] == len(self.cfg.vocab_sizes), (
            f"compound tokens are [B, T, {len(self.cfg.vocab_sizes)}], got {tuple(tokens.shape)}"
        )
        assert tokens.shape[1] <= self.max_steps, (
            f"{tokens.shape[1]} steps is longer than the model's window {self.max_steps}"
        )
        return self.decoder(self.drop(self.emb(tokens)), is_causal=True)

    def forward(
        self, tokens: torch.Tensor, targets: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """tokens [B, T, F], targets [B, T, F] (tokens shifted by one; the cross sub-decoder is
        teacher-forced on them) -> F logits [B, T, V_f]."""
        return self.sub(self.hidden(tokens), targets)

    def layout(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [B, L, F] + mask [B, L] -> steps [B, S, F] and per-field validity [B, S, F].

        Symbolic: the identity. Codec: padded frames (and, with the delay pattern, the slots
        before a codebook starts or after it ends) hold the field's special id.
        """
        if self.cfg.kind != "codec":
            return tokens, mask[..., None].expand_as(tokens)
        _, length, k = tokens.shape
        special = self.special.view(1, 1, k)
        if self.cfg.codec_pattern == "parallel":
            valid = mask[..., None].expand_as(tokens)
            return torch.where(valid, tokens, special), valid
        pattern = build_pattern("delay", k, length, tuple(self.cfg.delays))
        seq, _ = pattern.build(tokens.transpose(1, 2), special_token=0)  # [B, K, S]
        ti = torch.as_tensor(pattern.time_index, device=tokens.device)  # [K, S], -1 = empty
        valid = (ti >= 0)[None] & mask[:, ti.clamp(min=0)]  # [B, K, S]
        seq = torch.where(valid, seq, self.special.view(1, k, 1))
        return seq.transpose(1, 2), valid.transpose(1, 2)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, NLLStats]:
        """Mean NLL over sub-token heads of tokens[:, 1:] given tokens[:, :-1]."""
        tokens, mask = batch["tokens"], batch["mask"]  # [B, L, F], [B, L]
        assert tokens.dim() == 3, f"compound batch tokens are [B, L, F], got {tuple(tokens.shape)}"
        steps, valid = self.layout(tokens, mask)  # [B, S, F] x2
        step_mask = valid.any(dim=-1)  # [B, S]
        inp, tgt, tmask = steps[:, :-1], steps[:, 1:], step_mask[:, 1:]
        logits = self(inp, tgt)  # F x [B, S-1, V_f]
        tgt_loss = tgt.masked_fill(~valid[:, 1:], IGNORE)
        loss = compound_cross_entropy(logits, tgt_loss, tmask, ignore_index=IGNORE)
        with torch.no_grad():
            stats = sub_token_nll(
                [lg.detach() for lg in logits], tgt_loss, tmask, ignore_index=IGNORE
            )
        return loss, stats

    # ---- generation --------------------------------------------------------------------------

    def _picker(
        self,
        forced: torch.Tensor | None,
        temperature: float,
        top_p: float,
        top_k: int,
        generator: torch.Generator | None,
    ) -> Pick:
        """Sampling per field; never PAD (symbolic) or the special id (codec); `forced` [B, F]
        holds ids to keep (>= 0) instead of sampling (prompt frames, delay slots)."""
        cfg = self.cfg

        def pick(f: int, logits: torch.Tensor) -> torch.Tensor:
            logits = logits.float().clone()
            if cfg.kind == "codec":
                logits[:, cfg.vocab_sizes[f]] = float("-inf")
            elif cfg.pad_id is not None and cfg.pad_id < logits.shape[-1]:
                logits[:, cfg.pad_id] = float("-inf")
            ids = sample(logits, temperature, top_p, top_k, generator)  # [B]
            if forced is not None:
                ids = torch.where(forced[:, f] >= 0, forced[:, f], ids)
            return ids

        return pick

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
        """prompt [B, T0, F] (T0 >= 1) -> [B, T0 + max_new_tokens, F]; fields sampled in order."""
        n_f = len(self.cfg.vocab_sizes)
        assert prompt.dim() == 3 and prompt.shape[1] >= 1 and prompt.shape[2] == n_f, (
            f"prompt must be [B, T0>=1, {n_f}], got {tuple(prompt.shape)}"
        )
        was_training = self.training
        self.eval()
        if self.cfg.kind == "codec" and self.cfg.codec_pattern == "delay":
            out = self._generate_delayed(
                prompt, max_new_tokens, temperature, top_p, top_k, generator
            )
        else:
            seq = prompt
            pick = self._picker(None, temperature, top_p, top_k, generator)
            for _ in range(max_new_tokens):
                h = self.hidden(seq[:, -self.cfg.max_len :])  # [B, T, D]
                seq = torch.cat([seq, self.sub.step(h, pick)[:, None]], dim=1)
            out = seq
        self.train(was_training)
        return out

    def _generate_delayed(
        self,
        prompt: torch.Tensor,
        n_new: int,
        temperature: float,
        top_p: float,
        top_k: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Codec + delay: decode on the step grid, keep prompt codes and empty slots, revert."""
        b, t0, k = prompt.shape
        total = t0 + n_new
        pattern = build_pattern("delay", k, total, tuple(self.cfg.delays))
        ti = torch.as_tensor(pattern.time_index, device=prompt.device)  # [K, S]
        codes = torch.zeros(b, k, total, dtype=torch.long, device=prompt.device)
        codes[:, :, :t0] = prompt.transpose(1, 2)
        grid, _ = pattern.build(codes, special_token=0)  # [B, K, S]
        known = torch.where((ti >= 0) & (ti < t0), grid, torch.full_like(grid, -1))
        known = torch.where(ti < 0, self.special.view(1, k, 1).expand_as(grid), known)
        steps = known.transpose(1, 2).clone()  # [B, S, K], -1 = to sample
        for s in range(1, steps.shape[1]):
            forced = steps[:, s]  # [B, K]
            if bool((forced >= 0).all()):
                continue
            h = self.hidden(steps[:, max(0, s - self.max_steps) : s])
            pick = self._picker(forced, temperature, top_p, top_k, generator)
            steps[:, s] = self.sub.step(h, pick)
        return pattern.revert(steps.transpose(1, 2)).transpose(1, 2)  # [B, T0 + n_new, K]
