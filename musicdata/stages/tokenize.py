"""The tokenize stage: pieces -> encodings -> Parquet shards per split, recorded in the catalog.

A driver on the stage kit and the shard store: one pool of isolated workers runs (piece, encoding)
jobs for every named encoding at once (keeps every core busy); the parent writes each encoding's
shards through the store's one writer. Resumable and idempotent per encoding (musicdata.store).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata.catalog import records
from musicdata.catalog.shard_views import refresh_shard_views
from musicdata.encodings import Encoding, get_encoding, workspace_encoding
from musicdata.encodings.worker import TokenizeJob, tokenize_piece
from musicdata.fsutil import atomic_write, sha256_file
from musicdata.isolate import IsolatedPool
from musicdata.stages.kit import (
    FanOut,
    Outcome,
    Summary,
    isolated_batches,
    record_outcomes,
    stage_run,
)
from musicdata.store import ShardRow, ShardWriter, next_indexes, reconcile, shard_dir
from musicdata.store.fs import check_shards, location
from musicdata.store.rows import fidelity_rows
from musicdata.store.vocab import record_vocab
from musicdata.workspace import Workspace

KEYS = ("tokenized", "quarantined", "skipped", "shards_written", "shards_adopted", "tokens")


def tokenize_batch(pool: IsolatedPool, jobs: Sequence[TokenizeJob]) -> list[dict[str, Any]]:
    """Tokenize pieces in isolated workers; one record per piece, sorted by piece id."""
    out = pool.map_records(
        jobs, lambda i: {"piece_id": jobs[i].piece_id, "encoding": jobs[i].encoding}
    )
    return sorted(out, key=lambda r: (r["piece_id"], r["encoding"]))


@dataclass(frozen=True)
class Steps:
    """Step functions; the Prefect flow swaps in task-wrapped versions."""

    tokenize: Callable[[IsolatedPool, Sequence[TokenizeJob]], list[dict[str, Any]]] = tokenize_batch
    # None: one pool here runs every batch; a fan-out (the flow's Dask one) runs each batch in a
    # pool on a worker. The shards are written here either way, in batch order.
    fan_out: FanOut | None = None


def tokenize_encoding(
    ws: Workspace, name: str, *, run_id: str, steps: Steps | None = None
) -> Summary:
    """Tokenize every piece not yet in this encoding's shards (resumable, idempotent)."""
    return tokenize_encodings(ws, [name], run_ids={name: run_id}, steps=steps)[0]


def tokenize_encodings(
    ws: Workspace,
    names: list[str],
    *,
    run_ids: dict[str, str],
    steps: Steps | None = None,
) -> list[Summary]:
    """Tokenize every piece into every named encoding through one shared worker pool."""
    encs = [prepare_encoding(ws, workspace_encoding(ws.config, n)) for n in names]
    with ExitStack() as stack:
        runs = [
            stack.enter_context(
                stage_run(
                    ws,
                    f"tokenize:{e.name}",
                    run_ids[e.name],
                    config_hash=e.config_hash,
                    keys=KEYS,
                    info={"encoding": e.name, "shard_dir": str(location(ws, shard_dir(e)))},
                    lock=i == 0,  # one workspace lock for the whole call
                )
            )
            for i, e in enumerate(encs)
        ]
        writers = _setup(ws, encs, runs)
        if ws.config.tokenize.fidelity:
            _measure_missing_fidelity(ws, writers, runs, steps or Steps())
        todo = [(w, s, row) for w, s in zip(writers, runs, strict=True) for row in w.todo]
        todo.sort(key=lambda item: item[2][0])  # piece-major: all encodings of a piece together
        if todo:
            _tokenize_all(ws, todo, steps or Steps())
        with ws.catalog.write() as con:
            for w, s in zip(writers, runs, strict=True):
                w.writer.close(con)
                s.add("shards_written", w.writer.shards_written)
                s.add("tokens", w.writer.tokens)
                record_vocab(con, w.enc)  # the `vocab` view: ids to token names, once per config
            refresh_shard_views(con, ws.root)  # analysts' in-place views cover the new shards
    return runs


@dataclass
class _Job:
    enc: Encoding
    writer: ShardWriter
    todo: list[tuple[str, str, str, str, str]]


