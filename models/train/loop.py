"""The training loop: fit(...) trains any contract model on a manifest and yields records.

It never writes the catalog (DESIGN rule 1): the caller turns MetricRecord/CheckpointRecord into
rows. AdamW (no decay on biases/norms/embeddings... i.e. on tensors under 2-D), cosine schedule
with linear warm-up as a pure function of the step, gradient accumulation and clipping, bf16
autocast on CUDA, DDP when torch.distributed is initialised (torchrun; gloo on CPU, NCCL on GPU).

Exact resume: every input to a step is a function of the checkpoint (weights, optimizer tensors,
step, sampler position, each rank's RNG states), so a run killed after a checkpoint and resumed
from it ends bitwise equal to the uninterrupted run on CPU (tests/models/test_train.py).
Only rank 0 writes checkpoints and yields records; every rank must iterate fit() to the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from musicdata.models.data import (
    PAD_SIDE,
    STRATEGIES,
    SplitReader,
    TrainBatches,
    eval_batches,
    make_transposer,
    pad_value_of,
)
from musicdata.models.evaluate import nll_on_batches
from musicdata.models.nll import NLLStats
from musicdata.models.train.checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from musicdata.models.train.config import TrainConfig, lr_at
from musicdata.schemas.faults import fault as _fault  # MUSICDATA_FAULT=point:n (kill -9 tests)
from musicdata.schemas.manifest import ShardManifest
from musicdata.schemas.training import CheckpointRecord, MetricRecord, TrainRecord

__all__ = ["fit", "init_distributed", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device(f"cuda:{local}")
        return torch.device("cpu")
    return torch.device(name)


def init_distributed() -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _LossModule(nn.Module):
    """DDP hooks forward(); the contract's entry is loss(batch), so forward calls it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.last_stats: NLLStats | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, stats = self.model.loss(batch)  # type: ignore[operator]
        self.last_stats = stats
        return loss


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    plain = [p for _, p in model.named_parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def _stats_detached(s: NLLStats) -> NLLStats:
    return NLLStats(s.nats.detach().cpu(), s.counts.detach().cpu(), int(s.tokens))


def _all_reduce_stats(stats: NLLStats | None, n_fields: int) -> NLLStats | None:
    if not dist.is_initialized():
        return stats
    if stats is None:
        stats = NLLStats(
            torch.zeros(n_fields, dtype=torch.float64), torch.zeros(n_fields, dtype=torch.int64), 0
        )
    buf = torch.cat(
        [
            stats.nats,
            stats.counts.double(),
            torch.tensor([float(stats.tokens)], dtype=torch.float64),
        ]
    )
    if dist.get_backend() == "nccl":
        buf = buf.cuda()
    dist.all_reduce(buf)
    buf = buf.cpu()
    return NLLStats(
        buf[:n_fields], buf[n_fields : 2 * n_fields].round().long(), int(buf[-1].item())
    )


def _mean_across(value: float, device: torch.device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor(
        [value], dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu"
    )
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _nll_records(step: int, split: str, stats: NLLStats, names: list[str]) -> list[MetricRecord]:
    out = [MetricRecord(step, split, "nll", stats.mean_nll)]
    if len(names) > 1:
        out.append(MetricRecord(step, split, "bits_per_token", stats.bits_per_token))
        out += [
            MetricRecord(step, split, f"nll/{n}", float(v))
            for n, v in zip(names, stats.sub_token_mean().tolist(), strict=True)
        ]
    return out


def fit(
    model: nn.Module,
    manifest: ShardManifest,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    model_name: str = "model",
    segmentation: str = "stride",
    pad_side: str | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Iterator[TrainRecord]:
    """Train `model` for cfg.steps optimizer steps, yielding metric and checkpoint records.

    resume_from: a checkpoint (either file or stem) or a folder (its newest complete checkpoint).
    segmentation: "stride" | "effective" | "random" (the model's registry entry names one);
    pad_side: "right" | "left", by default the segmentation's (left for "effective").
    extra_meta: JSON-safe values stored in every checkpoint's JSON (e.g. preset, run id).
    """
    assert segmentation in STRATEGIES, f"unknown segmentation {segmentation!r}; one of {STRATEGIES}"
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = resolve_device(cfg.device)
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    mcfg = model.cfg  # type: ignore[attr-defined]
    names = list(mcfg.sub_tokens)
    max_len = int(mcfg.max_len)
    query_len = getattr(mcfg, "query_len", None)
    pad_side = pad_side or getattr(mcfg, "pad_side", None) or PAD_SIDE[segmentation]
    model.to(device)
    model.train()
    optimizer = _optimizer(model, cfg)

    train = TrainBatches(
        SplitReader(manifest, cfg.train_split),
        strategy=segmentation,
        max_len=max_len,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        pad_value=pad_value_of(manifest),
        pad_side=pad_side,
        query_len=query_len,
        transposer=make_transposer(manifest, cfg.transpose),
        rank=rank,
        world=world,
    )
    has_eval = bool(manifest.split(cfg.eval_split))
    eval_reader = SplitReader(manifest, cfg.eval_split) if has_eval else None

    step = 0
    if resume_from is not None:
        src = Path(resume_from)
        if src.is_dir():
            found = latest_checkpoint(src)
            assert found is not None, f"no complete checkpoint in {src} to resume from"
            src = found
        ckpt = load_checkpoint(src, map_location=str(device))
        meta = ckpt.meta
        if meta["manifest_hash"] != manifest.hash:
            msg = (
                f"{ckpt.path} was trained on manifest {meta['manifest_hash']}, not "
                f"{manifest.hash}; resume with the same shards or start a new run"
            )
            raise ValueError(msg)
        assert meta["model_config"] == json.loads(json.dumps(mcfg.to_dict())), (
            f"{ckpt.path}: the model config differs from the checkpoint's; build the model "
            "with the checkpoint's registry name, preset and overrides"
        )
        model.load_state_dict(ckpt.model_state, strict=True)
        optimizer.load_state_dict(ckpt.optimizer_state())
        train.load_state_dict(meta["sampler"])
        rngs = meta["rng"]
        assert len(rngs) == world, (
            f"{ckpt.path} has RNG states of {len(rngs)} ranks, this run {world}"
        )
        restore_rng(rngs[rank])
        step = int(meta["step"])
    else:
        torch.manual_seed(cfg.seed * 1_000_003 + rank)  # dropout masks differ across ranks
        np.random.seed((cfg.seed * 1_000_003 + rank) % 2**32)

    wrapped: nn.Module = _LossModule(model)
    if dist.is_initialized():
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Some families have parameters a step may not use (NMT's last sub-token embedding
        # feeds no later sub-token), which plain DDP rejects; the search costs one graph walk.
        wrapped = DDP(
            wrapped,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.ddp_find_unused,
        )
    loss_mod = wrapped.module if dist.is_initialized() else wrapped
    autocast = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if cfg.amp and device.type == "cuda"
        else contextlib.nullcontext
    )
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    base_meta = {
        "model_name": model_name,
        "model_config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "manifest_hash": manifest.hash,
        "encoding": manifest.encoding,
        "segmentation": segmentation,
        "pad_side": pad_side,
        "world_size": world,
        **(extra_meta or {}),
    }

    t_last, tok_since = time.perf_counter(), 0
    while step < cfg.steps:
        step += 1
        lr = lr_at(step, cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss_sum, step_stats = 0.0, None
        for micro in range(cfg.grad_accum):
            batch = {k: v.to(device, non_blocking=True) for k, v in train.next_batch().items()}
            sync = not dist.is_initialized() or micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if sync else wrapped.no_sync(), autocast():
                loss = wrapped(batch)
                (loss / cfg.grad_accum).backward()
            loss_sum += float(loss.detach())
            s = _stats_detached(loss_mod.last_stats)  # type: ignore[arg-type]
            step_stats = s if step_stats is None else step_stats + s
            tok_since += int(batch["mask"][:, 1:].sum())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _fault("train.after_step")

        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps):
            now = time.perf_counter()
            tps = tok_since * world / max(now - t_last, 1e-9)
            t_last, tok_since = now, 0
            loss_mean = _mean_across(loss_sum / cfg.grad_accum, device)
            stats = _all_reduce_stats(step_stats, len(names))
            if rank == 0:
                yield MetricRecord(step, "train", "loss", loss_mean)
                yield MetricRecord(step, "train", "lr", lr)
                yield MetricRecord(step, "train", "grad_norm", grad_norm)
                yield MetricRecord(step, "train", "tokens_per_s", tps)
                if stats is not None:
                    yield from _nll_records(step, "train", stats, names)

        final = step == cfg.steps
        if eval_reader is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or final):
            batches = eval_batches(
                eval_reader,
                max_len=max_len,
                batch_size=cfg.eval_batch_size or cfg.batch_size,
                pad_value=pad_value_of(manifest),
                pad_side=pad_side,
                hop=query_len,
                max_batches=cfg.eval_batches or None,
                rank=rank,
                world=world,
            )
            stats = _all_reduce_stats(nll_on_batches(model, batches, amp=cfg.amp), len(names))
            if rank == 0 and stats is not None and stats.counts.sum() > 0:
                yield from _nll_records(step, cfg.eval_split, stats, names)

        if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or final:
            rng = capture_rng()
            rngs = [rng] * world
            if dist.is_initialized():
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, rng)
                rngs = gathered
            if rank == 0:
                path = out / f"step-{step:08d}.safetensors"
                meta = {**base_meta, "step": step, "final": final, "sampler": train.state_dict()}
                meta["rng"] = rngs
                meta["scheduler"] = {"kind": "cosine_warmup", "step": step, "lr": lr}
                st_path, digest = save_checkpoint(path, model, optimizer, meta)
                prune_checkpoints(out, cfg.keep_last)
                info = {"manifest_hash": manifest.hash, "model_name": model_name}
                yield CheckpointRecord(step, str(st_path), digest, final, info)
            if dist.is_initialized():
                dist.barrier()
            _fault("train.after_checkpoint")
