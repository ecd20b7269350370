"""Audio ingest as library steps: decode batches in isolation -> record recordings in the catalog.

The MIDI ingest (musicdata.ingest.pipeline) routes candidates of kind 'audio' here. Outcomes are
keyed like MIDI: (sha256, stage 'ingest:audio', config hash) in core.stage_results, so reruns skip
done files; exact duplicates (same bytes) and near duplicates (same decoded samples in another
container) are flagged, and a recording's split comes from its sample hash like a MIDI piece's.
"""

from __future__ import annotations

from typing import Any

from musicdata import __version__
from musicdata.audio.decode import AudioJob, inspect_audio
from musicdata.catalog import audio as audio_records
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.ingest.discover import Candidate
from musicdata.ingest.split import assign_split
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
    with IsolatedPool(
        inspect_audio,
        workers=cfg.workers,
        timeout_s=cfg.timeout_s,
        memory_limit_mb=cfg.memory_limit_mb,
    ) as pool:
        out = pool.map_records(jobs, lambda i: {"sha256": shas[i]})
    return sorted(out, key=lambda r: r["sha256"])


def record_audio_batch(
    ws: Workspace, run_id: str, files: list[Candidate], parsed: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write one batch's outcome in one short transaction; returns counts for the summary."""
    chash = audio_config_hash(ws)
    by_sha = {r["sha256"]: r for r in parsed}
    counts: dict[str, Any] = {
        "ok": 0,
        "quarantined": 0,
        "duplicates": 0,
        "near_duplicates": 0,
        "recordings": 0,
        "reasons": {},
    }
    t = now()
    file_rows, rec_rows, q_rows, result_rows, edges = [], [], [], [], []

    def quarantine(path: str, sha: str, reason: str, detail: str) -> None:
        q_rows.append(
            {
                "path": path,
                "sha256": sha,
                "stage": STAGE,
                "reason": reason,
                "detail": detail,
                "config_hash": chash,
                "run_id": run_id,
                "created_at": t,
            }
        )

    with ws.catalog.write() as con:
        shas = sorted({f.sha256 for f in files})
        done = records.stage_status(con, STAGE, chash, shas)
        first_path = records.first_paths(con, shas)
        canon = audio_records.canonical_recordings(
            con, [r["content_hash"] for r in parsed if r["status"] == "ok"]
        )
        for f in files:
            dup_of = first_path.get(f.sha256)
            file_rows.append(
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "size_bytes": f.size,
                    "kind": "audio",
                    "archive": f.archive,
                    "exact_duplicate_of": dup_of,
                    "run_id": run_id,
                    "first_seen_at": t,
                }
            )
            first_path.setdefault(f.sha256, f.path)
            if dup_of is not None or f.sha256 in done:
                counts["duplicates"] += 1
                if done.get(f.sha256, ("ok", None))[0] == "quarantined":
                    rec = by_sha.get(f.sha256)
                    reason, detail = (
                        (rec["reason"], rec["detail"])
                        if rec
                        else records.quarantine_reason(con, f.sha256, STAGE)
                    )
                    quarantine(
                        f.path, f.sha256, reason, f"same bytes as a quarantined file: {detail}"
                    )
                continue
            rec = by_sha[f.sha256]
            if rec["status"] != "ok":
                counts["quarantined"] += 1
                counts["reasons"][rec["reason"]] = counts["reasons"].get(rec["reason"], 0) + 1
                quarantine(f.path, f.sha256, rec["reason"], rec["detail"])
                result_rows.append(_result(f.sha256, chash, "quarantined", None, run_id, t))
                done[f.sha256] = ("quarantined", None)
                continue
            rid = recording_id_for(f.sha256)
            near = canon.get(rec["content_hash"])
            if near is None:
                split = assign_split(rec["content_hash"], ws.config.split)
                canon[rec["content_hash"]] = (rid, split)
            else:
                counts["near_duplicates"] += 1
                split = near[1]
            meta = {k: v for k, v in rec.items() if k not in ("sha256", "status")}
            rec_rows.append(
                {
                    "recording_id": rid,
                    "sha256": f.sha256,
                    "split": split,
                    "near_duplicate_of": near[0] if near else None,
                    "blob_path": ws.blob_relpath(f.sha256),
                    **meta,
                    "ingest_config_hash": chash,
                    "run_id": run_id,
                    "created_at": t,
                }
            )
            result_rows.append(_result(f.sha256, chash, "ok", rid, run_id, t))
            edges.append(
                {
                    "src_id": f"file:{f.sha256}",
                    "dst_id": f"audio:{f.sha256}",
                    "stage": STAGE,
                    "config_hash": chash,
                    "code_version": __version__,
                    "run_id": run_id,
                    "created_at": t,
                }
            )
            done[f.sha256] = ("ok", rid)
            counts["ok"] += 1
            counts["recordings"] += 1
        records.insert_rows(con, "files", file_rows)
        records.insert_rows(con, "recordings", rec_rows, on_conflict_nothing=True)
        records.insert_rows(con, "quarantine", q_rows)
        records.insert_rows(con, "stage_results", result_rows)
        records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
    return counts


def _result(sha: str, chash: str, status: str, out: str | None, run_id: str, t: Any) -> dict:
    return {
        "stage": STAGE,
        "input_id": sha,
        "config_hash": chash,
        "status": status,
        "output_id": out,
        "run_id": run_id,
        "created_at": t,
    }
