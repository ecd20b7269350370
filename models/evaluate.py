"""Evaluation of any contract model: NLL per sub-token on a split, and unconditional samples.

Windows are deterministic (models.data.windows.eval_windows), so two evaluations of the same
checkpoint on the same manifest give the same numbers. Pure PyTorch; the evaluate stage records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from musicdata.models.data import PAD_SIDE, SplitReader, eval_batches, pad_value_of
from musicdata.models.nll import NLLStats
from musicdata.schemas.manifest import ShardManifest

__all__ = ["evaluate_nll", "generate_samples", "model_device", "nll_on_batches", "window_layout"]


def model_device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def window_layout(model: nn.Module, segmentation: str | None = None) -> dict[str, Any]:
    """How a model wants its windows: max_len, pad side and eval hop (its query length)."""
    cfg = model.cfg  # type: ignore[attr-defined]
    pad_side = getattr(cfg, "pad_side", None) or PAD_SIDE[segmentation or "stride"]
    query_len = getattr(cfg, "query_len", None)
    return {"max_len": int(cfg.max_len), "pad_side": pad_side, "hop": query_len}


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def nll_on_batches(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], *, amp: bool = True
) -> NLLStats | None:
    """Sum of the model's NLL stats over batches (eval mode, restored after); None if empty."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    total: NLLStats | None = None
    try:
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with _autocast(device, amp):
                _, stats = model.loss(batch)  # type: ignore[operator]
            stats = NLLStats(stats.nats.detach().cpu(), stats.counts.detach().cpu(), stats.tokens)
            total = stats if total is None else total + stats
    finally:
        model.train(was_training)
    return total


def evaluate_nll(
    model: nn.Module,
    manifest: ShardManifest,
    split: str = "test",
    batch_size: int = 8,
    max_batches: int | None = None,
    *,
    segmentation: str | None = None,
    amp: bool = True,
) -> NLLStats:
    """NLL stats of `model` on every (or the first max_batches) deterministic window of a split.

    `stats.to_dict(model.cfg.sub_tokens)` gives mean NLL, bits per token and per-sub-token NLL.
    """
    reader = SplitReader(manifest, split)
    lay = window_layout(model, segmentation)
    batches = eval_batches(
        reader,
        max_len=lay["max_len"],
        batch_size=batch_size,
        pad_value=pad_value_of(manifest),
        pad_side=lay["pad_side"],
        hop=lay["hop"],
        max_batches=max_batches,
    )
    stats = nll_on_batches(model, batches, amp=amp)
    if stats is None:
        msg = f"split '{split}' of {manifest.encoding} has no piece of 2+ tokens to evaluate"
        raise ValueError(msg)
    return stats


@torch.no_grad()
def generate_samples(
    model: nn.Module,
    n: int,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    prompt: torch.Tensor | None = None,
    bos_id: int | None = None,
) -> list[torch.Tensor]:
    """n samples, each prompt + up to max_new_tokens tokens ([T] or [T, F], on CPU).

    Without a prompt each sample starts from one start token: `bos_id` (default: the first
    token id after PAD in each field, MidiTok's BOS=1 when PAD=0; 0 for codec models without
    a pad id). Sample i uses a generator seeded (seed, i), so a sample does not depend on n.
    """
    assert n >= 1 and max_new_tokens >= 1, "need n >= 1 and max_new_tokens >= 1"
    device = model_device(model)
    cfg = model.cfg  # type: ignore[attr-defined]
    n_fields = len(cfg.vocab_sizes)
    if prompt is None:
        start = bos_id if bos_id is not None else (1 if cfg.pad_id == 0 else 0)
        shape = (1, 1) if n_fields == 1 and not _compound(model) else (1, 1, n_fields)
        prompt = torch.full(shape, start, dtype=torch.long)
    assert prompt.dim() in (2, 3) and prompt.shape[0] == 1, (
        f"prompt must be [1, T] or [1, T, F], got {tuple(prompt.shape)}"
    )
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(n):
            gen = torch.Generator(device=device)
            gen.manual_seed(int(seed) * 1_000_003 + i)
            seq = model.generate(  # type: ignore[operator]
                prompt.to(device),
                max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                generator=gen,
            )
            out.append(seq[0].cpu())
    finally:
        model.train(was_training)
    return out


def _compound(model: nn.Module) -> bool:
    """Compound/codec models take [B, T, F] even when F = 1 (a single-codebook codec)."""
    cfg = model.cfg  # type: ignore[attr-defined]
    return len(cfg.sub_tokens) > 1 or getattr(cfg, "kind", "flat") in ("compound", "codec")
