"""Flows `train`, `evaluate`, `generate` and the main job `ingest-and-train`.

Each flow is a few lines: open the workspace, call the stage with the model side's front door
(`models.api`), publish the summary. Training runs in the flow process (it is the catalog writer);
tagged `gpu` so a deployment's concurrency limit keeps one run per GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from musicdata.flows.ingest_tokenize import _artifact, _run_id, ingest_flow, tokenize_flow
from musicdata.models import api
from musicdata.stages import evaluate as evaluate_stage
from musicdata.stages import train as train_stage
from musicdata.workspace import Workspace


def _ws(home: str | None, config: str | None) -> Workspace:
    return Workspace.open(home, Path(config) if config else None)


@flow(name="train")
def train_flow(home: str | None = None, config: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Train a registry model (`model`, `encoding`, `preset`, `steps`, `resume`, ...) on shards."""
    s = train_stage.train(_ws(home, config), api, **kwargs).to_dict()
    get_run_logger().info("train: %s", s)
    _artifact("train-summary", f"Train {s['train_run_id']}", s)
    return s


@flow(name="evaluate")
def evaluate_flow(
    train_run_id: str, home: str | None = None, config: str | None = None, split: str = "test"
) -> dict[str, Any]:
    """NLL of a train run's newest checkpoint on a split."""
    s = evaluate_stage.evaluate(_ws(home, config), api, train_run_id, split=split).to_dict()
    _artifact("evaluate-summary", f"Evaluate {train_run_id}", s)
    return s


@flow(name="generate")
def generate_flow(
    train_run_id: str, home: str | None = None, config: str | None = None, n: int = 4
) -> dict[str, Any]:
    """Sample pieces from a train run's newest checkpoint into MIDI files."""
    s = evaluate_stage.generate(_ws(home, config), api, train_run_id, n=n).to_dict()
    _artifact("generate-summary", f"Generate {train_run_id}", s)
    return s


@flow(name="ingest-and-train")
def ingest_and_train(
    paths: list[str],
    home: str | None = None,
    config: str | None = None,
    model: str = "nmt",
    encoding: str = "nb-pf",
    preset: str = "debug",
    steps: int | None = None,
) -> dict[str, Any]:
    """The main job: ingest -> tokenize -> train -> evaluate on the test split -> generate."""
    ingest = ingest_flow(paths, home, config)
    tokenize = tokenize_flow([encoding], home, config)
    trained = train_flow(
        home,
        config,
        model=model,
        encoding=encoding,
        preset=preset,
        steps=steps,
        run_id=_run_id("train"),
    )
    tid = trained["train_run_id"]
    return {
        "ingest": ingest,
        "tokenize": tokenize,
        "train": trained,
        "evaluate": evaluate_flow(tid, home, config),
        "generate": generate_flow(tid, home, config),
    }
