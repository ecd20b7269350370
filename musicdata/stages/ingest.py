"""The ingest stage: discover -> parse batches in isolation -> record; audio alike, then transcribe.

A driver on the stage kit. `ingest_paths` runs the stage without Prefect (notebooks, tests, the
local CLI); the Prefect flow passes task wrappers of the same step functions in `Steps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata import __version__, progress
from musicdata.audio.ingest import parse_audio_batch
from musicdata.catalog import audio as audio_records
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.catalog.outcomes import Outcome, record_outcomes
from musicdata.ingest.discover import Candidate, Discovery, Rejected
from musicdata.ingest.hub import discover_any
from musicdata.ingest.ids import (
    AUDIO_STAGE,
    STAGE,
    audio_config_hash,
    ingest_config_hash,
    piece_id_for,
    recording_id_for,
)
from musicdata.ingest.midi import MidiJob, inspect_midi
from musicdata.ingest.split import assign_split
from musicdata.isolate import IsolatedPool
from musicdata.stages.kit import (
    FanOut,
    Summary,
    batched,
    in_order,
    stage_run,
    stop_on_environment_errors,
)
from musicdata.stages.transcribe import ingest_counts, transcribe_pending
from musicdata.workspace import Workspace

KEYS = (
    "ok",
    "quarantined",
    "duplicates",
    "near_duplicates",
    "skipped",
    "ignored",
    "recordings",  # audio files among ok
    "transcribed",  # recordings transcribed into MIDI pieces (this run)
    "no_notes",  # recordings transcribed to "no notes" (silence)
    "transcribe_failed",
)


def parse_batch(ws: Workspace, shas: list[str]) -> list[dict[str, Any]]:
    """Parse and validate stored files in isolated workers; one record per sha, sorted."""
    cfg = ws.config.ingest
    jobs = [
        MidiJob(
            sha,
            str(ws.abspath(ws.blob_relpath(sha))),
            cfg.max_notes,
            cfg.max_duration_s,
            cfg.max_tracks,
            cfg.content_hash_tpq,
            cfg.max_duration_quarters,
        )
        for sha in shas
    ]
    with IsolatedPool.configured(inspect_midi, cfg) as pool:
        out = pool.map_records(jobs, lambda i: {"sha256": shas[i]})
    return sorted(out, key=lambda r: r["sha256"])


@dataclass(frozen=True)
class InputKind:
    """How one kind of input is recorded after its isolated parse: MIDI files become pieces,
    audio files recordings (musicdata.audio.ingest). Same rules for both: exact duplicates by
    sha256, near duplicates by content hash share the canonical split, one short transaction."""

    stage: str
    table: str  # core.<table>: pieces | recordings
    id_column: str
    make_id: Callable[[str], str]  # sha256 -> piece_id / recording_id
    node: Callable[[str, str], str]  # (sha256, id) -> lineage node of the output
    canonical: Callable[[Any, list[str]], dict[str, tuple[str, str]]]  # content hash -> (id, split)
    file_kind: str | None = None  # core.files.kind; None: the candidate's own kind
    count_as: str | None = None  # an extra counter for ok outputs (e.g. "recordings")


def record_inputs(
    ws: Workspace,
    run_id: str,
    files: list[Candidate],
    parsed: list[dict[str, Any]],
    rejected: list[Rejected],
    kind: InputKind,
    chash: str,
) -> dict[str, Any]:
    """Write one batch's outcome in one short transaction; returns counts for the summary."""
    by_sha = {r["sha256"]: r for r in parsed}
    counts: dict[str, Any] = {
        "ok": 0,
        "quarantined": 0,
        "duplicates": 0,
        "near_duplicates": 0,
        "reasons": {},
        **({kind.count_as: 0} if kind.count_as else {}),
    }
    t = now()
    file_rows, out_rows, edges = [], [], []
    # (stage, outcome, mark done): one recorder writes quarantine and stage_results rows
    outcomes: list[tuple[str, Outcome, bool]] = []

    def quarantine(path: str, sha: str | None, reason: str, detail: str, stage: str) -> None:
        o = Outcome.quarantined(sha or path, reason, detail, path=path, sha256=sha)
        outcomes.append((stage, o, False))

    def result(sha: str, status: str, out: str | None) -> tuple[str, Outcome, bool]:
        return (kind.stage, Outcome(sha, status, output_id=out), True)

    with ws.catalog.write() as con:
        shas = sorted({f.sha256 for f in files})
        done = records.stage_status(con, kind.stage, chash, shas)
        first_path = records.first_paths_of_kind(con, shas, audio=kind.file_kind == "audio")
        canon = kind.canonical(con, [r["content_hash"] for r in parsed if r["status"] == "ok"])
        for f in files:  # sorted by path: the first path of new bytes is the one parsed
            dup_of = first_path.get(f.sha256)
            file_rows.append(
                {
                    "path": f.path,
                    "sha256": f.sha256,
                    "size_bytes": f.size,
                    "kind": kind.file_kind or f.kind,
                    "archive": f.archive,
                    "exact_duplicate_of": dup_of,
                    "run_id": run_id,
                    "first_seen_at": t,
                }
            )
            first_path.setdefault(f.sha256, f.path)
            if dup_of is not None or f.sha256 in done:
                counts["duplicates"] += 1
                status = done.get(f.sha256, ("ok", None))[0]
                if status == "quarantined":
                    rec = by_sha.get(f.sha256)
                    reason, detail = (
                        (rec["reason"], rec["detail"])
                        if rec
                        else records.quarantine_reason(con, f.sha256, kind.stage)
                    )
                    detail = f"same bytes as a quarantined file: {detail}"
                    quarantine(f.path, f.sha256, reason, detail, kind.stage)
                continue
            rec = by_sha[f.sha256]
            if rec["status"] != "ok":
                counts["quarantined"] += 1
                counts["reasons"][rec["reason"]] = counts["reasons"].get(rec["reason"], 0) + 1
                o = Outcome.quarantined(
                    f.sha256, rec["reason"], rec["detail"], path=f.path, sha256=f.sha256
                )
                outcomes.append((kind.stage, o, True))
                done[f.sha256] = ("quarantined", None)
                continue
            oid = kind.make_id(f.sha256)
            near = canon.get(rec["content_hash"])
            if near is None:
                split = assign_split(rec["content_hash"], ws.config.split)
                canon[rec["content_hash"]] = (oid, split)
            else:
                counts["near_duplicates"] += 1
                split = near[1]
            meta = {k: v for k, v in rec.items() if k not in ("sha256", "status")}
            out_rows.append(
                {
                    kind.id_column: oid,
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
            outcomes.append(result(f.sha256, "ok", oid))
            edges.append(
                {
                    "src_id": f"file:{f.sha256}",
                    "dst_id": kind.node(f.sha256, oid),
                    "stage": kind.stage,
                    "config_hash": chash,
                    "code_version": __version__,
                    "run_id": run_id,
                    "created_at": t,
                }
            )
            done[f.sha256] = ("ok", oid)
            counts["ok"] += 1
            if kind.count_as:
                counts[kind.count_as] += 1
        for r in rejected:
            counts["quarantined"] += 1
            counts["reasons"][r.reason] = counts["reasons"].get(r.reason, 0) + 1
            quarantine(r.path, r.sha256, r.reason, r.detail, r.stage)
        records.insert_rows(con, "files", file_rows)
        records.insert_rows(con, kind.table, out_rows, on_conflict_nothing=True)
        for stage, mark in sorted({(st, done) for st, _, done in outcomes}):
            group = [o for st, o, done in outcomes if (st, done) == (stage, mark)]
            record_outcomes(con, stage, chash, run_id, group, mark_done=mark)
        records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
    return counts


MIDI = InputKind(
    stage=STAGE,
    table="pieces",
    id_column="piece_id",
    make_id=lambda sha: piece_id_for(sha),
    node=lambda sha, pid: f"piece:{pid}",
    canonical=records.canonical_pieces,
)


def record_batch(
    ws: Workspace,
    run_id: str,
    files: list[Candidate],
    parsed: list[dict[str, Any]],
    rejected: list[Rejected],
) -> dict[str, Any]:
    """Record a batch of parsed MIDI files (and the batch's rejected inputs)."""
    return record_inputs(ws, run_id, files, parsed, rejected, MIDI, ingest_config_hash(ws))


AUDIO = InputKind(
    stage=AUDIO_STAGE,
    table="recordings",
    id_column="recording_id",
    make_id=recording_id_for,
    node=lambda sha, rid: f"audio:{sha}",
    canonical=audio_records.canonical_recordings,
    file_kind="audio",
    count_as="recordings",
)


def record_audio_batch(
    ws: Workspace, run_id: str, files: list[Candidate], parsed: list[dict[str, Any]]
) -> dict[str, Any]:
    """Record a batch of decoded recordings: the MIDI rules, with recordings for pieces and
    `audio:<sha256>` lineage nodes."""
    return record_inputs(ws, run_id, files, parsed, [], AUDIO, audio_config_hash(ws))


def _transcribe(ws: Workspace, run_id: str) -> dict[str, int]:
    return ingest_counts(transcribe_pending(ws, run_id=f"{run_id}:transcribe", lock=False))


@dataclass(frozen=True)
class Steps:
    """The stage's step functions; the Prefect flow swaps in task-wrapped versions."""

    discover: Callable[[Workspace, list[Path]], Discovery] = discover_any  # files + Hub sources
    parse: Callable[[Workspace, list[str]], list[dict[str, Any]]] = parse_batch
    record: Callable[..., dict[str, Any]] = record_batch
    # audio (musicdata.audio): decode + validate in isolation, record, then transcribe
    parse_audio: Callable[[Workspace, list[str]], list[dict[str, Any]]] = parse_audio_batch
    record_audio: Callable[..., dict[str, Any]] = record_audio_batch
    transcribe: Callable[[Workspace, str], dict[str, int]] = _transcribe
    # How parse batches run: None, one after another here; the flow's Dask fan-out runs them
    # at once on a cluster (musicdata.stages.kit.FanOut). Recording stays here, in batch order.
    fan_out: FanOut | None = None


def ingest_paths(
    ws: Workspace,
    inputs: list[Path],
    *,
    run_id: str,
    steps: Steps | None = None,
    transcribe: bool | None = None,
) -> Summary:
    """Ingest files, folders and archives; a rerun on the same inputs does no work.

    Audio files are decoded and recorded as recordings, then (unless `transcribe` is False, or
    None and `[transcribe] enabled = false`) transcribed into MIDI pieces.
    """
    steps = steps or Steps()
    if transcribe is None:
        transcribe = ws.config.transcribe.enabled
    with stage_run(ws, STAGE, run_id, config_hash=ingest_config_hash(ws), keys=KEYS) as summary:
        found = steps.discover(ws, inputs)
        summary.add("ignored", len(found.ignored))
        with ws.catalog.write() as con:
            known = records.known_files(con, [(c.path, c.sha256) for c in found.candidates])
            seen_rejections = records.known_rejections(con, [r.path for r in found.rejected])
        new = [c for c in found.candidates if (c.path, c.sha256) not in known]
        rejected = [r for r in found.rejected if (r.path, r.reason) not in seen_rejections]
        summary.add(
            "skipped", len(found.candidates) - len(new) + len(found.rejected) - len(rejected)
        )
        midi = [c for c in new if c.kind != "audio"]
        fan_out = steps.fan_out or in_order
        _ingest_kind(ws, run_id, midi, rejected, steps.parse, steps.record, MIDI, summary, fan_out)
        audio = [c for c in new if c.kind == "audio"]
        if audio:
            record_audio = steps.record_audio
            _ingest_kind(
                ws,
                run_id,
                audio,
                [],
                steps.parse_audio,
                lambda ws, run_id, files, parsed, _: record_audio(ws, run_id, files, parsed),
                AUDIO,
                summary,
                fan_out,
            )
        if transcribe:
            summary.merge(steps.transcribe(ws, run_id))
    return summary


def _ingest_kind(
    ws: Workspace,
    run_id: str,
    new: list[Candidate],
    rejected: list[Rejected],
    parse: Callable[[Workspace, list[str]], list[dict[str, Any]]],
    record: Callable[..., dict[str, Any]],
    kind: InputKind,
    summary: Summary,
    fan_out: FanOut = in_order,
) -> None:
    """Parse what the catalog has no outcome for (in batches, through `fan_out`), record every
    path here, in batch order."""
    midi = kind is MIDI
    chash = ingest_config_hash(ws) if midi else audio_config_hash(ws)
    with ws.catalog.write() as con:
        done = records.stage_status(con, kind.stage, chash, sorted({c.sha256 for c in new}))
    to_parse = sorted({c.sha256 for c in new} - set(done))
    by_sha: dict[str, list[Candidate]] = {}
    for c in new:
        by_sha.setdefault(c.sha256, []).append(c)
    cfg = ws.config.ingest if midi else ws.config.audio
    batches = [list(b) for b in batched(to_parse, cfg.batch_size)]
    label = "ingest" if midi else "ingest audio"
    results = fan_out(parse, ((ws, b) for b in batches), name=label)
    with progress.bar(label, len(to_parse)) as advance:
        for batch, parsed in zip(batches, results, strict=True):
            stop_on_environment_errors(ws.root, parsed)  # a full disk blames no input
            files = sorted((c for s in batch for c in by_sha[s]), key=lambda c: c.path)
            summary.merge(record(ws, run_id, files, parsed, []))
            advance(len(batch))
    # Files whose bytes were already known (or refused before parsing): no parse needed.
    parsed_shas = set(to_parse)
    rest = sorted((c for c in new if c.sha256 not in parsed_shas), key=lambda c: c.path)
    if rest or rejected:
        summary.merge(record(ws, run_id, rest, [], rejected))
