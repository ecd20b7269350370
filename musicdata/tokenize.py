"""The tokenize stage: pieces -> one encoding -> Parquet shards per split, recorded in the catalog.

Resumable: a piece is marked done only in the transaction that records the shard holding it, so a
crash loses at most the unwritten buffer. Shards a crash left behind without a catalog row are
adopted if they match this config, else deleted (DESIGN rule 3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicdata import __version__, progress
from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.catalog.shard_views import refresh_shard_views
from musicdata.encodings import Encoding, get_encoding
from musicdata.encodings.fidelity import Fidelity
from musicdata.encodings.worker import TokenizeJob, tokenize_piece
from musicdata.fsutil import TMP_SUFFIX, atomic_write, sha256_file
from musicdata.isolate import IsolatedPool
from musicdata.shards import ShardRow, WrittenShard, build_table, read_shard_metadata, write_shard
from musicdata.workspace import Workspace

PART_RE = re.compile(r"^part-(\d{5})\.parquet$")


@dataclass
class TokenizeSummary:
    encoding: str
    config_hash: str
    run_id: str
    tokenized: int = 0
    quarantined: int = 0
    skipped: int = 0
    shards_written: int = 0
    shards_adopted: int = 0
    tokens: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    shard_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokenize_batch(pool: IsolatedPool, jobs: list[TokenizeJob]) -> list[dict[str, Any]]:
    """Tokenize pieces in isolated workers; one record per piece, sorted by piece id."""
    out = pool.map_records(
        jobs, lambda i: {"piece_id": jobs[i].piece_id, "encoding": jobs[i].encoding}
    )
    return sorted(out, key=lambda r: (r["piece_id"], r["encoding"]))


@dataclass
class _Writer:
    """Buffers tokenized pieces per split and flushes full shards into the catalog."""

    ws: Workspace
    enc: Encoding
    run_id: str
    summary: TokenizeSummary
    next_index: dict[str, int]
    buffers: dict[str, list[ShardRow]] = field(default_factory=dict)
    fidelity: dict[str, Fidelity] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return f"tokenize:{self.enc.name}"

    def add(self, split: str, row: ShardRow, fidelity: Fidelity | None = None) -> None:
        if fidelity is not None:
            self.fidelity[row.piece_id] = fidelity
        self.buffers.setdefault(split, []).append(row)
        if len(self.buffers[split]) >= self.ws.config.shards.rows_per_shard:
            self.flush(split)

    def flush(self, split: str, defer: list[tuple] | None = None) -> None:
        """Write the split's buffered rows as a shard; record it now, or append the record's
        arguments to `defer` so the caller records many shards in one transaction."""
        rows = self.buffers.pop(split, [])
        if not rows:
            return
        idx = self.next_index.get(split, 0)
        self.next_index[split] = idx + 1
        rel = shard_relpath(self.enc, split, idx)
        table = build_table(
            rows,
            split=split,
            encoding=self.enc.name,
            config_hash=self.enc.config_hash,
            kind=self.enc.kind,
            sub_tokens=self.enc.sub_tokens,
        )
        written = write_shard(table, self.ws.abspath(rel), self.ws.config.shards)
        lengths = {r.piece_id: len(r.tokens) for r in rows}
        fid = {p: self.fidelity.pop(p) for p in lengths if p in self.fidelity}
        args = (self.enc, rel, split, written, lengths, self.run_id, fid)
        if defer is None:
            record_shard(self.ws, *args)
        else:
            defer.append(args)
        self.summary.shards_written += 1
        self.summary.tokens += written.n_tokens

    def quarantine(
        self, results: list[dict[str, Any]], sources: dict[str, tuple[str, str]]
    ) -> None:
        rows, done = [], []
        t = now()
        for r in results:
            self.summary.quarantined += 1
            self.summary.reasons[r["reason"]] = self.summary.reasons.get(r["reason"], 0) + 1
            sha, path = sources[r["piece_id"]]
            rows.append(
                {
                    "path": path,
                    "sha256": sha,
                    "stage": self.stage,
                    "reason": r["reason"],
                    "detail": f"{r['piece_id']}: {r['detail']}",
                    "config_hash": self.enc.config_hash,
                    "run_id": self.run_id,
                    "created_at": t,
                }
            )
            done.append(
                {
                    "stage": self.stage,
                    "input_id": r["piece_id"],
                    "config_hash": self.enc.config_hash,
                    "status": "quarantined",
                    "output_id": None,
                    "run_id": self.run_id,
                    "created_at": t,
                }
            )
        if rows:
            with self.ws.catalog.write() as con:
                records.insert_rows(con, "quarantine", rows)
                records.insert_rows(con, "stage_results", done)


def shard_dir(enc: Encoding | Any) -> str:
    """Where an encoding config's shards live (`enc` needs `name` and `config_hash`)."""
    return f"shards/{enc.name}/{enc.config_hash}"


