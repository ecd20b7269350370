"""SQL of the train, evaluate and generate stages: runs, per-step metrics, checkpoints, NLL
results and generated pieces, with their lineage. Rows come from the stage (the one writer);
values always go in as parameters."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from musicdata import __version__
from musicdata.catalog import records
from musicdata.catalog.connection import now


def edge(src: str, dst: str, stage: str, config_hash: str, run_id: str) -> dict[str, Any]:
    return {
        "src_id": src,
        "dst_id": dst,
        "stage": stage,
        "config_hash": config_hash,
        "code_version": __version__,
        "run_id": run_id,
        "created_at": now(),
    }


def start_train_run(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], shard_ids: list[str]
) -> None:
    """Insert (or, on resume, mark running again) a train run and its lineage from the shards."""
    tid = row["train_run_id"]
    exists = con.execute("SELECT 1 FROM core.train_runs WHERE train_run_id = ?", [tid]).fetchall()
    if exists:
        con.execute(
            "UPDATE core.train_runs SET status = 'running', run_id = ?, finished_at = NULL "
            "WHERE train_run_id = ?",
            [row["run_id"], tid],
        )
    else:
        records.insert_rows(con, "train_runs", [{**row, "status": "running", "started_at": now()}])
    edges = [
        edge(f"shard:{s}", f"train_run:{tid}", "train", row["manifest_hash"], row["run_id"])
        for s in shard_ids
    ]
    records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)


def finish_train_run(
    con: duckdb.DuckDBPyConnection, train_run_id: str, status: str, summary: dict[str, Any]
) -> None:
    con.execute(
        "UPDATE core.train_runs SET status = ?, finished_at = ?, summary_json = ? "
        "WHERE train_run_id = ?",
        [status, now(), json.dumps(summary, sort_keys=True, default=str), train_run_id],
    )


def record_metrics(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Per-step metrics; a resumed run re-yielding a step it already logged adds nothing."""
    records.insert_rows(con, "train_metrics", rows, on_conflict_nothing=True)


def record_checkpoint(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], manifest_hash: str, run_id: str
) -> None:
    records.insert_rows(con, "checkpoints", [row], on_conflict_nothing=True)
    e = edge(
        f"train_run:{row['train_run_id']}",
        f"checkpoint:{row['checkpoint_id']}",
        "train",
        manifest_hash,
        run_id,
    )
    records.insert_rows(con, "lineage_edges", [e], on_conflict_nothing=True)


def train_run(con: duckdb.DuckDBPyConnection, train_run_id: str) -> dict[str, Any] | None:
    cur = con.execute("SELECT * FROM core.train_runs WHERE train_run_id = ?", [train_run_id])
    cols = [d[0] for d in cur.description or []]
    rows = cur.fetchall()
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def train_run_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT train_run_id FROM core.train_runs ORDER BY started_at DESC"
        ).fetchall()
    ]


def checkpoints(con: duckdb.DuckDBPyConnection, train_run_id: str) -> list[dict[str, Any]]:
    """A run's checkpoints, newest step first."""
    cur = con.execute(
        "SELECT checkpoint_id, step, path, file_sha256 FROM core.checkpoints "
        "WHERE train_run_id = ? ORDER BY step DESC",
        [train_run_id],
    )
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def record_eval(
    con: duckdb.DuckDBPyConnection,
    eval_id: str,
    checkpoint_id: str,
    split: str,
    values: dict[str, float],
    detail: dict[str, Any],
    run_id: str,
) -> bool:
    """NLL results of one checkpoint on one split; False if this evaluation was recorded before."""
    if con.execute("SELECT 1 FROM core.eval_results WHERE eval_id = ?", [eval_id]).fetchall():
        return False
    t = now()
    rows = [
        {
            "eval_id": eval_id,
            "checkpoint_id": checkpoint_id,
            "metric": metric,
            "split": split,
            "value": float(value),
            "detail_json": json.dumps(detail, sort_keys=True),
            "run_id": run_id,
            "created_at": t,
        }
        for metric, value in values.items()
    ]
    records.insert_rows(con, "eval_results", rows)
    e = edge(f"checkpoint:{checkpoint_id}", f"eval:{eval_id}", "evaluate", eval_id, run_id)
    records.insert_rows(con, "lineage_edges", [e], on_conflict_nothing=True)
    return True


def record_generations(
    con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], run_id: str
) -> None:
    records.insert_rows(con, "generations", rows, on_conflict_nothing=True)
    edges = [
        edge(
            f"checkpoint:{r['checkpoint_id']}",
            f"generated:{r['generation_id']}",
            "generate",
            r["checkpoint_id"],
            run_id,
        )
        for r in rows
    ]
    records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)


def curve(con: duckdb.DuckDBPyConnection, train_run_id: str) -> list[dict[str, Any]]:
    """A train run's loss/NLL per step and split (its training curve as rows)."""
    cur = con.execute(
        "SELECT step, split, name, value FROM core.train_metrics WHERE train_run_id = ? "
        "ORDER BY step, split, name",
        [train_run_id],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
