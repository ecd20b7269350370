"""The model side's front door: what the train, evaluate and generate stages call.

The data side (musicdata) hands over a ShardManifest and gets records and arrays back; it never
touches torch. Training hyperparameters per preset live here (model sizes live in each family's
registry entry): `debug` trains in seconds on CPU (tests), `small` is a real CPU run in minutes,
`paper` follows the papers (NMT: batch 8, lr 1e-4 cosine, 2000 warm-up steps; a family may
override, e.g. PerceiverS's initial lr 0.03125 through its spec's `train_presets`). `paper` keeps
only the last 3 checkpoint files; their catalog rows stay, so a pruned checkpoint is still in the
lineage but no longer loadable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicdata.schemas.manifest import ShardManifest
from musicdata.schemas.training import TrainRecord

TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "debug": {
        "steps": 12,
        "batch_size": 4,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "warmup_steps": 2,
        "eval_every": 6,
        "eval_batches": 2,
        "ckpt_every": 6,
        "keep_last": 0,
        "weight_decay": 0.0,
    },
    "small": {
        "steps": 600,
        "batch_size": 16,
        "lr": 1e-3,
        "min_lr": 1e-4,
        "warmup_steps": 50,
        "eval_every": 100,
        "eval_batches": 8,
        "ckpt_every": 100,
        "keep_last": 0,
        "transpose": 3,
    },
    "paper": {
        "steps": 100_000,
        "batch_size": 8,
        "lr": 1e-4,
        "min_lr": 1e-5,
        "warmup_steps": 2000,
        "eval_every": 1000,
        "eval_batches": 32,
        "ckpt_every": 1000,
        "transpose": 5,
    },
}


@dataclass(frozen=True)
class Plan:
    """What a train call will do, known before the first step (for the catalog row)."""

    model: str
    preset: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    n_parameters: int
    device: str
    segmentation: str


def accepts(model: str) -> tuple[str, ...]:
    """Shard kinds or encoding names the model family accepts."""
    from musicdata.models.builders import MODELS

    if model not in MODELS:
        msg = f"unknown model {model!r}; registered: {', '.join(sorted(MODELS))}"
        raise ValueError(msg)
    return MODELS[model].kinds


def model_names() -> list[str]:
    from musicdata.models.builders import MODELS

    return sorted(MODELS)


def train_config(model: str, preset: str, **overrides: Any) -> Any:
    """TrainConfig of a preset: the shared table, the family's own `train_presets`, overrides."""
    from musicdata.models.builders import MODELS
    from musicdata.models.train.config import TrainConfig

    if preset not in TRAIN_PRESETS:
        msg = f"unknown preset {preset!r}; presets: {', '.join(TRAIN_PRESETS)}"
        raise ValueError(msg)
    family = getattr(MODELS[model], "train_presets", None) or {}
    values = {**TRAIN_PRESETS[preset], **family.get(preset, {})}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)


def train(
    model: str,
    preset: str,
    manifest: ShardManifest,
    out_dir: str | Path,
    *,
    resume_from: str | Path | None = None,
    model_overrides: dict[str, Any] | None = None,
    **train_overrides: Any,
) -> tuple[Plan, Iterator[TrainRecord]]:
    """Build the model for the manifest at `preset` and start training: (plan, records)."""
    import torch

    from musicdata.models.builders import MODELS, build
    from musicdata.models.train.loop import fit, resolve_device

    spec = MODELS[model]
    cfg = train_config(model, preset, **train_overrides)
    torch.manual_seed(cfg.seed)  # the initial weights are part of the run: same seed, same start
    net = build(model, preset, manifest, **(model_overrides or {}))
    plan = Plan(
        model=model,
        preset=preset,
        model_config=net.cfg.to_dict(),  # type: ignore[attr-defined]
        train_config=cfg.to_dict(),
        n_parameters=sum(p.numel() for p in net.parameters()),
        device=str(resolve_device(cfg.device)),
        segmentation=spec.segmentation,
    )
    records = fit(
        net,
        manifest,
        cfg,
        out_dir,
        resume_from=resume_from,
        model_name=model,
        segmentation=spec.segmentation,
        pad_side=spec.pad_side,
        extra_meta={"preset": preset, "manifest_hash": manifest.hash},
    )
    return plan, records


