"""Negative log-likelihood of token sequences, per sub-token for compound (multi-head) outputs.

Compound encodings (cp, octuple, nb-*) predict one token as F sub-tokens, each from its own head
with its own vocabulary. Reporting one averaged loss hides which field the model gets wrong, so
the stats keep nats and counts per head and derive the summary numbers from them:

- `mean_nll`: nats per predicted sub-token, over all heads;
- `bits_per_token`: bits to code one (compound) token = sum over heads of mean nats / ln 2
  (for a flat encoding, the usual bits per token);
- `perplexity`: exp(nats per token) for the whole token; `sub_token_perplexity` per head.

Padding: `mask` [B, T] (True = real position) drops whole tokens; a target equal to
`ignore_index` drops just that sub-token (a field that does not apply to this token).
Stats add up (`a + b`) so an evaluation can stream batches and divide once at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["NLLStats", "sub_token_nll"]


@dataclass(frozen=True)
class NLLStats:
    """Summed NLL (nats) and prediction counts per sub-token head, plus the number of tokens."""

    nats: torch.Tensor  # [F] float64, summed over predictions
    counts: torch.Tensor  # [F] int64, predictions per head
    tokens: int  # unmasked (compound) token positions

    def __add__(self, other: NLLStats) -> NLLStats:
        assert self.nats.shape == other.nats.shape, "stats of different head counts"
        return NLLStats(
            self.nats + other.nats, self.counts + other.counts, self.tokens + other.tokens
        )

    def sub_token_mean(self) -> torch.Tensor:
        """[F] mean nats per head (nan for a head with no predictions)."""
        per = self.nats / self.counts.clamp(min=1).to(self.nats.dtype)
        return torch.where(self.counts > 0, per, torch.full_like(per, math.nan))

    @property
    def mean_nll(self) -> float:
        n = int(self.counts.sum())
        return float(self.nats.sum()) / n if n else math.nan

    @property
    def bits_per_token(self) -> float:
        means = self.sub_token_mean()
        seen = self.counts > 0
        if not bool(seen.any()):
            return math.nan
        return float(means[seen].sum()) / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.bits_per_token * math.log(2))

    def sub_token_perplexity(self) -> list[float]:
        return [math.exp(v) for v in self.sub_token_mean().tolist()]

    def to_dict(self, names: Sequence[str] | None = None) -> dict[str, object]:
        names = list(names) if names is not None else [str(i) for i in range(len(self.nats))]
        assert len(names) == len(self.nats), "one name per sub-token head"
        return {
            "mean_nll": self.mean_nll,
            "bits_per_token": self.bits_per_token,
            "perplexity": self.perplexity,
            "tokens": self.tokens,
            "sub_token_nll": dict(zip(names, self.sub_token_mean().tolist(), strict=True)),
            "sub_token_perplexity": dict(zip(names, self.sub_token_perplexity(), strict=True)),
        }


def sub_token_nll(
    logits: torch.Tensor | Sequence[torch.Tensor],
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
) -> NLLStats:
    """NLL stats of one batch.

    logits: [B, T, V] for a flat encoding, or a sequence of F tensors [B, T, V_f] (one per head);
    targets: [B, T] (flat) or [B, T, F]; mask: [B, T] bool, True where the token is real.
    Logits are already aligned with targets (shift before calling).
    """
    heads = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    if targets.dim() == 2:
        targets = targets.unsqueeze(-1)
    b, t, n_f = targets.shape
    assert len(heads) == n_f, f"{len(heads)} logit heads but targets have {n_f} sub-tokens"
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.bool, device=targets.device)
    assert mask.shape == (b, t), f"mask {tuple(mask.shape)} does not match targets {(b, t)}"
    nats = torch.zeros(n_f, dtype=torch.float64)
    counts = torch.zeros(n_f, dtype=torch.int64)
    for f, head in enumerate(heads):
        assert head.shape[:2] == (b, t), f"head {f}: logits {tuple(head.shape)} vs {(b, t)}"
        tgt = targets[..., f]
        keep = mask & (tgt != ignore_index)
        if not bool(keep.any()):
            continue
        # [N, V_f] -> nats per kept prediction, computed in float32 at least
        nll = F.cross_entropy(head[keep].float(), tgt[keep].long(), reduction="none")
        nats[f] = nll.double().sum().cpu()
        counts[f] = int(keep.sum())
    return NLLStats(nats=nats, counts=counts, tokens=int(mask.sum()))
