"""Flows `train`, `evaluate`, `generate` and the main job `ingest-and-train`.

Each flow is a few lines: open the workspace, call the stage (a task tagged `gpu`, so the server's
`gpu` concurrency limit keeps one model stage per GPU) with the model side's front door
(`models.api`), publish the summary as artifacts, emit the completion event. Training runs in the
flow process (it is the catalog writer: the trainer yields records, the stage writes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from musicdata.catalog import records
from musicdata.catalog import training as training_sql
from musicdata.datasets import LATEST
from musicdata.flows.artifacts import artifact_key, publish_summary
from musicdata.flows.events import emit_completed
from musicdata.flows.ingest_tokenize import _run_id, ingest_flow, tokenize_flow
from musicdata.flows.policy import GPU, stage_task
from musicdata.models import api
from musicdata.stages import evaluate as evaluate_stage
from musicdata.stages import train as train_stage
from musicdata.workspace import Workspace

# Training is not retried by Prefect: a rerun would start a new train run; a killed or failed one
# continues with `resume=<train run id>` from its newest checkpoint instead.
_train = stage_task(train_stage.train, "train-model", tags=(GPU,), retries=0)
_evaluate = stage_task(evaluate_stage.evaluate, "evaluate-checkpoint", tags=(GPU,))
_generate = stage_task(evaluate_stage.generate, "generate-samples", tags=(GPU,))


def _ws(home: str | None, config: str | None) -> Workspace:
    return Workspace.open(home, Path(config) if config else None)


def _split_with_shards(ws: Workspace, encoding: str, wanted: str) -> str:
    """`wanted` if the encoding has shards there, else validation, else train: a small corpus
    may have no test pieces, and the main job should still evaluate (and say so)."""
    with ws.catalog.read() as con:
        have = records.shard_splits(con, encoding)
    split = next((s for s in (wanted, "validation", "train") if s in have), wanted)
    if split != wanted:
        get_run_logger().warning("no %s shards of %s: evaluating on %s", wanted, encoding, split)
    return split


@flow(name="train")
def train_flow(
    home: str | None = None,
    config: str | None = None,
    model: str = "nmt",
    encoding: str = "nb-pf",
    preset: str = "debug",
    steps: int | None = None,
    resume: str | None = None,
    config_hash: str | None = LATEST,
    seed: int | None = None,
    device: str | None = None,
    model_overrides: dict[str, Any] | None = None,
    evaluate_split: str | None = None,
    chained: bool = False,
) -> dict[str, Any]:
    """Train a registry model on an encoding's shards (newest config unless `config_hash`);
    `resume` continues a train run. With `evaluate_split`, evaluate the result on that split in
    this run too. `chained`: the caller runs the next stage itself (see flows/events.py)."""
    ws = _ws(home, config)
    summary = _train(
        ws,
        api,
        model=model,
        encoding=encoding,
        preset=preset,
        steps=steps,
        resume=resume,
        config_hash=config_hash,
        seed=seed,
        device=device,
        model_overrides=model_overrides,
        run_id=None if resume else _run_id("train"),
    )
    s = summary.to_dict()
    with ws.catalog.read() as con:
        curve = training_sql.curve(con, s["train_run_id"])
    publish_summary(
        summary,
        f"Train {s['train_run_id']}",
        key=artifact_key("train", model, encoding),
        tables={"curve": curve},
    )
    get_run_logger().info("train: %s", s)
    emit_completed("train", s, str(ws.root), chained=chained or evaluate_split is not None)
    if evaluate_split:
        split = _split_with_shards(ws, s["encoding"], evaluate_split)
        s["evaluate"] = evaluate_flow(
            s["train_run_id"], str(ws.root), config, split=split, chained=chained
        )
    return s


@flow(name="evaluate")
def evaluate_flow(
    train_run_id: str,
    home: str | None = None,
    config: str | None = None,
    split: str = "test",
    checkpoint: str | None = None,
    max_batches: int | None = None,
    chained: bool = False,
) -> dict[str, Any]:
    """NLL (mean, bits per token, per sub-token) of a train run's checkpoint on a split."""
    ws = _ws(home, config)
    summary = _evaluate(
        ws, api, train_run_id, split=split, checkpoint=checkpoint, max_batches=max_batches
    )
    s = summary.to_dict()
    metrics = [
        {"metric": k, "value": v}
        for k, v in s.items()
        if k in ("nll", "bits_per_token", "perplexity") or k.startswith("nll/")
    ]
    publish_summary(
        summary,
        f"Evaluate {train_run_id} on {split}",
        key=artifact_key("evaluate", split),
        tables={"metrics": metrics},
    )
    emit_completed("evaluate", s, str(ws.root), chained=chained)
    return s


@flow(name="generate")
def generate_flow(
    train_run_id: str,
    home: str | None = None,
    config: str | None = None,
    n: int = 4,
    max_new_tokens: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample pieces from a train run's newest checkpoint into MIDI files."""
    ws = _ws(home, config)
    summary = _generate(ws, api, train_run_id, n=n, max_new_tokens=max_new_tokens, seed=seed)
    publish_summary(summary, f"Generate {train_run_id}", key="generate")
    return summary.to_dict()


@flow(name="ingest-and-train")
def ingest_and_train(
    paths: list[str],
    home: str | None = None,
    config: str | None = None,
    model: str = "nmt",
    encoding: str = "nb-pf",
    preset: str = "debug",
    steps: int | None = None,
    split: str = "test",
    samples: int = 0,
    report: bool = False,
) -> dict[str, Any]:
    """The main job: ingest -> transcribe -> tokenize -> train -> evaluate on `split` (->
    generate `samples` pieces) -> report. With `report` False (the deployments' default) the
    report is left to the server's automation on `musicdata.evaluate.completed` (the `report`
    deployment, on the CPU pool); True runs it in this flow run (no server, no automation)."""
    from musicdata.flows.audio import transcribe_flow
    from musicdata.flows.report import report_flow

    ws = _ws(home, config)
    home = str(ws.root)
    out: dict[str, Any] = {"ingest": ingest_flow(paths, home, config, False, chained=True)}
    if ws.config.transcribe.enabled:
        out["transcribe"] = transcribe_flow(home, config)
    out["tokenize"] = tokenize_flow([encoding], home, config, chained=True)
    trained = train_flow(
        home, config, model=model, encoding=encoding, preset=preset, steps=steps, chained=True
    )
    tid = trained["train_run_id"]
    out["train"] = trained
    split = _split_with_shards(ws, encoding, split)
    out["evaluate"] = evaluate_flow(tid, home, config, split=split, chained=report)
    if samples:
        out["generate"] = generate_flow(tid, home, config, n=samples)
    if report:
        out["report"] = report_flow(home, None, config)
    return out
