"""The ingest stage as library functions: discover -> parse batches in isolation -> record.

`ingest_paths` runs the stage without Prefect (notebooks, tests); the Prefect flow passes its task
wrappers of the same step functions in `Steps`, so both paths run the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicdata import __version__, progress
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.ingest.discover import Candidate, Discovery, Rejected, discover
from musicdata.ingest.midi import MidiJob, inspect_midi
from musicdata.ingest.split import assign_split
from musicdata.isolate import IsolatedPool
from musicdata.workspace import Workspace
from schemas.config import config_hash

STAGE = "ingest"
INGEST_VERSION = 1  # bump when parsing or validation changes what a file's outcome is


def ingest_config_hash(ws: Workspace) -> str:
    return config_hash(ws.config.ingest, {"stage": STAGE, "version": INGEST_VERSION})


def piece_id_for(sha256: str) -> str:
    return "p" + sha256[:20]


@dataclass
class IngestSummary:
    run_id: str
    ok: int = 0
    quarantined: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    skipped: int = 0
    ignored: int = 0
    recordings: int = 0  # audio files among ok
    transcribed: int = 0  # recordings transcribed into MIDI pieces (this run)
    no_notes: int = 0  # recordings transcribed to "no notes" (silence)
    transcribe_failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: dict[str, int]) -> None:
        for key, value in other.items():
            if key == "reasons":
                for reason, n in value.items():  # type: ignore[attr-defined]
                    self.reasons[reason] = self.reasons.get(reason, 0) + n
            else:
                setattr(self, key, getattr(self, key) + value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    file_rows, out_rows, quarantine_rows, result_rows, edges = [], [], [], [], []

    def quarantine(path: str, sha: str | None, reason: str, detail: str, stage: str) -> None:
        quarantine_rows.append(
            {
                "path": path,
                "sha256": sha,
                "stage": stage,
                "reason": reason,
                "detail": detail,
                "config_hash": chash,
                "run_id": run_id,
                "created_at": t,
            }
        )

    def result(sha: str, status: str, out: str | None) -> dict[str, Any]:
        return {
            "stage": kind.stage,
            "input_id": sha,
            "config_hash": chash,
            "status": status,
            "output_id": out,
            "run_id": run_id,
            "created_at": t,
        }

    with ws.catalog.write() as con:
        shas = sorted({f.sha256 for f in files})
        done = records.stage_status(con, kind.stage, chash, shas)
        first_path = records.first_paths(con, shas)
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
                quarantine(f.path, f.sha256, rec["reason"], rec["detail"], kind.stage)
                result_rows.append(result(f.sha256, "quarantined", None))
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
            result_rows.append(result(f.sha256, "ok", oid))
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
        records.insert_rows(con, "quarantine", quarantine_rows)
        records.insert_rows(con, "stage_results", result_rows)
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


def _parse_audio(ws: Workspace, shas: list[str]) -> list[dict[str, Any]]:
    from musicdata.audio.ingest import parse_audio_batch

    return parse_audio_batch(ws, shas)


def _record_audio(ws: Workspace, run_id: str, files: list[Candidate], parsed: list) -> dict:
    from musicdata.audio.ingest import record_audio_batch

    return record_audio_batch(ws, run_id, files, parsed)


def _transcribe(ws: Workspace, run_id: str) -> dict[str, int]:
    from musicdata.audio.transcribe_stage import transcribe_pending

    return transcribe_pending(ws, run_id=f"{run_id}:transcribe").counts()


@dataclass(frozen=True)
class Steps:
    """The stage's step functions; the Prefect flow swaps in task-wrapped versions."""

    discover: Callable[[Workspace, list[Path]], Discovery] = discover
    parse: Callable[[Workspace, list[str]], list[dict[str, Any]]] = parse_batch
    record: Callable[..., dict[str, Any]] = record_batch
    # audio (musicdata.audio): decode + validate in isolation, record, then transcribe
    parse_audio: Callable[[Workspace, list[str]], list[dict[str, Any]]] = _parse_audio
    record_audio: Callable[..., dict[str, Any]] = _record_audio
    transcribe: Callable[[Workspace, str], dict[str, int]] = _transcribe


