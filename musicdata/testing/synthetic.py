"""A synthetic corpus written exactly like the pipeline writes one (catalog rows + Parquet shards
through the shard store's one writer), for tests and benchmarks of the analytics at any size.

Token ids follow a Zipf-like law over each vocabulary and the top `unused` ids are never drawn,
so frequency tables and vocabulary coverage have known answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicdata import __version__
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.store import ShardRow, ShardWriter, next_indexes
from musicdata.workspace import Workspace

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class _Config:
    """What `tokenize.shard_rows` reads of an encoding."""

    name: str
    config_hash: str


@dataclass(frozen=True)
class SyntheticEncoding:
    name: str
    vocab_sizes: tuple[int, ...]  # one entry: flat; several: compound sub-token fields
    fields: tuple[str, ...] = ()
    length_scale: float = 1.0  # mean length relative to the corpus's base length
    unused: int = 5  # the top ids of every vocabulary are never emitted
    config_hash: str = ""

    @property
    def kind(self) -> str:
        return "flat" if len(self.vocab_sizes) == 1 and not self.fields else "compound"

    @property
    def hash(self) -> str:
        return self.config_hash or hashlib.sha256(repr(self).encode()).hexdigest()[:16]


def piece_id(i: int, salt: str = "") -> str:
    return "p" + hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:20]


def _zipf_ids(rng: np.random.Generator, n: int, vocab: int, unused: int) -> np.ndarray:
    usable = max(1, vocab - unused)
    ranks = rng.zipf(1.3, size=n) - 1
    return (ranks % usable).astype(np.int64)


def write_synthetic_corpus(
    ws: Workspace,
    n_pieces: int,
    encodings: list[SyntheticEncoding],
    *,
    seed: int = 0,
    mean_length: int = 200,
    salt: str = "",
    run_id: str = "synthetic",
) -> dict[str, Any]:
    """Add `n_pieces` pieces and their shards for each encoding; returns the generated tokens
    per encoding (piece_id -> array) when small, for tests to compare against."""
    rng = np.random.default_rng(seed)
    t = now()
    ids = [piece_id(i, salt) for i in range(n_pieces)]
    splits = [SPLITS[0 if i % 10 < 8 else (1 if i % 10 == 8 else 2)] for i in range(n_pieces)]
    base = np.maximum(8, rng.lognormal(np.log(mean_length), 0.6, n_pieces)).astype(np.int64)
    notes = np.maximum(1, base // 4)
    pieces, files, edges = [], [], []
    for i, pid in enumerate(ids):
        sha = hashlib.sha256(f"file{salt}{i}".encode()).hexdigest()
        pieces.append(
            {
                "piece_id": pid,
                "sha256": sha,
                "content_hash": sha[:32],
                "split": splits[i],
                "near_duplicate_of": None,
                "blob_path": ws.blob_relpath(sha),
                "duration_s": float(notes[i]) * 0.25,
                "n_notes": int(notes[i]),
                "n_tracks": 1,
                "programs": [0],
                "has_drums": False,
                "ticks_per_quarter": 480,
                "tempo_bpm": 120.0,
                "n_tempo_changes": 0,
                "time_signatures": ["4/4"],
                "pitch_min": 40,
                "pitch_max": 80,
                "ingest_config_hash": "synthetic",
                "run_id": run_id,
                "created_at": t,
            }
        )
        files.append(
            {
                "path": f"/synthetic/{salt}{i}.mid",
                "sha256": sha,
                "size_bytes": 100,
                "kind": "midi",
                "archive": None,
                "exact_duplicate_of": None,
                "run_id": run_id,
                "first_seen_at": t,
            }
        )
        edges.append(_edge(f"file:{sha}", f"piece:{pid}", "ingest", "synthetic", run_id, t))
    with ws.catalog.write() as con:
        records.insert_rows(con, "files", files)
        records.insert_rows(con, "pieces", pieces)
        records.insert_rows(con, "lineage_edges", edges)
    generated: dict[str, dict[str, np.ndarray]] = {}
    for enc in encodings:
        generated[enc.name] = _write_encoding(ws, enc, ids, splits, base, rng, run_id)
    return generated


def _edge(src: str, dst: str, stage: str, chash: str, run_id: str, t: Any) -> dict[str, Any]:
    return {
        "src_id": src,
        "dst_id": dst,
        "stage": stage,
        "config_hash": chash,
        "code_version": __version__,
        "run_id": run_id,
        "created_at": t,
    }


def _write_encoding(
    ws: Workspace,
    enc: SyntheticEncoding,
    ids: list[str],
    splits: list[str],
    base: np.ndarray,
    rng: np.random.Generator,
    run_id: str,
) -> dict[str, np.ndarray]:
    lengths = np.maximum(1, (base * enc.length_scale).astype(np.int64))
    total = int(lengths.sum())
    if enc.kind == "flat":
        flat = _zipf_ids(rng, total, enc.vocab_sizes[0], enc.unused).astype(np.int32)
    else:
        cols = [_zipf_ids(rng, total, v, enc.unused) for v in enc.vocab_sizes]
        flat = np.stack(cols, axis=1).astype(np.int16)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    chash = enc.hash
    cfg = _Config(enc.name, chash)
    compound = enc.kind == "compound"
    with ws.catalog.write() as con:
        records.upsert_encoding(
            con,
            {
                "encoding": enc.name,
                "config_hash": chash,
                "kind": enc.kind,
                "vocab_size": int(sum(enc.vocab_sizes)),
                "config_path": f"shards/{enc.name}/{chash}/tokenizer.json",
                "config_json": "{}",
                "sub_tokens": list(enc.fields) if compound and enc.fields else None,
                "sub_vocab_sizes": list(enc.vocab_sizes) if compound else None,
            },
        )
        paths = records.shard_paths(con, enc.name, chash)
    keep: dict[str, np.ndarray] = {}
    # the store's one writer: new part files after the existing ones, like a tokenize rerun
    writer = ShardWriter(
        ws, cfg, run_id, enc.kind, next_indexes(paths), sub_tokens=list(enc.fields) or None
    )
    for i, pid in enumerate(ids):
        row = ShardRow(pid, flat[offsets[i] : offsets[i + 1]])
        if len(ids) <= 2000:
            keep[pid] = row.tokens
        writer.add(splits[i], row)
    with ws.catalog.write() as con:
        writer.close(con)
    return keep
