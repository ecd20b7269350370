"""TrainConfig: every knob of a training run, saved in each checkpoint's JSON.

Batch sizes are per process: the examples per optimizer step are
batch_size x grad_accum x world_size. `steps` counts optimizer steps (not micro-batches).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TrainConfig", "lr_at"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_steps: int = 10
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    log_every: int = 1
    eval_every: int = 50  # 0: only at the end
    eval_batches: int = 8  # per evaluation and rank; 0: the whole split
    eval_batch_size: int = 0  # 0: same as batch_size
    ckpt_every: int = 50  # 0: only the final checkpoint
    keep_last: int = 3  # older step checkpoints are deleted; 0 keeps all
    seed: int = 0
    device: str = "auto"  # "auto": cuda if available else cpu; or "cpu", "cuda", "cuda:1"
    amp: bool = True  # bf16 autocast, on CUDA only (CPU runs stay float32, bitwise resumable)
    transpose: int = 0  # pitch transposition augmentation in [-k, k] semitones; 0 = off
    ddp_find_unused: bool = True  # DDP: allow parameters that get no gradient in a step
    train_split: str = "train"
    eval_split: str = "validation"

    def __post_init__(self) -> None:
        assert self.steps >= 1, f"steps must be >= 1, got {self.steps}"
        assert self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"
        assert self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"
        assert 0 <= self.min_lr <= self.lr, f"need 0 <= min_lr ({self.min_lr}) <= lr ({self.lr})"
        assert self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}"
        assert len(self.betas) == 2, f"betas are two floats, got {self.betas}"
        assert self.transpose >= 0, f"transpose range must be >= 0, got {self.transpose}"
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            msg = f"unknown TrainConfig key(s) {sorted(unknown)}; known: {sorted(names)}"
            raise ValueError(msg)
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (1-based): linear warm-up to lr, then cosine to
    min_lr at `steps`. A pure function of the step, so resuming needs no scheduler object."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))
