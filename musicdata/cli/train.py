"""Model commands: train, evaluate, generate. Each calls its stage directly (no Prefect start-up);
with PREFECT_API_URL set the same work runs through its flow, tracked by the server."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from musicdata import progress
from musicdata.cli.common import JsonOpt, app, emit, fail, tracked, workspace
from musicdata.cli.pipeline import NoWaitOpt, run_guard


def run_model_stage(stage: str, no_wait: bool, as_json: bool, **kwargs: Any) -> dict[str, Any]:
    """Run a model stage (musicdata.stages.train/evaluate) under the workspace lock with the model
    side's front door; a refusal (no such run, wrong encoding) is one clear error, exit 2."""
    from musicdata.models import api
    from musicdata.stages import evaluate as evaluate_stage
    from musicdata.stages import train as train_stage

    fn = {
        "train": train_stage.train,
        "evaluate": evaluate_stage.evaluate,
        "generate": evaluate_stage.generate,
    }[stage]
    ws = workspace()
    t0 = time.perf_counter()
    with run_guard(ws, stage, no_wait, as_json):
        try:
            s = fn(ws, api, **kwargs).to_dict()
        except ValueError as exc:
            fail(str(exc))
    return {**s, "seconds": round(time.perf_counter() - t0, 2), "home": str(ws.root)}


PRESET_HELP = "debug: seconds on CPU; small: a real CPU run in minutes; paper: the paper's sizes."


@app.command()
def train(
    model: Annotated[
        str, typer.Option("--model", "-m", help="nmt, flat, perceivers, cadenza.")
    ] = "nmt",
    encoding: Annotated[
        str, typer.Option("--encoding", "-e", help="Shards to train on.")
    ] = "nb-pf",
    preset: Annotated[str, typer.Option("--preset", "-p", help=PRESET_HELP)] = "debug",
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Optimizer steps.")] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Continue this train run from its last checkpoint."),
    ] = None,
    config_hash: Annotated[
        str | None, typer.Option("--config-hash", help="Which tokenizer config (default newest).")
    ] = None,
    sub_decoder: Annotated[
        str | None, typer.Option("--sub-decoder", help="nmt only: parallel or cross.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:1.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Training seed.")] = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Train a model on an encoding's shards (checkpoints, curves and lineage in the catalog)."""
    progress.enable(not as_json)
    overrides = {"sub_decoder": sub_decoder} if sub_decoder else None
    kwargs: dict[str, Any] = dict(
        model=model,
        encoding=encoding,
        preset=preset,
        steps=steps,
        resume=resume,
        config_hash=config_hash or "latest",
        seed=seed,
        device=device,
        model_overrides=overrides,
    )
    if tracked():  # through the `train` flow, tracked by the Prefect server
        from musicdata.flows.train import train_flow

        ws, t0 = workspace(), time.perf_counter()
        with run_guard(ws, "train", no_wait, as_json):
            try:
                s = train_flow(str(ws.root), **kwargs)
            except ValueError as exc:
                fail(str(exc))
        s.update(seconds=round(time.perf_counter() - t0, 2), home=str(ws.root))
    else:
        s = run_model_stage("train", no_wait, as_json, **kwargs)
    emit(
        s,
        as_json,
        f"train {s['train_run_id']}: {s['model']} on {s['encoding']} ({s['preset']}, "
        f"{s['n_parameters']:,} parameters, {s['device']}): {s['steps']} steps, "
        f"train loss {s.get('train_loss', float('nan')):.4f}, validation NLL "
        f"{s.get('validation_nll', float('nan')):.4f}, {s['checkpoints']} checkpoints in "
        f"{s['seconds']} s",
        f"next: musicdata evaluate {s['train_run_id']}",
        f"      musicdata generate {s['train_run_id']} --n 4",
    )


@app.command()
def evaluate(
    train_run_id: Annotated[
        str, typer.Argument(help="A train run id (`musicdata train` prints it).")
    ],
    split: Annotated[str, typer.Option("--split", help="train, validation or test.")] = "test",
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Default: the newest.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    max_batches: Annotated[int | None, typer.Option("--max-batches", min=1)] = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Measure a checkpoint's NLL on a split (mean, bits per token, per sub-token)."""
    s = run_model_stage(
        "evaluate",
        no_wait,
        as_json,
        train_run_id=train_run_id,
        split=split,
        checkpoint=checkpoint,
        batch_size=batch_size,
        max_batches=max_batches,
    )
    subs = ", ".join(f"{k[4:]} {v:.3f}" for k, v in s.items() if k.startswith("nll/"))
    emit(
        s,
        as_json,
        f"evaluate {s['checkpoint_id']} on {s['split']} ({s['tokens']} tokens): "
        f"NLL {s['nll']:.4f}, "
        f"{s['bits_per_token']:.3f} bits/token" + (f"; per sub-token: {subs}" if subs else ""),
    )


@app.command()
def generate(
    train_run_id: Annotated[str, typer.Argument(help="A train run id.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many pieces.")] = 4,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Default: the newest.")
    ] = None,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Sample MIDI pieces from a checkpoint (recorded with lineage to it)."""
    s = run_model_stage(
        "generate",
        no_wait,
        as_json,
        train_run_id=train_run_id,
        n=n,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        checkpoint=checkpoint,
    )
    emit(
        s,
        as_json,
        f"generate: {s['generated']} pieces in {s['out_dir']} ({s['undecodable']} did not decode)",
        f"compare with the test split: musicdata metrics <test MIDI folder> {s['out_dir']}",
    )