def _setup(ws: Workspace, encs: list[Encoding], runs: list[Summary]) -> list[_Job]:
    """Register configs, reconcile crash leftovers, and list each encoding's pending pieces, in
    two short transactions (each costs a DuckDB open + checkpoint, ~30-50 ms)."""
    with ws.catalog.write() as con:
        registered = records.registered_encodings(con)
        known = {e.name: records.shard_paths(con, e.name, e.config_hash) for e in encs}
    cfg_paths = {e.name: _ensure_config(ws, e) for e in encs}
    for e, s in zip(encs, runs, strict=True):
        s.add("shards_adopted", reconcile(ws, e, s.run_id, known[e.name])[0])
        check_shards(ws, e)  # never write on top of a replaced shard
    jobs = []
    with ws.catalog.write() as con:
        for e in encs:
            if (e.name, e.config_hash) not in registered:
                records.upsert_encoding(con, _encoding_row(ws, e, cfg_paths[e.name]))
        total = records.count_rows(con, "pieces")
        for e, s in zip(encs, runs, strict=True):
            pieces = records.pieces_to_tokenize(
                con, f"tokenize:{e.name}", e.config_hash, ws.config.tokenize.include_near_duplicates
            )
            s.add("skipped", int(total) - len(pieces))
            paths = records.shard_paths(con, e.name, e.config_hash)
            writer = ShardWriter(
                ws, e, s.run_id, e.kind, next_indexes(paths), sub_tokens=e.sub_tokens
            )
            jobs.append(_Job(e, writer, pieces))
    return jobs


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
    ws: Workspace, todo: list[tuple[_Job, Summary, tuple[str, ...]]], steps: Steps
) -> None:
    by_name = {j.enc.name: (j, s) for j, s, _ in todo}
    split_of = {row[0]: row[1] for _, _, row in todo}
    sources = {row[0]: (row[3], row[4]) for _, _, row in todo}
    tcfg = ws.config.tokenize
    label = f"tokenize {', '.join(by_name)}" if len(by_name) < 4 else f"tokenize x{len(by_name)}"
    jobs = [
        TokenizeJob(pid, str(ws.abspath(blob)), j.enc.name, j.enc.params, tcfg.fidelity)
        for j, _, (pid, _, blob, _, _) in todo
    ]
    batches = isolated_batches(
        tokenize_piece,
        tcfg,
        jobs,
        label=label,
        batch_size=tcfg.batch_size,
        step=steps.tokenize,
        root=ws.root,
        fan_out=steps.fan_out,
    )
    for _, results in batches:
        bad: dict[str, list[Outcome]] = {}
        for r in results:
            job, summary = by_name[r["encoding"]]
            pid = r["piece_id"]
            if r["status"] == "ok":
                job.writer.add(split_of[pid], ShardRow(pid, r["tokens"]), r.get("fidelity"))
                summary.add("tokenized")
            else:
                sha, path = sources[pid]
                o = Outcome.quarantined(pid, r["reason"], r["detail"], path=path, sha256=sha)
                bad.setdefault(r["encoding"], []).append(o)
                summary.count([o])
        if bad:
            with ws.catalog.write() as con:
                for name, outcomes in bad.items():
                    job, s = by_name[name]
                    stage = f"tokenize:{name}"
                    record_outcomes(
                        con, stage, job.enc.config_hash, s.run_id, outcomes, detail_prefix=True
                    )


def _measure_missing_fidelity(
    ws: Workspace, jobs: list[_Job], runs: list[Summary], steps: Steps
) -> None:
    """Pieces in this config's shards without a fidelity row (their shard was adopted after a
    crash between its rename and the commit that records its fidelity): encode and decode them
    again in the isolated workers, with the worker's own measurement, and record only the
    fidelity (the shard is already there), so a crash ends with the rows a clean run has."""
    with ws.catalog.write() as con:
        missing = [
            (j, s, row)
            for j, s in zip(jobs, runs, strict=True)
            for row in records.pieces_without_fidelity(con, j.enc.name, j.enc.config_hash)
        ]
    if not missing:
        return
    by_name = {j.enc.name: (j, s) for j, s, _ in missing}
    tcfg = ws.config.tokenize
    work = [
        TokenizeJob(pid, str(ws.abspath(blob)), j.enc.name, j.enc.params, fidelity=True)
        for j, _, (pid, blob) in missing
    ]
    batches = isolated_batches(
        tokenize_piece,
        tcfg,
        work,
        label="fidelity of adopted shards",
        batch_size=tcfg.batch_size,
        step=steps.tokenize,
        root=ws.root,
        fan_out=steps.fan_out,
    )
    for _, results in batches:
        with ws.catalog.write() as con:
            for r in results:  # a piece that fails now keeps its shard row and gets no fidelity
                if r["status"] == "ok" and r.get("fidelity") is not None:
                    job, s = by_name[r["encoding"]]
                    fidelity_rows(con, job.enc, {r["piece_id"]: r["fidelity"]}, s.run_id)
                    s.add("fidelity_measured")


def _save_config(enc: Encoding, tmp: Path) -> None:
    written = enc.save_config(tmp.parent / (tmp.name + ".d"))
    written.replace(tmp)
    written.parent.rmdir()
