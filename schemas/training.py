"""Records a trainer yields and the train/evaluate stages write to the catalog.

The trainer (models/) never writes the catalog: it yields these, and the one writer in musicdata
turns them into rows (DESIGN rule 1). Plain dataclasses with `to_dict`, no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricRecord:
    """One scalar at one optimizer step, e.g. ("train", "loss"), ("train", "lr"),
    ("validation", "nll"), ("train", "nll/pitch"), ("train", "tokens_per_s")."""

    step: int
    split: str
    name: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "metric", **asdict(self)}


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint written atomically: `path` is the safetensors file (a JSON file with the same
    stem beside it holds config, manifest hash, optimizer/scheduler/sampler/RNG state)."""

    step: int
    path: str
    sha256: str
    final: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "checkpoint", **asdict(self)}


TrainRecord = MetricRecord | CheckpointRecord
