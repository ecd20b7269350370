"""Flows `ingest`, `tokenize` and `ingest-and-tokenize`.

Tasks process batches of files, not one file each (a Prefect task call costs ~30 ms). The catalog
is written only from this (the flow) process; workers return records (DESIGN rule 1). Without
PREFECT_API_URL the flows run in Prefect's local ephemeral mode; with it, against that server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from musicdata.stages import ingest as ingest_lib
from musicdata.stages.tokenize import Steps as TokenizeSteps
from musicdata.stages.tokenize import tokenize_batch, tokenize_encodings
from musicdata.workspace import Workspace

_discover = task(ingest_lib.discover_any, name="discover-inputs", cache_policy=NONE)
_parse = task(ingest_lib.parse_batch, name="parse-midi-batch", cache_policy=NONE)
_record = task(ingest_lib.record_batch, name="record-ingest-batch", cache_policy=NONE)
_tokenize = task(tokenize_batch, name="tokenize-batch", cache_policy=NONE)


def _run_id(stage: str) -> str:
    return f"{flow_run.get_id() or 'local'}:{stage}"


def _artifact(key: str, title: str, summary: dict[str, Any]) -> None:
    rows = "\n".join(f"| {k} | {v} |" for k, v in summary.items() if not isinstance(v, dict))
    reasons = summary.get("reasons") or {}
    extra = "".join(f"\n| quarantined: {r} | {n} |" for r, n in sorted(reasons.items()))
    create_markdown_artifact(
        key=key, markdown=f"### {title}\n\n| what | value |\n|---|---|\n{rows}{extra}\n"
    )


@flow(name="ingest")
def ingest_flow(
    paths: list[str],
    home: str | None = None,
    config: str | None = None,
    transcribe: bool | None = None,
) -> dict[str, Any]:
    """Ingest MIDI and audio files, folders and zip/tar archives into the workspace catalog;
    recordings are transcribed to MIDI pieces unless `transcribe` is False ([transcribe])."""
    from musicdata.flows.audio import parse_audio_task, record_audio_task, transcribe_step

    ws = Workspace.open(home, Path(config) if config else None)
    steps = ingest_lib.Steps(
        discover=_discover,
        parse=_parse,
        record=_record,
        parse_audio=parse_audio_task,
        record_audio=record_audio_task,
        transcribe=transcribe_step,
    )
    summary = ingest_lib.ingest_paths(
        ws, [Path(p) for p in paths], run_id=_run_id("ingest"), steps=steps, transcribe=transcribe
    ).to_dict()
    get_run_logger().info("ingest: %s", summary)
    _artifact("ingest-summary", "Ingest", summary)
    return summary


@flow(name="tokenize")
def tokenize_flow(
    encodings: list[str], home: str | None = None, config: str | None = None
) -> list[dict[str, Any]]:
    """Tokenize every ingested piece into Parquet shards for all the encodings at once: one pool
    of isolated worker processes runs (piece, encoding) jobs across all cores."""
    ws = Workspace.open(home, Path(config) if config else None)
    run_ids = {name: _run_id(f"tokenize:{name}") for name in encodings}
    summaries = tokenize_encodings(
        ws, list(encodings), run_ids=run_ids, steps=TokenizeSteps(_tokenize)
    )
    out = []
    for summary in summaries:
        s = summary.to_dict()
        get_run_logger().info("tokenize %s: %s", s["encoding"], s)
        _artifact(f"tokenize-{s['encoding']}", f"Tokenize {s['encoding']}", s)
        out.append(s)
    return out


@flow(name="ingest-and-tokenize")
def ingest_and_tokenize(
    paths: list[str],
    home: str | None = None,
    encodings: list[str] | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """The main job: ingest inputs, then tokenize all pieces into every requested encoding."""
    ingest = ingest_flow(paths, home, config)
    tokenize = tokenize_flow(encodings or ["remi"], home, config)
    return {"ingest": ingest, "tokenize": tokenize}
