"""The codec tokenize stage: recordings -> EnCodec codes -> Parquet shards, recorded in the catalog.

Same contract as the symbolic tokenize stage (musicdata.tokenize): shards at
`shards/<encoding>/<config_hash>/<split>/part-NNNNN.parquet` with `codec.json` beside them, rows
in core.encodings / shards / shard_pieces / stage_results / lineage_edges, so `token_stats` shows
codec shards (one piece per recording; tokens = frames x codebooks). A recording is marked done
only in the transaction that records its shard; a shard file without a catalog row (a crash) is
adopted if it matches this config and none of its recordings is elsewhere, else deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from musicdata import __version__, progress
from musicdata.audio.codec import CodecJob, CodecSettings, codec_settings, encode_recording
from musicdata.audio.codec_table import build_codec_table, read_codes
from musicdata.catalog import audio as audio_records
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.fsutil import TMP_SUFFIX, atomic_write, sha256_file
from musicdata.isolate import IsolatedPool
from musicdata.shards import WrittenShard, read_shard_metadata, write_shard
from musicdata.tokenize import (
    PART_RE,
    TokenizeSummary,
    next_indexes,
    shard_dir,
    shard_relpath,
    shard_rows,
)
from musicdata.workspace import Workspace

__all__ = ["CodecSummary", "Steps", "encode_batch", "read_codes", "tokenize_codec"]


@dataclass
class CodecSummary(TokenizeSummary):
    trained: bool = False
    frames: int = 0


def encode_batch(pool: IsolatedPool, jobs: list[CodecJob]) -> list[dict[str, Any]]:
    """Encode recordings in isolated workers (model loaded once per worker), sorted by id."""
    out = pool.map_records(jobs, lambda i: {"piece_id": jobs[i].recording_id})
    return sorted(out, key=lambda r: r["piece_id"])


@dataclass(frozen=True)
class Steps:
    encode: Callable[[IsolatedPool, list[CodecJob]], list[dict[str, Any]]] = encode_batch


def _record_shard(
    ws: Workspace,
    s: CodecSettings,
    rel: str,
    split: str,
    written: WrittenShard,
    frames: dict[str, int],
    shas: dict[str, str],
    run_id: str,
) -> None:
    """The tokenize stage's shard rows: tokens = frames x codebooks, lineage from `audio:`."""
    tokens = {r: n * s.n_codebooks for r, n in frames.items()}
    audio = [f"audio:{shas[r]}" for r in frames]
    with ws.catalog.write() as con:
        shard_rows(con, s, rel, split, written, tokens, run_id, sources=audio)


def _register(ws: Workspace, s: CodecSettings) -> None:
    cfg_path = ws.abspath(f"{shard_dir(s)}/codec.json")
    params = {k: v for k, v in asdict(s).items() if k != "weights"}
    if not cfg_path.exists():
        text = json.dumps({**params, "config_hash": s.config_hash}, indent=2, sort_keys=True)
        atomic_write(cfg_path, lambda tmp: tmp.write_text(text + "\n"))
    with ws.catalog.write() as con:
        records.upsert_encoding(
            con,
            {
                "encoding": s.name,
                "config_hash": s.config_hash,
                "kind": "codec",
                "vocab_size": s.codebook_size,
                "config_path": str(cfg_path.relative_to(ws.root)),
                "config_json": json.dumps(params, sort_keys=True),
            },
        )


def _reconcile(ws: Workspace, s: CodecSettings, run_id: str) -> int:
    """Adopt whole shards a crash left without catalog rows; delete the rest. Returns adopted."""
    import pyarrow.parquet as pq

    root = ws.abspath(shard_dir(s))
    if not root.exists():
        return 0
    with ws.catalog.write() as con:
        known = records.shard_paths(con, s.name, s.config_hash)
        shas = dict(con.execute("SELECT recording_id, sha256 FROM core.recordings").fetchall())
    adopted = 0
    for path in sorted(root.rglob("*.parquet*")):
        rel = str(path.relative_to(ws.root))
        if rel in known:
            continue
        ok = not path.name.endswith(TMP_SUFFIX) and PART_RE.match(path.name) is not None
        if ok:
            try:
                meta = read_shard_metadata(path)
                t = pq.read_table(path, columns=["piece_id", "length"])
            except (OSError, ValueError):
                meta, ok = {}, False
            ok = ok and meta.get("config_hash") == s.config_hash and meta.get("encoding") == s.name
        if ok:
            frames = dict(
                zip(t.column("piece_id").to_pylist(), t.column("length").to_pylist(), strict=True)
            )
            with ws.catalog.write() as con:
                done = records.stage_status(con, f"tokenize:{s.name}", s.config_hash, list(frames))
            ok = not done and all(r in shas for r in frames)
        if not ok:
            path.unlink()
            continue
        written = WrittenShard(path, t.num_rows, 0, path.stat().st_size, sha256_file(path))
        _record_shard(ws, s, rel, path.parent.name, written, frames, shas, run_id)
        adopted += 1
    return adopted


