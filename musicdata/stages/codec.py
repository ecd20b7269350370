"""The codec stage: recordings -> EnCodec codes -> Parquet shards, recorded in the catalog.

A driver on the stage kit and the shard store, like tokenize: codec encodings are entries of the
one registry (`encodec-32k`, `encodec-24k`), their shards go through the store's one writer
(codes [K, T] stored frame by frame as [T, K]), `codec.json` lies beside them, and the in-place
views are refreshed. A token is one frame (one compound step of K codes), as for every compound
encoding, so `token_stats` and `token_length_stats` count the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from musicdata.audio.codec import CodecJob, CodecSettings, codec_settings, encode_recording
from musicdata.catalog import audio as audio_records
from musicdata.catalog import records
from musicdata.catalog.shard_views import refresh_shard_views
from musicdata.fsutil import atomic_write
from musicdata.isolate import IsolatedPool
from musicdata.stages.kit import Outcome, Summary, isolated_batches, record_outcomes, stage_run
from musicdata.store import ShardRow, ShardWriter, next_indexes, reconcile, shard_dir
from musicdata.store.fs import check_shards
from musicdata.store.table import read_shard_metadata
from musicdata.workspace import Workspace

__all__ = ["Steps", "encode_batch", "read_codes", "tokenize_codec"]

KEYS = ("tokenized", "quarantined", "skipped", "shards_written", "shards_adopted", "tokens")


def encode_batch(pool: IsolatedPool, jobs: Sequence[CodecJob]) -> list[dict[str, Any]]:
    """Encode recordings in isolated workers (model loaded once per worker), sorted by id."""
    out = pool.map_records(jobs, lambda i: {"piece_id": jobs[i].recording_id})
    return sorted(out, key=lambda r: r["piece_id"])


@dataclass(frozen=True)
class Steps:
    encode: Callable[[IsolatedPool, Sequence[CodecJob]], list[dict[str, Any]]] = encode_batch


def tokenize_codec(
    ws: Workspace,
    name: str,
    *,
    run_id: str,
    allow_untrained: bool = False,
    steps: Steps | None = None,
) -> Summary:
    """Encode every recording not yet in this codec's shards (resumable, idempotent)."""
    steps = steps or Steps()
    cfg = ws.config.codec
    s = codec_settings(name, cfg, allow_untrained=allow_untrained)
    stage = f"tokenize:{name}"
    info = {"encoding": name, "shard_dir": str(ws.abspath(shard_dir(s))), "trained": s.trained}
    with stage_run(ws, stage, run_id, config_hash=s.config_hash, keys=KEYS, info=info) as summary:
        _register(ws, s)
        with ws.catalog.write() as con:
            known = records.shard_paths(con, name, s.config_hash)
            shas = audio_records.recording_shas(con)
        source_of = lambda rid: f"audio:{shas[rid]}" if rid in shas else None  # noqa: E731
        summary.add("shards_adopted", reconcile(ws, s, run_id, known, source_of=source_of)[0])
        check_shards(ws, s)  # never write on top of a replaced shard (local or at a URL)
        with ws.catalog.write() as con:
            todo = audio_records.recordings_to_encode(
                con, stage, s.config_hash, cfg.include_near_duplicates
            )
            total = records.count_rows(con, "recordings")
            known = records.shard_paths(con, name, s.config_hash)
        summary.add("skipped", int(total) - len(todo))
        writer = ShardWriter(
            ws,
            s,
            run_id,
            "codec",
            next_indexes(known),
            extra_meta=_codec_meta(s),
            source_of=source_of,
        )
        if todo:
            _encode_all(ws, s, todo, steps, summary, writer)
        with ws.catalog.write() as con:
            writer.close(con)
            refresh_shard_views(con, ws.root)
        summary.add("shards_written", writer.shards_written)
        summary.add("tokens", writer.tokens)
        summary.add("frames", writer.tokens)
    return summary


def _codec_meta(s: CodecSettings) -> dict[str, Any]:
    return {
        "frame_rate": s.frame_rate,
        "n_codebooks": s.n_codebooks,
        "codebook_size": s.codebook_size,
        "sample_rate": s.sample_rate,
        "bandwidth": s.bandwidth,
        "trained": str(s.trained).lower(),
        "layout": "tokens[t][k]: frames x codebooks; transpose for [K, T]",
    }


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
                "sub_tokens": [f"codebook_{k}" for k in range(s.n_codebooks)],
                "sub_vocab_sizes": [s.codebook_size] * s.n_codebooks,
            },
        )


def _encode_all(
    ws: Workspace,
    s: CodecSettings,
    todo: list[tuple],
    steps: Steps,
    summary: Summary,
    writer: ShardWriter,
) -> None:
    split_of = {r[0]: r[1] for r in todo}
    meta = {r[0]: (r[3], r[4]) for r in todo}
    jobs = [CodecJob(rid, str(ws.abspath(blob)), s) for rid, _, blob, _, _ in todo]
    cfg = ws.config.codec
    batches = isolated_batches(
        encode_recording,
        cfg,
        jobs,
        label=f"tokenize {s.name}",
        batch_size=s.batch_size,
        step=steps.encode,
        root=ws.root,
    )
    for _, results in batches:
        bad = []
        for r in results:
            rid = r["piece_id"]
            if r["status"] == "ok":
                writer.add(split_of[rid], ShardRow(rid, r["codes"].T))  # [K, T] -> [T, K]
                summary.add("tokenized")
            else:
                sha, path = meta[rid]
                bad.append(
                    Outcome.quarantined(rid, r["reason"], r["detail"], path=path, sha256=sha)
                )
        summary.count(bad)
        if bad:
            with ws.catalog.write() as con:
                record_outcomes(
                    con,
                    f"tokenize:{s.name}",
                    s.config_hash,
                    run_id=summary.run_id,
                    outcomes=bad,
                    detail_prefix=True,
                )


def read_codes(path: Any) -> dict[str, Any]:
    """recording_id -> codes [K, T] int16 from one codec shard."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    k = int(read_shard_metadata(path)["n_codebooks"])
    out = {}
    for rid, tokens in zip(
        table.column("piece_id").to_pylist(), table.column("tokens").to_pylist(), strict=True
    ):
        out[rid] = np.asarray(tokens, np.int16).reshape(-1, k).T
    return out
