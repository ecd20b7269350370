"""python -m musicdata.models.train: train a registry model on a manifest, one JSON record per line.

    python -m musicdata.models.train --manifest m.json --model flat --preset debug --out DIR \
        --steps 20
    torchrun --standalone --nproc_per_node=2 -m musicdata.models.train --manifest m.json ...   (DDP)

The same entry serves torchrun (every rank runs it; rank 0 prints the records). `--resume auto`
continues from the newest complete checkpoint in --out when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from musicdata.models.train.checkpoint import latest_checkpoint
from musicdata.models.train.config import TrainConfig
from musicdata.models.train.loop import fit, init_distributed
from musicdata.schemas.manifest import ShardManifest

Builder = Callable[[str, str, ShardManifest, dict[str, Any]], tuple[nn.Module, str, str]]


def _registry_builder(
    name: str, preset: str, manifest: ShardManifest, overrides: dict[str, Any]
) -> tuple[nn.Module, str, str]:
    from musicdata.models.builders import MODELS, build

    spec = MODELS[name]
    return build(name, preset, manifest, **overrides), spec.segmentation, spec.pad_side


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m musicdata.models.train", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--manifest", required=True, type=Path, help="ShardManifest JSON")
    ap.add_argument("--model", required=True, help="registry name (flat, nmt, ...)")
    ap.add_argument("--preset", default="debug")
    ap.add_argument("--out", required=True, type=Path, help="checkpoint folder")
    ap.add_argument("--resume", default=None, help="checkpoint path, folder, or 'auto' (= --out)")
    ap.add_argument("--segmentation", default=None, help="override the registry's strategy")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override (JSON value), repeatable",
    )
    ap.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig field (JSON value), repeatable; e.g. --train ckpt_every=5",
    )
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--device", default=None)
    return ap.parse_args(argv)


def _pairs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        assert sep, f"expected KEY=VALUE, got {item!r}"
        out[key.strip()] = _value(val)
    return out


def main(argv: Sequence[str] | None = None, *, builder: Builder | None = None) -> int:
    """Run one training (or one rank of it); `builder` replaces the registry (tests)."""
    args = parse_args(argv)
    rank, _ = init_distributed()
    manifest = ShardManifest.load(args.manifest)
    train = _pairs(args.train)
    for key in ("steps", "batch_size", "seed", "device"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    cfg = TrainConfig.from_dict(train)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every attempt
    model, segmentation, pad_side = (builder or _registry_builder)(
        args.model, args.preset, manifest, _pairs(args.set)
    )
    resume = args.resume
    if resume == "auto":
        found = latest_checkpoint(args.out)
        resume = str(found) if found is not None else None
    records = fit(
        model,
        manifest,
        cfg,
        args.out,
        resume_from=resume,
        model_name=args.model,
        segmentation=args.segmentation or segmentation,
        pad_side=None if args.segmentation else pad_side,
        extra_meta={"preset": args.preset},
    )
    try:
        for rec in records:
            if rank == 0:
                print(json.dumps(rec.to_dict(), sort_keys=True), flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
