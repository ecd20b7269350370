"""The train stage: shard manifest -> a model family's trainer -> checkpoints and curves, recorded.

A driver on the stage kit. The trainer (models/, pure PyTorch) yields MetricRecord and
CheckpointRecord; this process is the one catalog writer: metrics are buffered and written with
each checkpoint in one short transaction, so the catalog never names a checkpoint file that is
not complete on disk (the trainer renames it into place before yielding). Lineage:
shard -> train_run:<id> -> checkpoint:<id>. A killed run resumes with `resume=<train run id>` from
its newest complete checkpoint, bitwise as if it had not been killed (models/train/loop.py).

`trainer` is the model side's front door (`models.api`), passed in by the caller (CLI, flow,
notebook) so this library never imports torch.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from musicdata.catalog import records
from musicdata.catalog import training as sql
from musicdata.datasets import LATEST
from musicdata.schemas.manifest import ShardManifest
from musicdata.schemas.training import CheckpointRecord, MetricRecord
from musicdata.stages.kit import Summary, stage_run
from musicdata.store.manifest import build_manifest
from musicdata.workspace import Workspace

STAGE = "train"
RUNS_DIR = "runs"
KEYS = ("steps", "checkpoints", "metrics")


class Trainer(Protocol):
    """What the stage needs of the model side (models.api implements it)."""

    def accepts(self, model: str) -> tuple[str, ...]: ...

    def train(
        self, model: str, preset: str, manifest: ShardManifest, out_dir: Any, **kw: Any
    ) -> tuple[Any, Any]: ...


def new_train_run_id(model: str, encoding: str) -> str:
    return f"train-{model}-{encoding}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}"


def train(
    ws: Workspace,
    trainer: Trainer,
    *,
    model: str = "nmt",
    encoding: str = "nb-pf",
    preset: str = "debug",
    steps: int | None = None,
    resume: str | None = None,
    config_hash: str | None = LATEST,
    run_id: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    model_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> Summary:
    """Train `model` on `encoding`'s shards (newest config unless named); with `resume`, continue
    that train run from its last checkpoint (model, encoding, preset and steps come from it).
    `train_overrides`: TrainConfig fields over the preset's (batch_size, lr, ckpt_every, ...)."""
    if resume:
        with ws.catalog.read() as con:
            prev = sql.train_run(con, resume)
        if prev is None:
            msg = f"no train run {resume!r} in {ws.catalog_path}; `musicdata catalog sql "
            msg += "'select train_run_id from train_runs'` lists them"
            raise ValueError(msg)
        model, encoding, preset = prev["model"], prev["encoding"], prev["preset"]
        config_hash = prev["encoding_config_hash"]
        steps = steps or prev["target_steps"]
    _check_accepts(trainer, model, encoding, ws)
    manifest, shard_ids = build_manifest(ws, encoding, config_hash)
    if not manifest.split("train"):
        msg = f"{encoding}@{manifest.config_hash} has no train-split shards; ingest more pieces"
        raise ValueError(msg)
    train_run_id = resume or new_train_run_id(model, encoding)
    run_id = run_id or (f"{train_run_id}:resume-{time.time_ns()}" if resume else train_run_id)
    out_dir = f"{RUNS_DIR}/{train_run_id}"
    info = {"train_run_id": train_run_id, "model": model, "encoding": encoding, "preset": preset}
    with stage_run(ws, STAGE, run_id, config_hash=manifest.hash, keys=KEYS, info=info) as summary:
        plan, records = trainer.train(
            model,
            preset,
            manifest,
            ws.abspath(out_dir),
            resume_from=ws.abspath(out_dir) if resume else None,
            model_overrides=model_overrides,
            **{**(train_overrides or {}), "steps": steps, "seed": seed, "device": device},
        )
        row = {
            "train_run_id": train_run_id,
            "run_id": run_id,
            "model": model,
            "encoding": encoding,
            "encoding_config_hash": manifest.config_hash,
            "config_json": json.dumps(
                {"model": plan.model_config, "train": plan.train_config}, sort_keys=True
            ),
            "device": plan.device,
            "preset": preset,
            "manifest_hash": manifest.hash,
            "out_dir": out_dir,
            "target_steps": plan.train_config["steps"],
            "n_parameters": plan.n_parameters,
        }
        summary.info.update(n_parameters=plan.n_parameters, device=plan.device)
        with ws.catalog.write() as con:
            sql.start_train_run(con, row, shard_ids)
        try:
            _record(ws, records, train_run_id, manifest.hash, run_id, summary)
        except BaseException:
            with ws.catalog.write() as con:
                sql.finish_train_run(con, train_run_id, "failed", summary.to_dict())
            raise
        with ws.catalog.write() as con:
            sql.finish_train_run(con, train_run_id, "completed", summary.to_dict())
    return summary


def _check_accepts(trainer: Trainer, model: str, encoding: str, ws: Workspace) -> None:
    kinds = trainer.accepts(model)
    with ws.catalog.read() as con:
        kind = records.encoding_kind(con, encoding)
    if kind is None:
        msg = f"no encoding {encoding!r} in this workspace; run `musicdata tokenize -e {encoding}`"
        raise ValueError(msg)
    if encoding not in kinds and kind not in kinds:
        msg = (
            f"model {model!r} trains on {', '.join(kinds)} shards; {encoding!r} is {kind}. "
            "nmt takes compound/codec encodings (nb-pf, nb-mf, cp, octuple, encodec-*), flat takes "
            "flat ones (remi, midilike, pertok, performance)"
        )
        raise ValueError(msg)


def _record(
    ws: Workspace, records: Any, train_run_id: str, manifest_hash: str, run_id: str, s: Summary
) -> None:
    """Metrics are buffered and land with the next checkpoint, in one transaction."""
    buffer: list[dict[str, Any]] = []
    for rec in records:
        if isinstance(rec, MetricRecord):
            buffer.append(
                {
                    "train_run_id": train_run_id,
                    "step": rec.step,
                    "split": rec.split,
                    "name": rec.name,
                    "value": rec.value,
                    "created_at": sql.now(),
                }
            )
            s.counts["steps"] = max(s.counts["steps"], rec.step)
            if rec.name in ("loss", "nll"):
                s.info[f"{rec.split}_{rec.name}"] = round(rec.value, 5)
        elif isinstance(rec, CheckpointRecord):
            ckpt = {
                "checkpoint_id": f"{train_run_id}:step-{rec.step:07d}",
                "train_run_id": train_run_id,
                "step": rec.step,
                "path": str(Path(rec.path).resolve().relative_to(ws.root)),
                "file_sha256": rec.sha256,
                "created_at": sql.now(),
            }
            with ws.catalog.write() as con:
                sql.record_metrics(con, buffer)
                sql.record_checkpoint(con, ckpt, manifest_hash, run_id)
            s.add("metrics", len(buffer))
            s.add("checkpoints")
            s.info["checkpoint_id"] = ckpt["checkpoint_id"]
            buffer = []
    if buffer:
        with ws.catalog.write() as con:
            sql.record_metrics(con, buffer)
        s.add("metrics", len(buffer))