def shard_relpath(enc: Encoding | Any, split: str, idx: int) -> str:
    return f"{shard_dir(enc)}/{split}/part-{idx:05d}.parquet"


def record_shard(
    ws: Workspace,
    enc: Encoding,
    rel: str,
    split: str,
    written: WrittenShard,
    lengths: dict[str, int],
    run_id: str,
    fidelity: dict[str, Fidelity] | None = None,
) -> None:
    """Catalog rows for a shard already renamed into place: shard, its pieces, done markers and
    the pieces' round-trip fidelity, in one transaction."""
    with ws.catalog.write() as con:
        shard_rows(con, enc, rel, split, written, lengths, run_id, fidelity)


def shard_rows(
    con: Any,
    enc: Encoding | Any,
    rel: str,
    split: str,
    written: WrittenShard,
    lengths: dict[str, int],
    run_id: str,
    fidelity: dict[str, Fidelity] | None = None,
    *,
    sources: list[str] | None = None,
) -> None:
    """The inserts of `record_shard`, inside the caller's transaction. Any stage that writes
    token shards uses it (`enc` needs `name` and `config_hash`): `lengths` are tokens per row,
    `sources` the lineage nodes of the rows (default `piece:<id>`)."""
    stage = f"tokenize:{enc.name}"
    shard_id = f"{enc.name}:{enc.config_hash}:{split}:{Path(rel).stem.split('-')[1]}"
    t = now()
    records.insert_rows(
        con,
        "shards",
        [
            {
                "shard_id": shard_id,
                "encoding": enc.name,
                "config_hash": enc.config_hash,
                "split": split,
                "path": rel,
                "n_rows": written.n_rows,
                "n_tokens": sum(lengths.values()),
                "size_bytes": written.size_bytes,
                "file_sha256": written.file_sha256,
                "run_id": run_id,
                "created_at": t,
            }
        ],
    )
    records.insert_rows(
        con,
        "shard_pieces",
        [{"shard_id": shard_id, "piece_id": p, "n_tokens": n} for p, n in lengths.items()],
    )
    records.insert_rows(
        con,
        "stage_results",
        [
            {
                "stage": stage,
                "input_id": p,
                "config_hash": enc.config_hash,
                "status": "ok",
                "output_id": shard_id,
                "run_id": run_id,
                "created_at": t,
            }
            for p in lengths
        ],
    )
    sources = [*(sources or [f"piece:{p}" for p in lengths])]
    sources.append(f"encoding:{enc.name}@{enc.config_hash}")
    edges = [
        {
            "src_id": src,
            "dst_id": f"shard:{shard_id}",
            "stage": stage,
            "config_hash": enc.config_hash,
            "code_version": __version__,
            "run_id": run_id,
            "created_at": t,
        }
        for src in sources
    ]
    records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
    records.insert_rows(
        con,
        "fidelity",
        [
            {
                "encoding": enc.name,
                "config_hash": enc.config_hash,
                "piece_id": p,
                "notes": f.notes,
                "recovered": f.recovered,
                "decoded": f.decoded,
                "error": f.error,
                "run_id": run_id,
                "created_at": t,
            }
            for p, f in (fidelity or {}).items()
        ],
        on_conflict_nothing=True,
    )


def reconcile(ws: Workspace, enc: Encoding, run_id: str, known: set[str]) -> tuple[int, int]:
    """Adopt whole shards a crash left without catalog rows, delete the rest: (adopted, deleted).
    `known`: the shard paths the catalog has for this config."""
    root = ws.abspath(shard_dir(enc))
    if not root.exists():
        return 0, 0
    adopted = deleted = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == "tokenizer.json":
            continue
        rel = str(path.relative_to(ws.root))
        if rel in known:
            continue
        if path.name.endswith(TMP_SUFFIX) or not PART_RE.match(path.name):
            path.unlink()
            deleted += 1
            continue
        if _adopt(ws, enc, path, rel, run_id):
            adopted += 1
        else:
            path.unlink()
            deleted += 1
    return adopted, deleted