def tokenize_codec(
    ws: Workspace,
    name: str,
    *,
    run_id: str,
    allow_untrained: bool = False,
    steps: Steps | None = None,
) -> CodecSummary:
    """Encode every recording not yet in this codec's shards (resumable, idempotent)."""
    steps = steps or Steps()
    cfg = ws.config.codec
    s = codec_settings(name, cfg, allow_untrained=allow_untrained)
    summary = CodecSummary(
        name, s.config_hash, run_id, trained=s.trained, shard_dir=str(ws.abspath(shard_dir(s)))
    )
    stage = f"tokenize:{name}"
    with ws.catalog.write() as con:
        records.start_run(con, run_id, stage, __version__, ws.config.to_dict())
    _register(ws, s)
    summary.shards_adopted = _reconcile(ws, s, run_id)
    with ws.catalog.write() as con:
        todo = audio_records.recordings_to_encode(
            con, stage, s.config_hash, cfg.include_near_duplicates
        )
        total = con.execute("SELECT count(*) FROM core.recordings").fetchall()[0][0]
        known = records.shard_paths(con, name, s.config_hash)
    summary.skipped = int(total) - len(todo)
    if todo:
        _encode_all(ws, s, todo, known, steps, summary, run_id)
    with ws.catalog.write() as con:
        records.finish_run(con, run_id, "completed", summary.to_dict())
    return summary


def _encode_all(
    ws: Workspace,
    s: CodecSettings,
    todo: list[tuple],
    known: set[str],
    steps: Steps,
    summary: CodecSummary,
    run_id: str,
) -> None:
    split_of = {r[0]: r[1] for r in todo}
    shas = {r[0]: r[3] for r in todo}
    source = {r[0]: r[4] for r in todo}
    next_index = next_indexes(known)
    buffers: dict[str, list[tuple[str, np.ndarray]]] = {}

    def flush(split: str) -> None:
        rows = buffers.pop(split, [])
        if not rows:
            return
        idx = next_index.get(split, 0)
        next_index[split] = idx + 1
        rel = shard_relpath(s, split, idx)
        written = write_shard(build_codec_table(rows, split, s), ws.abspath(rel), ws.config.shards)
        frames = {r: int(c.shape[1]) for r, c in rows}
        _record_shard(ws, s, rel, split, written, frames, shas, run_id)
        summary.shards_written += 1
        summary.frames += sum(frames.values())
        summary.tokens += sum(frames.values()) * s.n_codebooks

    cfg = ws.config.codec
    size = max(1, s.batch_size)
    with (
        IsolatedPool.configured(encode_recording, cfg) as pool,
        progress.bar(f"tokenize {s.name}", len(todo)) as advance,
    ):
        for i in range(0, len(todo), size):
            jobs = [
                CodecJob(rid, str(ws.abspath(blob)), s) for rid, _, blob, _, _ in todo[i : i + size]
            ]
            results = steps.encode(pool, jobs)
            _quarantine(
                ws, s, [r for r in results if r["status"] != "ok"], shas, source, summary, run_id
            )
            for r in results:
                if r["status"] == "ok":
                    split = split_of[r["piece_id"]]
                    buffers.setdefault(split, []).append((r["piece_id"], r["codes"]))
                    summary.tokenized += 1
                    if len(buffers[split]) >= ws.config.shards.rows_per_shard:
                        flush(split)
            advance(len(jobs))
    for split in sorted(buffers):
        flush(split)


def _quarantine(
    ws: Workspace,
    s: CodecSettings,
    bad: list[dict[str, Any]],
    shas: dict[str, str],
    source: dict[str, str],
    summary: CodecSummary,
    run_id: str,
) -> None:
    if not bad:
        return
    stage, t = f"tokenize:{s.name}", now()
    for r in bad:
        summary.quarantined += 1
        summary.reasons[r["reason"]] = summary.reasons.get(r["reason"], 0) + 1
    with ws.catalog.write() as con:
        records.insert_rows(
            con,
            "quarantine",
            [
                {
                    "path": source[r["piece_id"]],
                    "sha256": shas[r["piece_id"]],
                    "stage": stage,
                    "reason": r["reason"],
                    "detail": f"{r['piece_id']}: {r['detail']}",
                    "config_hash": s.config_hash,
                    "run_id": run_id,
                    "created_at": t,
                }
                for r in bad
            ],
        )
        records.insert_rows(
            con,
            "stage_results",
            [
                {
                    "stage": stage,
                    "input_id": r["piece_id"],
                    "config_hash": s.config_hash,
                    "status": "quarantined",
                    "output_id": None,
                    "run_id": run_id,
                    "created_at": t,
                }
                for r in bad
            ],
        )
