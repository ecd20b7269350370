"""The model registry: a name -> (config class, model class, shard kinds, presets, segmentation).

The musicdata side (train stage, CLI) knows models only by registry name and preset; `build`
sizes a model from a shard manifest (vocabularies, field names, PAD), so the same preset serves
every encoding the model accepts. Families register themselves with `register(ModelSpec(...))`
from their own module (models/perceivers.py, models/cadenza.py); this module imports those at
the bottom when the files exist, so a checkout without them still builds "nmt" and "flat".
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from musicdata.models.flat import FlatConfig, FlatDecoder
from musicdata.models.nmt import NestedMusicTransformer, NMTConfig
from musicdata.schemas.manifest import ShardManifest

__all__ = ["MODELS", "ModelSpec", "build", "build_config", "count_parameters", "register"]


@dataclass(frozen=True)
class ModelSpec:
    """One model family. `kinds`: shard kinds ("flat", "compound", "codec") or encoding names it
    accepts. `from_manifest`: extra config fields the family reads from a manifest (beyond
    vocab_sizes / sub_tokens / pad_id, which `build` fills for every family)."""

    name: str
    config_cls: type
    model_cls: type[nn.Module]
    kinds: tuple[str, ...]
    presets: dict[str, dict[str, Any]]
    segmentation: str  # "stride" | "effective" | "random" (models/data/windows.py)
    pad_side: str = "right"  # "right" | "left"
    from_manifest: Callable[[ShardManifest], dict[str, Any]] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        for need in ("debug", "small", "paper"):
            assert need in self.presets, f"model {self.name!r}: preset {need!r} is missing"
        assert self.pad_side in ("right", "left"), f"pad_side {self.pad_side!r}"
        assert self.segmentation in ("stride", "effective", "random"), (
            f"model {self.name!r}: unknown segmentation {self.segmentation!r}"
        )


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace, on re-import) a family in MODELS; returns the spec."""
    MODELS[spec.name] = spec
    return spec


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        msg = f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}"
        raise ValueError(msg)
    return MODELS[name]


def build_config(name: str, preset: str, manifest: ShardManifest, **overrides: Any) -> Any:
    """The config `build` would use: preset, then the manifest's sizes, then `overrides`."""
    spec = _spec(name)
    if manifest.kind not in spec.kinds and manifest.encoding not in spec.kinds:
        msg = (
            f"model {name!r} accepts {', '.join(spec.kinds)}, but the manifest holds "
            f"{manifest.encoding!r} ({manifest.kind}); pick another model or encoding"
        )
        raise ValueError(msg)
    if preset not in spec.presets:
        msg = f"model {name!r} has no preset {preset!r}; presets: {', '.join(spec.presets)}"
        raise ValueError(msg)
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = set(overrides) - known
    if unknown:
        msg = f"model {name!r}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}"
        raise ValueError(msg)
    values: dict[str, Any] = dict(spec.presets[preset])
    values.update(
        vocab_sizes=list(manifest.vocab_sizes),
        sub_tokens=list(manifest.sub_tokens),
        pad_id=manifest.pad_id,
    )
    if spec.from_manifest is not None:
        values.update(spec.from_manifest(manifest))
    values.update(overrides)
    return spec.config_cls(**values)


def build(name: str, preset: str, manifest: ShardManifest, **overrides: Any) -> nn.Module:
    """A freshly initialised model of family `name` at `preset`, sized for `manifest`."""
    cfg = build_config(name, preset, manifest, **overrides)
    return _spec(name).model_cls(cfg)


def count_parameters(name: str, preset: str, manifest: ShardManifest, **overrides: Any) -> int:
    """Parameter count without allocating weights (built on the meta device)."""
    cfg = build_config(name, preset, manifest, **overrides)
    with torch.device("meta"):
        model = _spec(name).model_cls(cfg)
    return sum(p.numel() for p in model.parameters())


# ---- the families of this module -------------------------------------------------------------

register(
    ModelSpec(
        name="flat",
        config_cls=FlatConfig,
        model_cls=FlatDecoder,
        kinds=("flat",),
        presets={
            "debug": {"dim": 32, "n_heads": 2, "n_layers": 2, "max_len": 64, "dropout": 0.0},
            "small": {"dim": 128, "n_heads": 4, "n_layers": 4, "max_len": 512, "dropout": 0.1},
            # NMT paper, SOD row: REMI input length 8192, same main decoder as NMT
            "paper": {"dim": 512, "n_heads": 8, "n_layers": 6, "max_len": 8192, "dropout": 0.2},
        },
        segmentation="stride",
        description="GPT-style causal decoder over flat tokens (REMI baseline, NMT paper)",
    )
)

register(
    ModelSpec(
        name="nmt",
        config_cls=NMTConfig,
        model_cls=NestedMusicTransformer,
        kinds=("compound", "codec"),
        presets={
            "debug": {
                "dim": 32,
                "n_heads": 2,
                "n_layers": 2,
                "max_len": 32,
                "dropout": 0.0,
                "sub_decoder": "cross",
                "enricher": True,
            },
            "small": {
                "dim": 128,
                "n_heads": 4,
                "n_layers": 4,
                "max_len": 192,
                "dropout": 0.1,
                "sub_decoder": "cross",
                "enricher": True,
            },
            # NMT paper, SOD row: dim 512, 8 heads, 6 layers, one-layer cross-attention
            # sub-decoder with the Embedding Enricher, dropout 0.2, NB input length 3072
            "paper": {
                "dim": 512,
                "n_heads": 8,
                "n_layers": 6,
                "max_len": 3072,
                "dropout": 0.2,
                "sub_decoder": "cross",
                "sub_layers": 1,
                "enricher": True,
            },
        },
        segmentation="stride",
        from_manifest=lambda m: {"kind": m.kind},
        description="Nested Music Transformer: compound tokens, sub-tokens decoded in order",
    )
)


# ---- families registered from their own modules (absent files are skipped) -------------------

for _module in ("musicdata.models.perceivers", "musicdata.models.cadenza"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as _e:
        if _e.name != _module:  # the file exists but one of its imports is missing: say so
            raise
