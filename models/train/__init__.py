"""The training core: fit(...) yields records; checkpoints are safetensors + JSON, never pickle."""

from musicdata.models.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from musicdata.models.train.config import TrainConfig, lr_at
from musicdata.models.train.loop import fit, init_distributed, resolve_device

__all__ = [
    "Checkpoint",
    "TrainConfig",
    "fit",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "lr_at",
    "resolve_device",
    "save_checkpoint",
]
