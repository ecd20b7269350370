"""The training loss of a (compound) token model: mean cross-entropy over sub-token heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["compound_cross_entropy"]


def compound_cross_entropy(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Mean over heads of each head's mean NLL (nats) on the kept predictions.

    logits: F tensors [B, T, V_f]; targets [B, T, F]; mask [B, T] (True = real token); a target
    equal to `ignore_index` is dropped for its head only (codec steps held by a delay token).
    Averaging per head first weighs every sub-token type equally, as the NMT paper reports NLL.
    """
    assert targets.shape[-1] == len(logits), (
        f"{len(logits)} heads but targets have {targets.shape[-1]} fields"
    )
    losses = []
    for f, head in enumerate(logits):
        tgt = targets[..., f].masked_fill(~mask, ignore_index)  # [B, T]
        if bool((tgt != ignore_index).any()):
            losses.append(
                F.cross_entropy(
                    head.flatten(0, 1).float(), tgt.flatten(), ignore_index=ignore_index
                )
            )
    assert losses, "no target survived the mask: the batch holds only padding"
    return torch.stack(losses).mean()
