"""The transcribe stage: recordings -> basic-pitch -> MIDI pieces, recorded in the catalog.

A transcribed piece is a real MIDI file in the content store and a row in core.pieces like any
MIDI piece (so every symbolic encoding picks it up untouched), with its recording's split. Lineage:
audio:<sha256> -> piece:<piece_id>, config_hash = the transcription params hash. Keyed by
(recording sha256, params hash) in core.transcriptions: a rerun transcribes only what is missing,
and an output that already exists is reused, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from musicdata import __version__
from musicdata.audio.transcribe import (
    TranscribeJob,
    model_id,
    model_path,
    params_hash,
    transcribe_recording,
    transcription_params,
)
from musicdata.catalog import audio as audio_records
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.catalog.outcomes import Outcome, record_outcomes
from musicdata.ingest.ids import ingest_config_hash, piece_id_for
from musicdata.isolate import IsolatedPool
from musicdata.stages.kit import FanOut, Summary, isolated_batches, stage_run
from musicdata.workspace import Workspace

STAGE = "transcribe"


KEYS = ("transcribed", "no_notes", "transcribe_failed", "audio_s", "seconds")
INGEST_COUNTS = KEYS[:3]  # what an ingest summary adds up


def ingest_counts(summary: Summary) -> dict[str, int]:
    return {k: int(summary.counts[k]) for k in INGEST_COUNTS}


def transcribe_batch(pool: IsolatedPool, jobs: list[TranscribeJob]) -> list[dict[str, Any]]:
    """Transcribe recordings in isolated workers (model loaded once per worker), sorted by sha."""
    empty = {"n_notes": 0, "n_chunks": 0, "audio_s": 0.0, "seconds": 0.0}
    out = pool.map_records(jobs, lambda i: {"sha256": jobs[i].sha256, **empty})
    return sorted(out, key=lambda r: r["sha256"])


@dataclass(frozen=True)
class Steps:
    transcribe: Callable[[IsolatedPool, list[TranscribeJob]], list[dict[str, Any]]] = (
        transcribe_batch
    )
    # None: one pool here (the model loaded once per worker); a fan-out (the flow's Dask one)
    # runs each batch in a pool on a worker. Recording stays here, in batch order.
    fan_out: FanOut | None = None


def transcribe_pending(
    ws: Workspace,
    *,
    run_id: str,
    steps: Steps | None = None,
    batch_size: int = 8,
    lock: bool = True,
) -> Summary:
    """Transcribe every canonical recording that has no transcription under the current params.
    `lock=False` inside a stage that already holds the workspace lock (ingest)."""
    steps = steps or Steps()
    phash = params_hash(ws.config.transcribe)
    with ws.catalog.write() as con:
        todo = audio_records.recordings_to_transcribe(con, phash)
    if not todo:
        return Summary(STAGE, run_id, phash)
    with stage_run(ws, STAGE, run_id, config_hash=phash, keys=KEYS, lock=lock) as summary:
        _run_all(ws, run_id, todo, steps, batch_size, summary)
    return summary


def _run_all(
    ws: Workspace,
    run_id: str,
    todo: list[tuple[str, str, str, str, float]],
    steps: Steps,
    batch_size: int,
    summary: Summary,
) -> None:
    cfg = ws.config.transcribe
    icfg = ws.config.ingest
    mpath = model_path(cfg)
    meta = {sha: (split, path) for sha, split, _, path, _ in todo}
    jobs = [
        TranscribeJob(
            sha,
            str(ws.abspath(blob)),
            str(ws.root),
            cfg,
            mpath,
            icfg.max_notes,
            icfg.max_duration_s,
            icfg.max_tracks,
            icfg.content_hash_tpq,
        )
        for sha, _, blob, _, _ in todo
    ]
    batches = isolated_batches(
        transcribe_recording,
        cfg,
        jobs,
        label="transcribe",
        batch_size=batch_size,
        step=steps.transcribe,
        root=ws.root,
        fan_out=steps.fan_out,
    )
    for _, results in batches:
        record_transcriptions(ws, run_id, results, meta, summary)


def record_transcriptions(
    ws: Workspace,
    run_id: str,
    results: list[dict[str, Any]],
    meta: dict[str, tuple[str, str]],
    summary: Summary,
) -> None:
    """One short transaction per batch: pieces, transcriptions, quarantine, lineage."""
    cfg = ws.config.transcribe
    phash = params_hash(cfg)
    params_json = json.dumps(transcription_params(cfg), sort_keys=True)
    mid = model_id(cfg)
    ichash = ingest_config_hash(ws)
    t = now()
    files, pieces, trans, outcomes, edges = [], [], [], [], []
    with ws.catalog.write() as con:
        canon = records.canonical_pieces(
            con, [r["piece"]["content_hash"] for r in results if r["status"] == "ok"]
        )
        for r in results:
            sha = r["sha256"]
            split, path = meta[sha]
            pid = None
            summary.add("audio_s", r["audio_s"])
            summary.add("seconds", r["seconds"])
            if r["status"] == "ok":
                summary.add("transcribed")
                pid = piece_id_for(r["midi_sha256"])
                piece = r["piece"]
                near = canon.get(piece["content_hash"])
                if near is None or near[0] == pid:
                    near = None
                    canon[piece["content_hash"]] = (pid, split)
                files.append(
                    {
                        "path": f"{path}#basic-pitch@{phash}",
                        "sha256": r["midi_sha256"],
                        "size_bytes": r["midi_size"],
                        "kind": "transcription",
                        "archive": None,
                        "exact_duplicate_of": None,
                        "run_id": run_id,
                        "first_seen_at": t,
                    }
                )
                pieces.append(
                    {
                        "piece_id": pid,
                        "sha256": r["midi_sha256"],
                        "split": split,  # a derived piece inherits its recording's split
                        "near_duplicate_of": near[0] if near else None,
                        "blob_path": r["blob_path"],
                        **piece,
                        "ingest_config_hash": ichash,
                        "run_id": run_id,
                        "created_at": t,
                    }
                )
                edges.extend(
                    {
                        "src_id": src,  # the recording, and the model that transcribed it
                        "dst_id": f"piece:{pid}",
                        "stage": STAGE,
                        "config_hash": phash,
                        "code_version": __version__,
                        "run_id": run_id,
                        "created_at": t,
                    }
                    for src in (f"audio:{sha}", f"model:{mid}")
                )
            elif r["status"] == "no_notes":
                summary.add("no_notes")
            else:
                summary.add("transcribe_failed")
                summary.reasons[r["reason"]] += 1
            trans.append(
                {
                    "recording_sha256": sha,
                    "params_hash": phash,
                    "status": r["status"],
                    "piece_id": pid,
                    "model_id": mid,
                    "params_json": params_json,
                    "n_notes": r["n_notes"],
                    "n_chunks": r["n_chunks"],
                    "audio_s": r["audio_s"],
                    "seconds": r["seconds"],
                    "run_id": run_id,
                    "created_at": t,
                }
            )
            status = "quarantined" if r["status"] == "quarantined" else "ok"
            reason = {"reason": r["reason"], "detail": r["detail"]} if status != "ok" else {}
            outcomes.append(Outcome(sha, status, pid, path=path, sha256=sha, **reason))
        pieces = list({p["piece_id"]: p for p in pieces}.values())  # two recordings, same MIDI
        records.insert_rows(con, "files", files, on_conflict_nothing=True)
        records.insert_rows(con, "pieces", pieces, on_conflict_nothing=True)
        records.insert_rows(con, "transcriptions", trans, on_conflict_nothing=True)
        record_outcomes(con, STAGE, phash, run_id, outcomes)
        records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
