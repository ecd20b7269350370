"""The lineage graph: walk `core.lineage_edges` up (what fed this?) or down (what did this feed?).

Nodes are `<kind>:<id>` strings (file:<sha256>, piece:<id>, encoding:<name>@<hash>, shard:<id>,
train_run:<id>, checkpoint:<id>, eval:<id>, audio:<sha256>, transcription:<id>, ...). The walk is
one recursive SQL query over the edges alone, so new stages only have to write edges; a node
description comes from a per-kind lookup (`DESCRIBERS`, extendable with `register_describer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import pyarrow as pa

DEFAULT_MAX_DEPTH = 32

# Cycle safety: each recursive row carries the path it came by; an edge back onto that path is
# reported (so a cycle is visible) but not followed. The depth bound caps the walk regardless.
_WALK_SQL = """
WITH RECURSIVE walk(src_id, dst_id, stage, config_hash, code_version, run_id, depth, path,
                    closes_cycle) AS (
    SELECT e.src_id, e.dst_id, e.stage, e.config_hash, e.code_version, e.run_id, 1,
           [?, e.{next}], e.{next} = e.{this}
    FROM core.lineage_edges e WHERE e.{this} = ?
    UNION ALL
    SELECT e.src_id, e.dst_id, e.stage, e.config_hash, e.code_version, e.run_id, w.depth + 1,
           list_append(w.path, e.{next}), list_contains(w.path, e.{next})
    FROM walk w JOIN core.lineage_edges e ON e.{this} = w.{next}
    WHERE w.depth < ? AND NOT w.closes_cycle
)
SELECT src_id, dst_id, stage, config_hash, code_version, run_id, min(depth) AS depth
FROM walk GROUP BY ALL ORDER BY depth, src_id, dst_id
"""


@dataclass(frozen=True)
class Edge:
    src_id: str
    dst_id: str
    stage: str
    config_hash: str
    code_version: str
    run_id: str
    depth: int


@dataclass(frozen=True)
class Lineage:
    root: str
    direction: str  # upstream | downstream
    edges: list[Edge]
    descriptions: dict[str, str]

    def nodes(self) -> list[str]:
        """Every node reached, the root first, then in walk order (nearest first)."""
        seen = {self.root: None}
        for e in self.edges:
            seen.setdefault(e.src_id if self.direction == "upstream" else e.dst_id, None)
        return list(seen)

    def children(self) -> dict[str, list[Edge]]:
        """Node -> the edges leading one step further in the walk's direction."""
        out: dict[str, list[Edge]] = {}
        for e in self.edges:
            near = e.dst_id if self.direction == "upstream" else e.src_id
            out.setdefault(near, []).append(e)
        return out

    def to_dict(self) -> dict[str, Any]:
        depth = {self.root: 0}
        for e in self.edges:
            far = e.src_id if self.direction == "upstream" else e.dst_id
            depth[far] = min(depth.get(far, e.depth), e.depth)
        return {
            "root": self.root,
            "direction": self.direction,
            "nodes": [
                {
                    "id": n,
                    "kind": node_kind(n),
                    "depth": depth[n],
                    "description": self.descriptions.get(n, ""),
                }
                for n in self.nodes()
            ],
            "edges": [asdict(e) for e in self.edges],
        }


def node_kind(node_id: str) -> str:
    return node_id.split(":", 1)[0] if ":" in node_id else ""


def walk(
    con: duckdb.DuckDBPyConnection,
    node_id: str,
    direction: str = "upstream",
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Edge]:
    """All edges reachable from `node_id` against (upstream) or along (downstream) the arrows."""
    if direction not in ("upstream", "downstream"):
        msg = f"direction must be 'upstream' or 'downstream', not {direction!r}"
        raise ValueError(msg)
    this, nxt = ("dst_id", "src_id") if direction == "upstream" else ("src_id", "dst_id")
    sql = _WALK_SQL.format(this=this, next=nxt)
    rows = con.execute(sql, [node_id, node_id, max_depth]).fetchall()
    return [Edge(*r) for r in rows]


def lineage(
    con: duckdb.DuckDBPyConnection,
    node_id: str,
    direction: str = "upstream",
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    describe_limit: int = 200_000,
) -> Lineage:
    """Walk from a node and describe (up to `describe_limit`) the nodes reached."""
    edges = walk(con, node_id, direction, max_depth=max_depth)
    result = Lineage(node_id, direction, edges, {})
    nodes = result.nodes()[:describe_limit]
    return Lineage(node_id, direction, edges, describe_nodes(con, nodes))


