"""Flows `transcribe` and `tokenize-codec`, and the audio task wrappers the `ingest` flow uses.

Tasks wrap library step functions (musicdata.audio); no logic lives here. The catalog is written
only from the flow process; workers return records (DESIGN rule 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from musicdata.flows import runners
from musicdata.stages.ingest import parse_audio_batch, record_audio_batch
from musicdata.stages.transcribe import Steps as TranscribeSteps
from musicdata.stages.transcribe import ingest_counts, transcribe_batch, transcribe_pending
from musicdata.workspace import Workspace

parse_audio_task = task(parse_audio_batch, name="parse-audio-batch", cache_policy=NONE)
record_audio_task = task(record_audio_batch, name="record-audio-batch", cache_policy=NONE)
_transcribe = task(transcribe_batch, name="transcribe-batch", cache_policy=NONE)


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

    encode = task(encode_batch, name="encode-codec-batch", cache_policy=NONE)
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
