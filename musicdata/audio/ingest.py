"""Audio ingest as library steps: decode batches in isolation -> record recordings in the catalog.

The MIDI ingest (musicdata.ingest.pipeline) routes candidates of kind 'audio' here. Outcomes are
keyed like MIDI: (sha256, stage 'ingest:audio', config hash) in core.stage_results, so reruns skip
done files; exact duplicates (same bytes) and near duplicates (same decoded samples in another
container) are flagged, and a recording's split comes from its sample hash like a MIDI piece's.
"""

from __future__ import annotations

from typing import Any

from musicdata.audio.decode import AudioJob, inspect_audio
from musicdata.catalog import audio as audio_records
from musicdata.ingest.discover import Candidate
from musicdata.ingest.pipeline import InputKind, record_inputs
from musicdata.isolate import IsolatedPool
from musicdata.workspace import Workspace
from schemas.config import config_hash

STAGE = "ingest:audio"
AUDIO_INGEST_VERSION = 1  # bump when decoding or validation changes a file's outcome


def audio_config_hash(ws: Workspace) -> str:
    return config_hash(ws.config.audio, {"stage": STAGE, "version": AUDIO_INGEST_VERSION})


def recording_id_for(sha256: str) -> str:
    return "r" + sha256[:20]


def parse_audio_batch(ws: Workspace, shas: list[str]) -> list[dict[str, Any]]:
    """Decode and validate stored audio in isolated workers; one record per sha, sorted."""
    cfg = ws.config.audio
    jobs = [
        AudioJob(
            sha,
            str(ws.abspath(ws.blob_relpath(sha))),
            cfg.min_duration_s,
            cfg.max_duration_s,
            cfg.silence_dbfs,
        )
        for sha in shas
    ]
    with IsolatedPool.configured(inspect_audio, cfg) as pool:
        out = pool.map_records(jobs, lambda i: {"sha256": shas[i]})
    return sorted(out, key=lambda r: r["sha256"])


AUDIO = InputKind(
    stage=STAGE,
    table="recordings",
    id_column="recording_id",
    make_id=lambda sha: recording_id_for(sha),
    node=lambda sha, rid: f"audio:{sha}",
    canonical=audio_records.canonical_recordings,
    file_kind="audio",
    count_as="recordings",
)


def record_audio_batch(
    ws: Workspace, run_id: str, files: list[Candidate], parsed: list[dict[str, Any]]
) -> dict[str, Any]:
    """Record a batch of decoded recordings: the MIDI rules (musicdata.ingest.pipeline), with
    recordings for pieces and `audio:<sha256>` lineage nodes."""
    return record_inputs(ws, run_id, files, parsed, [], AUDIO, audio_config_hash(ws))