def resolve(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """Turn what a user typed (a node id, a source path, a piece/shard/checkpoint id, a sha256)
    into a node id that has edges; raise ValueError saying what ids look like otherwise."""
    candidates = [ref]
    if ":" not in ref or node_kind(ref) not in DESCRIBERS:
        candidates += [
            f"{k}:{ref}" for k in ("piece", "shard", "checkpoint", "train_run", "eval", "file")
        ]
        rows = con.execute(
            "SELECT 'file:' || sha256 FROM core.files WHERE path = ? OR path LIKE ? LIMIT 1",
            [ref, f"%/{ref}"],
        ).fetchall()
        candidates += [r[0] for r in rows]
    for c in candidates:
        hit = con.execute(
            "SELECT 1 FROM core.lineage_edges WHERE src_id = ? OR dst_id = ? LIMIT 1", [c, c]
        ).fetchall()
        if hit:
            return c
    # A file quarantined at ingest has no edges but is still a node (its description says why).
    sha = ref.removeprefix("file:")
    rows = con.execute(
        "SELECT 'file:' || sha256 FROM core.quarantine WHERE sha256 IS NOT NULL "
        "AND (sha256 = ? OR path = ? OR path LIKE ?) LIMIT 1",
        [sha, ref, f"%/{ref}"],
    ).fetchall()
    if rows:
        return rows[0][0]
    msg = (
        f"no lineage edges touch {ref!r}; node ids look like file:<sha256>, piece:<piece_id>, "
        "shard:<encoding>:<hash>:<split>:<NNNNN>, encoding:<name>@<hash>, checkpoint:<id> "
        "(a source path or a bare piece id works too); list some with "
        '`musicdata catalog sql "SELECT DISTINCT dst_id FROM lineage LIMIT 20"`'
    )
    raise ValueError(msg)


# ---- node descriptions ------------------------------------------------------------------------

Describer = Callable[[duckdb.DuckDBPyConnection, list[str]], dict[str, str]]
DESCRIBERS: dict[str, Describer] = {}


def register_describer(kind: str, fn: Describer) -> None:
    """Let a stage that adds a node kind (audio, transcription, publication) describe it."""
    DESCRIBERS[kind] = fn


def _sql_describer(table: str, key_sql: str, text_sql: str) -> Describer:
    """Describe nodes by one query: `key_sql` rebuilds the node id, `text_sql` the text."""

    def describe(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, str]:
        con.register("_lineage_ids", pa.table({"id": pa.array(ids, pa.string())}))
        try:
            rows = con.execute(
                f"SELECT k.id, {text_sql} FROM _lineage_ids k JOIN "
                f"(SELECT {key_sql} AS id, * FROM core.{table}) t USING (id) GROUP BY k.id"
            ).fetchall()
        finally:
            con.unregister("_lineage_ids")
        return {i: t for i, t in rows if t}

    return describe


register_describer(
    "file",
    _sql_describer(
        "files",
        "'file:' || sha256",
        "any_value(t.path) || CASE WHEN count(*) > 1 THEN ' (+' || (count(*) - 1) || ' paths)' "
        "ELSE '' END || coalesce(' — quarantined: ' || (SELECT string_agg(DISTINCT q.stage || "
        "' ' || q.reason || ': ' || q.detail, '; ') FROM core.quarantine q "
        "WHERE q.sha256 = substr(k.id, 6)), '')",
    ),
)
register_describer(
    "piece",
    _sql_describer(
        "pieces",
        "'piece:' || piece_id",
        "any_value(t.split || ', ' || round(t.duration_s, 1) || ' s, ' || t.n_notes || ' notes, '"
        " || t.n_tracks || ' tracks' || coalesce(', near duplicate of ' || t.near_duplicate_of, "
        "''))",
    ),
)
register_describer(
    "encoding",
    _sql_describer(
        "encodings",
        "'encoding:' || encoding || '@' || config_hash",
        "any_value(t.kind || ', vocab ' || t.vocab_size || ', config ' || t.config_path)",
    ),
)
register_describer(
    "shard",
    _sql_describer(
        "shards",
        "'shard:' || shard_id",
        "any_value(t.path || ': ' || t.n_rows || ' pieces, ' || t.n_tokens || ' tokens')",
    ),
)
register_describer(
    "train_run",
    _sql_describer(
        "train_runs",
        "'train_run:' || train_run_id",
        "any_value(t.model || ' on ' || t.encoding || ' (' || t.device || '), ' || t.status)",
    ),
)
register_describer(
    "checkpoint",
    _sql_describer(
        "checkpoints",
        "'checkpoint:' || checkpoint_id",
        "any_value('step ' || t.step || ': ' || t.path)",
    ),
)
register_describer(
    "eval",
    _sql_describer(
        "eval_results",
        "'eval:' || eval_id",
        "string_agg(t.metric || '=' || round(t.value, 4), ', ' ORDER BY t.metric)",
    ),
)
register_describer(
    "audio",
    _sql_describer(
        "recordings",
        "'audio:' || sha256",
        "any_value(t.split || ', ' || t.format || ', ' || round(t.duration_s, 1) || ' s, ' || "
        "t.sample_rate || ' Hz' || CASE WHEN t.is_silent THEN ', silent' ELSE '' END)",
    ),
)


def _describe_sets(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, str]:
    """`set:<hash>` (a set of files an evaluation compared): how many files it holds."""
    con.register("_lineage_ids", pa.table({"id": pa.array(ids, pa.string())}))
    try:
        rows = con.execute(
            "SELECT k.id, count(*) FROM _lineage_ids k JOIN core.lineage_edges e "
            "ON e.dst_id = k.id AND e.src_id LIKE 'file:%' GROUP BY k.id"
        ).fetchall()
    finally:
        con.unregister("_lineage_ids")
    return {i: f"a set of {n} files" for i, n in rows}


register_describer("set", _describe_sets)


def describe_nodes(con: duckdb.DuckDBPyConnection, nodes: list[str]) -> dict[str, str]:
    """node id -> one line saying what it is (empty for kinds nobody describes yet)."""
    by_kind: dict[str, list[str]] = {}
    for n in nodes:
        by_kind.setdefault(node_kind(n), []).append(n)
    out: dict[str, str] = {}
    for kind, ids in by_kind.items():
        fn = DESCRIBERS.get(kind)
        if fn is not None:
            out.update(fn(con, ids))
    return out
