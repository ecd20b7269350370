"""Audio files: decode and validate stored recordings in isolated workers.

The ingest stage (musicdata.stages.ingest) routes candidates of kind 'audio' here and records the
outcomes with the same rules as MIDI (stage 'ingest:audio', ids from musicdata.ingest.ids).
"""

from __future__ import annotations

from typing import Any

from musicdata.audio.decode import AudioJob, inspect_audio
from musicdata.isolate import IsolatedPool
from musicdata.workspace import Workspace


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
