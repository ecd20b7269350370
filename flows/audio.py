"""Flows `transcribe` and `tokenize-codec`, and the audio task wrappers the `ingest` flow uses.

Tasks wrap library step functions (musicdata.audio); no logic lives here. The catalog is written
only from the flow process; workers return records (DESIGN rule 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from musicdata.flows import runners
from musicdata.flows.policy import CATALOG_WRITER, stage_task
from musicdata.stages.ingest import parse_audio_batch, record_audio_batch
from musicdata.stages.transcribe import Steps as TranscribeSteps
from musicdata.stages.transcribe import ingest_counts, transcribe_batch, transcribe_pending
from musicdata.workspace import Workspace

# The same policy as the MIDI tasks (flows/policy.py): transient failures retried, never a bad
# recording (that is a quarantine); the catalog-writing step holds the `catalog-writer` slot.
parse_audio_task = stage_task(parse_audio_batch, "parse-audio-batch")
record_audio_task = stage_task(record_audio_batch, "record-audio-batch", tags=(CATALOG_WRITER,))
_transcribe = stage_task(transcribe_batch, "transcribe-batch")


def _run_id(stage: str) -> str:
    return f"{flow_run.get_id() or 'local'}:{stage}"


def transcribe_step(ws: Workspace, run_id: str) -> dict[str, int]:
    """The ingest flow's transcription step: pending recordings, batches as Prefect tasks."""
    steps = runners.batch_steps(TranscribeSteps, ws.config.orchestration, transcribe=_transcribe)
    return ingest_counts(
        transcribe_pending(ws, run_id=f"{run_id}:transcribe", steps=steps, lock=False)
    )


@flow(name="transcribe")
def transcribe_flow(home: str | None = None, config: str | None = None) -> dict[str, Any]:
    """Transcribe every recording not yet transcribed under the current [transcribe] params."""
    ws = Workspace.open(home, Path(config) if config else None)
    summary = transcribe_pending(
        ws,
        run_id=_run_id("transcribe"),
        steps=runners.batch_steps(TranscribeSteps, ws.config.orchestration, transcribe=_transcribe),
    ).to_dict()
    get_run_logger().info("transcribe: %s", summary)
    return summary


@flow(name="tokenize-codec")
def tokenize_codec_flow(
    encodings: list[str],
    home: str | None = None,
    config: str | None = None,
    allow_untrained: bool = False,
) -> list[dict[str, Any]]:
    """Encode every recording into EnCodec code shards, one codec at a time."""
    from musicdata.stages.codec import Steps as CodecSteps
    from musicdata.stages.codec import encode_batch, tokenize_codec

    encode = stage_task(encode_batch, "encode-codec-batch")
    ws = Workspace.open(home, Path(config) if config else None)
    out = []
    for name in encodings:
        s = tokenize_codec(
            ws,
            name,
            run_id=_run_id(f"tokenize:{name}"),
            allow_untrained=allow_untrained,
            steps=CodecSteps(encode),
        ).to_dict()
        get_run_logger().info("tokenize %s: %s", name, s)
        out.append(s)
    return out