def _adopt(ws: Workspace, enc: Encoding, path: Path, rel: str, run_id: str) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = read_shard_metadata(path)
        table = pq.read_table(path, columns=["piece_id", "length"])
    except (OSError, ValueError) as exc:  # a torn or foreign file is deleted, not trusted
        del exc
        return False
    if meta.get("encoding") != enc.name or meta.get("config_hash") != enc.config_hash:
        return False
    split = meta.get("split", path.parent.name)
    lengths = dict(
        zip(table.column("piece_id").to_pylist(), table.column("length").to_pylist(), strict=True)
    )
    with ws.catalog.write() as con:
        done = records.stage_status(con, f"tokenize:{enc.name}", enc.config_hash, list(lengths))
    if done:  # some of its pieces already live in another shard: adopting would duplicate them
        return False
    written = WrittenShard(
        path, table.num_rows, sum(lengths.values()), path.stat().st_size, sha256_file(path)
    )
    record_shard(ws, enc, rel, split, written, lengths, run_id)
    return True


@dataclass(frozen=True)
class Steps:
    """Step functions; the Prefect flow swaps in task-wrapped versions."""

    tokenize: Callable[[IsolatedPool, list[TokenizeJob]], list[dict[str, Any]]] = tokenize_batch


def tokenize_encoding(
    ws: Workspace, name: str, *, run_id: str, steps: Steps | None = None
) -> TokenizeSummary:
    """Tokenize every piece not yet in this encoding's shards (resumable, idempotent)."""
    return tokenize_encodings(ws, [name], run_ids={name: run_id}, steps=steps)[0]


def tokenize_encodings(
    ws: Workspace,
    names: list[str],
    *,
    run_ids: dict[str, str],
    steps: Steps | None = None,
) -> list[TokenizeSummary]:
    """Tokenize every piece into every named encoding, sharing one pool of isolated workers:
    (piece, encoding) jobs from all encodings keep every core busy; the parent writes each
    encoding's shards and catalog rows. Resumable per encoding. Catalog work is grouped into a
    few short transactions (each costs a DuckDB open + checkpoint, ~30-50 ms)."""
    encs = [prepare_encoding(ws, get_encoding(n, ws.config.encodings.get(n))) for n in names]
    with ws.catalog.write() as con:
        for enc in encs:
            stage = f"tokenize:{enc.name}"
            records.start_run(con, run_ids[enc.name], stage, __version__, ws.config.to_dict())
        registered = records.registered_encodings(con)
        known = {e.name: records.shard_paths(con, e.name, e.config_hash) for e in encs}
    cfg_paths = {e.name: _ensure_config(ws, e) for e in encs}
    new_rows = [
        _encoding_row(ws, e, cfg_paths[e.name])
        for e in encs
        if (e.name, e.config_hash) not in registered
    ]
    adopted = {e.name: reconcile(ws, e, run_ids[e.name], known[e.name])[0] for e in encs}
    writers: list[_Writer] = []
    todo: list[tuple[_Writer, tuple[str, str, str, str, str]]] = []
    with ws.catalog.write() as con:
        for row in new_rows:
            records.upsert_encoding(con, row)
        total = con.execute("SELECT count(*) FROM core.pieces").fetchall()[0][0]
        for enc in encs:
            stage = f"tokenize:{enc.name}"
            pieces = records.pieces_to_tokenize(
                con, stage, enc.config_hash, ws.config.tokenize.include_near_duplicates
            )
            next_index = next_indexes(records.shard_paths(con, enc.name, enc.config_hash))
            summary = TokenizeSummary(
                enc.name,
                enc.config_hash,
                run_ids[enc.name],
                skipped=int(total) - len(pieces),
                shards_adopted=adopted[enc.name],
                shard_dir=str(ws.abspath(shard_dir(enc))),
            )
            writer = _Writer(ws, enc, run_ids[enc.name], summary, next_index)
            writers.append(writer)
            todo += [(writer, row) for row in pieces]
    todo.sort(key=lambda item: item[1][0])  # piece-major: all encodings of a piece together
    if todo:
        _tokenize_all(ws, todo, steps or Steps())
    pending: list[tuple] = []
    for writer in writers:
        for split in sorted(writer.buffers):
            writer.flush(split, defer=pending)
    with ws.catalog.write() as con:
        for args in pending:
            shard_rows(con, *args)
        for writer in writers:
            records.finish_run(con, writer.run_id, "completed", writer.summary.to_dict())
        refresh_shard_views(con, ws.root)  # analysts' in-place views cover the new shards
    return [w.summary for w in writers]