def evaluate(
    checkpoint: str | Path,
    manifest: ShardManifest,
    split: str = "test",
    *,
    batch_size: int = 8,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """NLL of a checkpoint on a split: mean_nll, bits_per_token, perplexity, tokens,
    sub_token_nll {name: nats}, sub_token_perplexity."""
    from musicdata.models.builders import MODELS
    from musicdata.models.evaluate import evaluate_nll
    from musicdata.models.train.checkpoint import load_model

    net = load_model(checkpoint)
    name = _checkpoint_model(checkpoint)
    stats = evaluate_nll(
        net, manifest, split, batch_size, max_batches, segmentation=MODELS[name].segmentation
    )
    return stats.to_dict(net.cfg.sub_tokens)  # type: ignore[attr-defined]


def generate(
    checkpoint: str | Path,
    n: int,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[np.ndarray]:
    """n unconditional samples from a checkpoint, as token arrays [T] or [T, F]."""
    from musicdata.models.evaluate import generate_samples
    from musicdata.models.train.checkpoint import load_model

    net = load_model(checkpoint)
    samples = generate_samples(
        net, n, max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
    )
    return [s.numpy() for s in samples]


def _checkpoint_model(checkpoint: str | Path) -> str:
    from musicdata.models.train.checkpoint import load_checkpoint

    return str(load_checkpoint(checkpoint).meta["model_name"])


# ---- Cadenza: variations of an input, ideas from the prior, evaluation ---------------------------


def _cadenza_pair(composer_ckpt: str | Path, performer_ckpt: str | Path) -> tuple[Any, Any]:
    """Load a Composer and a Performer checkpoint and check they share one PerTok vocabulary."""
    from musicdata.models.cadenza import Composer, Performer
    from musicdata.models.train.checkpoint import load_model

    composer, performer = load_model(composer_ckpt), load_model(performer_ckpt)
    if not isinstance(composer, Composer) or not isinstance(performer, Performer):
        msg = (
            f"{composer_ckpt} / {performer_ckpt}: need a 'cadenza' and a 'cadenza-performer' "
            f"checkpoint, got {type(composer).__name__} and {type(performer).__name__}"
        )
        raise ValueError(msg)
    if composer.cfg.vocab != performer.cfg.vocab:
        msg = (
            f"{composer_ckpt} and {performer_ckpt} were trained on different PerTok vocabularies; "
            "train both on the same pertok config (--config-hash)"
        )
        raise ValueError(msg)
    return composer, performer


def _with_bos(seqs: list[Any], bos_id: int) -> list[np.ndarray]:
    """PerTok ids out, each led by BOS like `generate`'s samples (decoders drop the start)."""
    return [np.concatenate([[bos_id], s.cpu().numpy()]).astype(np.int64) for s in seqs]


def variations(
    composer_ckpt: str | Path,
    performer_ckpt: str | Path,
    tokens: np.ndarray,
    n: int,
    *,
    temperature: float = 1.0,
    spread: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> list[np.ndarray]:
    """n Cadenza variations of one PerTok sequence [T]: latents around the input's posterior
    (spread 0: its mean, 1: a posterior sample), composed, then performed. -> n id arrays."""
    import torch

    from musicdata.models.cadenza_variations import variations as cadenza_variations

    composer, performer = _cadenza_pair(composer_ckpt, performer_ckpt)
    ids = torch.as_tensor(np.asarray(tokens).reshape(-1), dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    outs = cadenza_variations(
        composer,
        performer,
        ids,
        n,
        temperature=temperature,
        spread=spread,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        generator=gen,
    )
    return _with_bos(outs, composer.roles.bos_id)


def sample_prior(
    composer_ckpt: str | Path,
    performer_ckpt: str | Path,
    n: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> list[np.ndarray]:
    """n unconditional Cadenza ideas (z ~ N(0, I)), composed and performed. -> n id arrays."""
    import torch

    from musicdata.models.cadenza_variations import sample_prior as cadenza_prior

    composer, performer = _cadenza_pair(composer_ckpt, performer_ckpt)
    gen = torch.Generator().manual_seed(int(seed))
    outs = cadenza_prior(
        composer,
        performer,
        n,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        generator=gen,
    )
    return _with_bos(outs, composer.roles.bos_id)


def cadenza_evaluate(
    composer_ckpt: str | Path,
    performer_ckpt: str | Path,
    manifest: ShardManifest,
    split: str = "test",
    *,
    generated: list[np.ndarray] | None = None,
    batch_size: int = 8,
    max_batches: int | None = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Cadenza's own figures on a held-out split (deterministic windows): the Composer's
    reconstruction accuracy from z = mu, KL per latent dimension and active units (posterior
    collapse), the Performer's velocity / microtiming KL(held-out || re-performed held-out
    compositions), and, given `generated` id arrays, the same KL for them."""
    import torch

    from musicdata.models.cadenza_variations import (
        active_units,
        kl_per_dim,
        performance_kl,
        reconstruction_accuracy,
    )
    from musicdata.models.data import SplitReader, eval_batches, pad_value_of

    composer, performer = _cadenza_pair(composer_ckpt, performer_ckpt)
    reader = SplitReader(manifest, split)
    batches = list(
        eval_batches(
            reader,
            max_len=composer.cfg.max_len,
            batch_size=batch_size,
            pad_value=pad_value_of(manifest),
            max_batches=max_batches,
        )
    )
    if not batches:
        msg = f"split '{split}' of {manifest.encoding} has no window to evaluate Cadenza on"
        raise ValueError(msg)
    kl = kl_per_dim(composer, batches)
    n_windows = sum(len(b["tokens"]) for b in batches)
    held_out = [t[m] for b in batches for t, m in zip(b["tokens"], b["mask"], strict=True)]
    gen = torch.Generator().manual_seed(int(seed))
    performed = [
        r[r != performer.roles.pad_id]
        for b in batches
        for r in performer.generate(b["tokens"] * b["mask"], generator=gen)
    ]
    perf = performance_kl(performed, held_out, performer.roles)
    out: dict[str, Any] = {
        "split": split,
        "windows": n_windows,
        "reconstruction_accuracy": reconstruction_accuracy(composer, batches),
        "kl_total": float(kl.sum()),
        "kl_per_dim": [round(float(x), 5) for x in kl],
        "active_units": active_units(composer, batches) if n_windows >= 2 else 0,
        "latent_dim": composer.cfg.latent_dim,
        "performer_kl_velocity": perf["velocity"],
        "performer_kl_microtiming": perf["microtiming"],
    }
    if generated:
        seqs = [torch.as_tensor(np.asarray(g).reshape(-1), dtype=torch.long) for g in generated]
        g = performance_kl(seqs, held_out, performer.roles)
        out.update(generated_kl_velocity=g["velocity"], generated_kl_microtiming=g["microtiming"])
    return out
