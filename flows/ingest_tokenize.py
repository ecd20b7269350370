"""Flows `ingest`, `tokenize` and `ingest-and-tokenize`.

Tasks process batches of files, not one file each (a Prefect task call costs ~30 ms). The catalog
is written only from this (the flow) process; workers return records (DESIGN rule 1). Without
PREFECT_API_URL the flows run in Prefect's local ephemeral mode; with it, against that server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from musicdata.catalog import records
from musicdata.flows import runners
from musicdata.flows.artifacts import artifact_key, publish_summary
from musicdata.flows.events import emit_completed
from musicdata.flows.policy import CATALOG_WRITER, stage_task
from musicdata.stages import ingest as ingest_lib
from musicdata.stages.tokenize import Steps as TokenizeSteps
from musicdata.stages.tokenize import tokenize_batch, tokenize_encodings
from musicdata.workspace import Workspace

# Batch steps as tasks: transient failures (catalog lock contention, passing I/O errors) retried
# with backoff, bad inputs never (they are quarantine records, not exceptions); the steps that
# write the catalog carry the `catalog-writer` tag (limit 1 on the server).
_discover = stage_task(ingest_lib.discover_any, "discover-inputs")
_parse = stage_task(ingest_lib.parse_batch, "parse-midi-batch")
_record = stage_task(ingest_lib.record_batch, "record-ingest-batch", tags=(CATALOG_WRITER,))
_tokenize = stage_task(tokenize_batch, "tokenize-batch")


def _run_id(stage: str) -> str:
    return f"{flow_run.get_id() or 'local'}:{stage}"


@flow(name="ingest")
def ingest_flow(
    paths: list[str],
    home: str | None = None,
    config: str | None = None,
    transcribe: bool | None = None,
    chained: bool = False,
) -> dict[str, Any]:
    """Ingest MIDI and audio files, folders and zip/tar archives into the workspace catalog;
    recordings are transcribed to MIDI pieces unless `transcribe` is False ([transcribe]).
    `chained`: the caller runs the next stage itself (see flows/events.py)."""
    from musicdata.flows.audio import parse_audio_task, record_audio_task, transcribe_step

    ws = Workspace.open(home, Path(config) if config else None)
    steps = ingest_lib.Steps(
        discover=_discover,
        parse=_parse,
        record=_record,
        parse_audio=parse_audio_task,
        record_audio=record_audio_task,
        transcribe=transcribe_step,
        fan_out=runners.fan_out(ws.config.orchestration),  # Dask when configured
    )
    summary = ingest_lib.ingest_paths(
        ws, [Path(p) for p in paths], run_id=_run_id("ingest"), steps=steps, transcribe=transcribe
    )
    s = summary.to_dict()
    get_run_logger().info("ingest: %s", s)
    publish_summary(summary, "Ingest", key="ingest-summary")
    emit_completed("ingest", s, str(ws.root), chained=chained)
    return s


@flow(name="tokenize")
def tokenize_flow(
    encodings: list[str],
    home: str | None = None,
    config: str | None = None,
    chained: bool = False,
) -> list[dict[str, Any]]:
    """Tokenize every ingested piece into Parquet shards for all the encodings at once: one pool
    of isolated worker processes runs (piece, encoding) jobs across all cores. Emits
    `musicdata.tokenize.completed` per encoding (the train automation's trigger)."""
    ws = Workspace.open(home, Path(config) if config else None)
    run_ids = {name: _run_id(f"tokenize:{name}") for name in encodings}
    summaries = tokenize_encodings(
        ws,
        list(encodings),
        run_ids=run_ids,
        steps=runners.batch_steps(TokenizeSteps, ws.config.orchestration, tokenize=_tokenize),
    )
    out = []
    for summary in summaries:
        s = summary.to_dict()
        get_run_logger().info("tokenize %s: %s", s["encoding"], s)
        with ws.catalog.read() as con:
            stats = records.token_stats(con, s["encoding"], s["config_hash"])
        title = f"Tokenize {s['encoding']}"
        publish_summary(
            summary, title, key=artifact_key("tokenize", s["encoding"]), tables={"stats": stats}
        )
        emit_completed("tokenize", s, str(ws.root), chained=chained)
        out.append(s)
    return out


@flow(name="ingest-and-tokenize")
def ingest_and_tokenize(
    paths: list[str],
    home: str | None = None,
    encodings: list[str] | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Ingest inputs, then tokenize all pieces into every requested encoding (the tokenize
    events then start training through the repo's automation, infra/prefect.yaml)."""
    ingest = ingest_flow(paths, home, config)
    tokenize = tokenize_flow(encodings or ["remi"], home, config)
    return {"ingest": ingest, "tokenize": tokenize}