def prepare_encoding(ws: Workspace, enc: Encoding) -> Encoding:
    """Learned vocabularies: train on the train split once (or reuse the saved tokenizer of the
    same training set) and return the encoding bound to its trained file."""
    if not getattr(enc, "learned", False):
        return enc
    from musicdata.encodings.learned import training_set_hash

    with ws.catalog.write() as con:
        rows = records.training_pieces(con, int(enc.params["max_train_pieces"]))
    if not rows:
        msg = f"{enc.name}: no train-split pieces to learn a vocabulary from; ingest MIDI first"
        raise ValueError(msg)
    params = {**enc.params, "training_set": training_set_hash([pid for pid, _ in rows])}
    enc = get_encoding(enc.name, params)
    path = ws.abspath(f"{shard_dir(enc)}/tokenizer.json")
    if not path.exists():
        blobs = [ws.abspath(blob) for _, blob in rows]
        atomic_write(path, lambda tmp: enc.train(blobs, tmp))  # type: ignore[attr-defined]
    trained = {"tokenizer_file": str(path), "tokenizer_sha256": sha256_file(path)}
    return get_encoding(enc.name, {**params, **trained})


def _ensure_config(ws: Workspace, enc: Encoding) -> Path:
    """Save the tokenizer config beside the shards, once (building a MidiTok tokenizer imports
    torch, which a rerun with nothing to do should not pay for)."""
    cfg_path = ws.abspath(f"{shard_dir(enc)}/tokenizer.json")
    if not cfg_path.exists():
        atomic_write(cfg_path, lambda tmp: _save_config(enc, tmp))
    return cfg_path


def _encoding_row(ws: Workspace, enc: Encoding, cfg_path: Path) -> dict[str, Any]:
    return {
        "encoding": enc.name,
        "config_hash": enc.config_hash,
        "kind": enc.kind,
        "vocab_size": enc.vocab_size,
        "config_path": str(cfg_path.relative_to(ws.root)),
        "config_json": json.dumps(enc.params, sort_keys=True, default=str),
        "sub_tokens": enc.sub_tokens,
        "sub_vocab_sizes": enc.sub_vocab_sizes,
        "lossless": enc.lossless,
        "paper": enc.paper,
    }


def _tokenize_all(
    ws: Workspace,
    todo: list[tuple[_Writer, tuple[str, str, str, str, str]]],
    steps: Steps,
) -> None:
    by_name = {w.enc.name: w for w, _ in todo}
    split_of = {row[0]: row[1] for _, row in todo}
    sources = {row[0]: (row[3], row[4]) for _, row in todo}
    tcfg = ws.config.tokenize
    size = max(1, tcfg.batch_size)
    label = f"tokenize {', '.join(by_name)}" if len(by_name) < 4 else f"tokenize x{len(by_name)}"
    with (
        IsolatedPool.configured(tokenize_piece, tcfg) as pool,
        progress.bar(label, len(todo)) as advance,
    ):
        for i in range(0, len(todo), size):
            batch = todo[i : i + size]
            jobs = [
                TokenizeJob(pid, str(ws.abspath(blob)), w.enc.name, w.enc.params, tcfg.fidelity)
                for w, (pid, _, blob, _, _) in batch
            ]
            results = steps.tokenize(pool, jobs)
            for name, writer in by_name.items():
                writer.quarantine(
                    [r for r in results if r["encoding"] == name and r["status"] != "ok"],
                    sources,
                )
            for r in results:
                if r["status"] == "ok":
                    writer = by_name[r["encoding"]]
                    row = ShardRow(r["piece_id"], r["tokens"])
                    writer.add(split_of[r["piece_id"]], row, r.get("fidelity"))
                    writer.summary.tokenized += 1
            advance(len(jobs))


def _save_config(enc: Encoding, tmp: Path) -> None:
    written = enc.save_config(tmp.parent / (tmp.name + ".d"))
    written.replace(tmp)
    written.parent.rmdir()


def next_indexes(paths: set[str]) -> dict[str, int]:
    """Next part number per split, after the catalog's existing shard paths."""
    out: dict[str, int] = {}
    for p in paths:
        m = PART_RE.match(Path(p).name)
        if m:
            split = Path(p).parent.name
            out[split] = max(out.get(split, 0), int(m.group(1)) + 1)
    return out