def ingest_paths(
    ws: Workspace,
    inputs: list[Path],
    *,
    run_id: str,
    steps: Steps | None = None,
    transcribe: bool | None = None,
) -> IngestSummary:
    """Ingest files, folders and archives; a rerun on the same inputs does no work.

    Audio files are decoded and recorded as recordings, then (unless `transcribe` is False, or
    None and `[transcribe] enabled = false`) transcribed into MIDI pieces.
    """
    steps = steps or Steps()
    if transcribe is None:
        transcribe = ws.config.transcribe.enabled
    summary = IngestSummary(run_id=run_id)
    found = steps.discover(ws, inputs)
    summary.ignored = len(found.ignored)
    with ws.catalog.write() as con:
        records.start_run(con, run_id, "ingest", __version__, ws.config.to_dict())
        known = records.known_files(con, [(c.path, c.sha256) for c in found.candidates])
        seen_rejections = records.known_rejections(con, [r.path for r in found.rejected])
        new = [c for c in found.candidates if (c.path, c.sha256) not in known]
        new_audio = [c for c in new if c.kind == "audio"]
        new = [c for c in new if c.kind != "audio"]
        # Bytes to parse: new shas the catalog has no outcome for under this config.
        new_shas = sorted({c.sha256 for c in new})
        done = records.stage_status(con, STAGE, ingest_config_hash(ws), new_shas)
    rejected = [r for r in found.rejected if (r.path, r.reason) not in seen_rejections]
    summary.skipped = (
        len(found.candidates) - len(new) - len(new_audio) + len(found.rejected) - len(rejected)
    )
    to_parse = sorted({c.sha256 for c in new} - set(done))
    batch_size = max(1, ws.config.ingest.batch_size)
    batches = [to_parse[i : i + batch_size] for i in range(0, len(to_parse), batch_size)]
    by_sha: dict[str, list[Candidate]] = {}
    for c in new:
        by_sha.setdefault(c.sha256, []).append(c)
    with progress.bar("ingest", len(to_parse)) as advance:
        for batch in batches:
            parsed = steps.parse(ws, batch)
            files = sorted((c for s in batch for c in by_sha[s]), key=lambda c: c.path)
            summary.add(steps.record(ws, run_id, files, parsed, []))
            advance(len(batch))
    # Files whose bytes were already known (or are quarantined before parsing): no parse needed.
    parsed_shas = set(to_parse)
    rest = sorted((c for c in new if c.sha256 not in parsed_shas), key=lambda c: c.path)
    if rest or rejected:
        summary.add(steps.record(ws, run_id, rest, [], rejected))
    if new_audio:
        _ingest_audio(ws, run_id, new_audio, steps, summary)
    if transcribe:
        summary.add(steps.transcribe(ws, run_id))
    with ws.catalog.write() as con:
        records.finish_run(con, run_id, "completed", summary.to_dict())
    return summary


def _ingest_audio(
    ws: Workspace, run_id: str, new: list[Candidate], steps: Steps, summary: IngestSummary
) -> None:
    """Audio candidates: decode what the catalog has no outcome for, record every path."""
    from musicdata.audio.ingest import STAGE as AUDIO_STAGE
    from musicdata.audio.ingest import audio_config_hash

    with ws.catalog.write() as con:
        done = records.stage_status(
            con, AUDIO_STAGE, audio_config_hash(ws), sorted({c.sha256 for c in new})
        )
    to_parse = sorted({c.sha256 for c in new} - set(done))
    by_sha: dict[str, list[Candidate]] = {}
    for c in new:
        by_sha.setdefault(c.sha256, []).append(c)
    size = max(1, ws.config.audio.batch_size)
    with progress.bar("ingest audio", len(to_parse)) as advance:
        for i in range(0, len(to_parse), size):
            batch = to_parse[i : i + size]
            parsed = steps.parse_audio(ws, batch)
            files = sorted((c for s in batch for c in by_sha[s]), key=lambda c: c.path)
            summary.add(steps.record_audio(ws, run_id, files, parsed))
            advance(len(batch))
    parsed_shas = set(to_parse)
    rest = sorted((c for c in new if c.sha256 not in parsed_shas), key=lambda c: c.path)
    if rest:
        summary.add(steps.record_audio(ws, run_id, rest, []))
