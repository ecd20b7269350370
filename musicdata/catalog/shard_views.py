"""In-place views over the Parquet token shards: lengths, token frequencies, vocabulary coverage.

The shards are never copied into the catalog: each view is a `read_parquet` over the shard files,
so a query always sees exactly the shards on disk. Stored views need absolute paths (DuckDB
resolves relative ones against the reader's working directory), and the shard set changes as
encodings are tokenized, so `refresh_shard_views` (re)creates them from `core.shards` /
`core.encodings`; every analytics command calls it, and the tokenize stage calls it after writing.

Views (names are part of the analyst contract, see docs/analyst.md):
- `tokens.<encoding>`: one per encoding (`-` becomes `_`), the shard rows with an `encoding` column.
- `token_lengths`, `token_length_stats`, `token_length_histogram`, `piece_lengths`,
  `length_vs_remi`, `token_frequencies`, `vocab_fields`, `vocab_coverage`, `unused_tokens`,
  `shard_views` (what was created from which files, and when).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from musicdata.catalog.connection import now, sql_str

SCHEMA = "tokens"
BASELINE = "remi"  # compression is reported relative to this encoding's lengths
DERIVED_VIEWS = (
    "token_lengths",
    "token_length_stats",
    "token_length_histogram",
    "piece_lengths",
    "length_vs_remi",
    "token_frequencies",
    "vocab_fields",
    "vocab_coverage",
    "unused_tokens",
    "shard_views",
)
_NAME_RE = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True)
class ShardSet:
    """The shards of one encoding whose configs share a column type (one `tokens.<x>` view)."""

    view: str  # schema-qualified, e.g. tokens.nb_pf
    encoding: str
    config_hashes: tuple[str, ...]
    kind: str  # flat | compound
    n_fields: int  # 1 for flat
    fields: tuple[str, ...]  # sub-token names (compound) or ("token",)
    vocab_sizes: dict[str, tuple[int | None, ...]]  # config_hash -> per-field vocab size
    globs: tuple[str, ...]  # absolute


def view_name(encoding: str, suffix: str = "") -> str:
    base = _NAME_RE.sub("_", encoding.lower()) + suffix
    if not base or base[0].isdigit():
        base = "e_" + base
    return f"{SCHEMA}.{base}"


def _parquet_layout(path: Path) -> tuple[int, tuple[str, ...] | None] | None:
    """(sub-tokens per step, sub-token names from the file's metadata) of one shard; None for a
    shard kind these views do not cover (no `tokens list<...>` column, e.g. audio codes)."""
    schema = pq.read_schema(path)
    if "tokens" not in schema.names or not pa.types.is_list(schema.field("tokens").type):
        return None
    item = schema.field("tokens").type.value_type
    n_fields = item.list_size if pa.types.is_fixed_size_list(item) else 1
    raw = (schema.metadata or {}).get(b"musicdata.sub_tokens")
    names = tuple(n.strip() for n in raw.decode().split(",")) if raw else None
    return n_fields, names


def discover(con: duckdb.DuckDBPyConnection, root: Path) -> list[ShardSet]:
    """The shard sets the catalog knows and whose files exist under `root`."""
    rows = con.execute(
        "SELECT e.encoding, e.config_hash, e.kind, e.vocab_size, e.sub_tokens, "
        "e.sub_vocab_sizes, e.created_at, "
        "list(DISTINCT s.path ORDER BY s.path) "
        "FROM core.encodings e JOIN core.shards s USING (encoding, config_hash) "
        "GROUP BY ALL ORDER BY e.encoding, e.created_at DESC, e.config_hash"
    ).fetchall()
    groups: dict[tuple, list] = defaultdict(list)
    order: list[tuple] = []
    for enc, chash, kind, vocab, sub_tokens, sub_sizes, _created, paths in rows:
        files = [root / p for p in paths if (root / p).exists()]
        if not files:
            continue
        layout = _parquet_layout(files[0])
        if layout is None:
            continue
        n_fields, meta_names = layout
        fields = tuple(sub_tokens or meta_names or ())
        if kind == "flat":
            fields, sizes = ("token",), (vocab,)
        else:
            fields = fields if len(fields) == n_fields else tuple(f"f{i}" for i in range(n_fields))
            sizes = (
                tuple(sub_sizes) if sub_sizes and len(sub_sizes) == n_fields else (None,) * n_fields
            )
        # Shards live at <root>/shards/<enc>/<hash>/<split>/part-NNNNN.parquet.
        hash_dirs = sorted({str(f.parent.parent) for f in files})
        key = (enc, kind, n_fields, fields)
        if key not in groups:
            order.append(key)
        groups[key].append((chash, sizes, [f"{d}/*/*.parquet" for d in hash_dirs]))
    sets, seen_enc = [], set()
    for key in order:
        enc, kind, n_fields, fields = key
        members = groups[key]
        # The newest config of an encoding gets the plain name; an incompatible older layout
        # (another sub-token count) gets its config hash appended.
        suffix = "" if enc not in seen_enc else "_" + members[0][0][:8]
        seen_enc.add(enc)
        sets.append(
            ShardSet(
                view=view_name(enc, suffix),
                encoding=enc,
                config_hashes=tuple(m[0] for m in members),
                kind=kind,
                n_fields=n_fields,
                fields=fields,
                vocab_sizes={m[0]: tuple(m[1]) for m in members},
                globs=tuple(g for m in members for g in m[2]),
            )
        )
    return sets


def _raw_view_sql(s: ShardSet) -> str:
    files = ", ".join(sql_str(g) for g in s.globs)
    return (
        f"CREATE OR REPLACE VIEW {s.view} AS SELECT {sql_str(s.encoding)} AS encoding, "
        f"config_hash, split, piece_id, length, tokens FROM read_parquet([{files}])"
    )


def _union(parts: list[str], empty: str) -> str:
    return "\nUNION ALL\n".join(parts) if parts else empty


def _ids_sql(s: ShardSet) -> tuple[str, str]:
    """(the set's token ids unnested, its field key columns). Literal columns (encoding, field
    names) are added after aggregation, so grouping runs on the same keys as a hand-written
    query would (measured in benchmarks/bench_stats_views.py)."""
    if s.kind == "flat":
        return (
            f"SELECT config_hash, split, unnest(tokens)::INTEGER AS token FROM {s.view}",
            "",
        )
    return (
        f"SELECT config_hash, split, unnest(range(1, {s.n_fields + 1})) AS field_index, "
        f"unnest(step)::INTEGER AS token FROM (SELECT config_hash, split, unnest(tokens) AS step "
        f"FROM {s.view})",
        "field_index, ",
    )


def _field_cols(s: ShardSet) -> str:
    if s.kind == "flat":
        return "0 AS field_index, 'token' AS field"
    names = "[" + ", ".join(sql_str(f) for f in s.fields) + "]"
    return f"field_index, {names}[field_index] AS field"


def _frequency_sql(s: ShardSet) -> str:
    """Counts per token id; compound steps are unnested into (field, sub-token) pairs."""
    ids, key = _ids_sql(s)
    return (
        f"SELECT {sql_str(s.encoding)} AS encoding, config_hash, split, {_field_cols(s)}, "
        f"token, count FROM (SELECT config_hash, split, {key}token, count(*) AS count "
        f"FROM ({ids}) GROUP BY ALL)"
    )


def _seen_sql(s: ShardSet) -> str:
    """Distinct ids per vocabulary, straight from the shards. A set with one config (the usual
    case) aggregates without grouping, the fastest plan DuckDB has for count(DISTINCT)."""
    ids, key = _ids_sql(s)
    if len(s.config_hashes) == 1:
        inner = (
            f"SELECT {sql_str(s.config_hashes[0])} AS config_hash, {key}"
            f"count(DISTINCT token) AS seen FROM ({ids})" + (" GROUP BY ALL" if key else "")
        )
    else:
        inner = f"SELECT config_hash, {key}count(DISTINCT token) AS seen FROM ({ids}) GROUP BY ALL"
    return (
        f"SELECT {sql_str(s.encoding)} AS encoding, config_hash, {_field_cols(s)}, seen "
        f"FROM ({inner})"
    )


def _vocab_rows(sets: list[ShardSet]) -> list[str]:
    rows = []
    for s in sets:
        for chash in s.config_hashes:
            for i, (field, size) in enumerate(zip(s.fields, s.vocab_sizes[chash], strict=True)):
                index = 0 if s.kind == "flat" else i + 1
                size_sql = "NULL" if size is None else str(int(size))
                rows.append(
                    f"({sql_str(s.encoding)}, {sql_str(chash)}, {sql_str(s.kind)}, {index}, "
                    f"{sql_str(field)}, {size_sql}::INTEGER)"
                )
    return rows


def derived_views_sql(sets: list[ShardSet], root: Path, baseline: str | None) -> list[str]:
    """CREATE VIEW statements of the analyst views, in dependency order."""
    lengths = _union(
        [f"SELECT encoding, config_hash, split, piece_id, length FROM {s.view}" for s in sets],
        "SELECT NULL::VARCHAR AS encoding, NULL::VARCHAR AS config_hash, NULL::VARCHAR AS split,"
        " NULL::VARCHAR AS piece_id, NULL::INTEGER AS length WHERE false",
    )
    freqs = _union(
        [_frequency_sql(s) for s in sets],
        "SELECT NULL::VARCHAR AS encoding, NULL::VARCHAR AS config_hash, NULL::VARCHAR AS split,"
        " NULL::INTEGER AS field_index, NULL::VARCHAR AS field, NULL::INTEGER AS token,"
        " NULL::BIGINT AS count WHERE false",
    )
    seen = _union(
        [_seen_sql(s) for s in sets],
        "SELECT NULL::VARCHAR AS encoding, NULL::VARCHAR AS config_hash, NULL::INTEGER AS "
        "field_index, NULL::VARCHAR AS field, NULL::BIGINT AS seen WHERE false",
    )
    vocab = _vocab_rows(sets)
    vocab_body = (
        "SELECT * FROM (VALUES " + ", ".join(vocab) + ") "
        "v(encoding, config_hash, kind, field_index, field, vocab_size)"
        if vocab
        else "SELECT NULL::VARCHAR AS encoding, NULL::VARCHAR AS config_hash, NULL::VARCHAR AS "
        "kind, NULL::INTEGER AS field_index, NULL::VARCHAR AS field, NULL::INTEGER AS vocab_size "
        "WHERE false"
    )
    meta = [
        f"({sql_str(s.view)}, {sql_str(s.encoding)}, "
        f"[{', '.join(sql_str(h) for h in s.config_hashes)}]::VARCHAR[], {sql_str(s.kind)}, "
        f"{s.n_fields}, [{', '.join(sql_str(f) for f in s.fields)}]::VARCHAR[], "
        f"[{', '.join(sql_str(g) for g in s.globs)}]::VARCHAR[])"
        for s in sets
    ]
    meta_body = (
        "SELECT *, " + sql_str(str(root)) + " AS root, "
        f"TIMESTAMP {sql_str(now().isoformat(sep=' '))} AS refreshed_at FROM (VALUES "
        + ", ".join(meta)
        + ") m(view_name, encoding, config_hashes, kind, n_fields, fields, globs)"
        if meta
        else "SELECT NULL::VARCHAR AS view_name, NULL::VARCHAR AS encoding, NULL::VARCHAR[] AS "
        "config_hashes, NULL::VARCHAR AS kind, NULL::INTEGER AS n_fields, NULL::VARCHAR[] AS "
        "fields, NULL::VARCHAR[] AS globs, NULL::VARCHAR AS root, NULL::TIMESTAMP AS "
        "refreshed_at WHERE false"
    )
    base = sql_str(baseline) if baseline else "NULL"
    return [
        f"CREATE OR REPLACE VIEW main.token_lengths AS {lengths}",
        "CREATE OR REPLACE VIEW main.token_length_stats AS "
        "SELECT encoding, config_hash, split, count(*) AS pieces, sum(length)::BIGINT AS tokens, "
        "min(length) AS min_length, avg(length) AS mean_length, "
        "quantile_cont(length, 0.5) AS p50_length, quantile_cont(length, 0.9) AS p90_length, "
        "quantile_cont(length, 0.95) AS p95_length, quantile_cont(length, 0.99) AS p99_length, "
        "max(length) AS max_length FROM main.token_lengths GROUP BY ALL",
        # Power-of-two buckets: sequence lengths span 3-4 orders of magnitude.
        "CREATE OR REPLACE VIEW main.token_length_histogram AS "
        "SELECT encoding, config_hash, split, "
        "(2 ** floor(log2(greatest(length, 1))))::BIGINT AS bucket_min, "
        "(2 ** (floor(log2(greatest(length, 1))) + 1))::BIGINT - 1 AS bucket_max, "
        "count(*) AS pieces FROM main.token_lengths GROUP BY ALL",
        "CREATE OR REPLACE VIEW main.piece_lengths AS "
        "SELECT l.encoding, l.config_hash, l.split, l.piece_id, l.length, p.duration_s, "
        "p.n_notes, p.n_tracks, p.tempo_bpm, p.time_signatures, p.near_duplicate_of, "
        "l.length / nullif(p.n_notes, 0) AS tokens_per_note, "
        "l.length / nullif(p.duration_s, 0) AS tokens_per_second "
        "FROM main.token_lengths l JOIN core.pieces p USING (piece_id)",
        # Compression relative to the baseline encoding's newest config, on shared pieces.
        "CREATE OR REPLACE VIEW main.length_vs_remi AS "
        "WITH base AS (SELECT piece_id, length AS base_length FROM main.token_lengths "
        f"WHERE encoding = {base} AND config_hash = (SELECT config_hashes[1] FROM "
        f"main.shard_views WHERE encoding = {base} ORDER BY view_name LIMIT 1)) "
        "SELECT l.encoding, l.config_hash, l.split, count(*) AS pieces, "
        "sum(l.length)::BIGINT AS tokens, sum(b.base_length)::BIGINT AS baseline_tokens, "
        "sum(l.length) / sum(b.base_length) AS length_ratio, "
        "median(l.length / b.base_length) AS median_piece_ratio "
        "FROM main.token_lengths l JOIN base b USING (piece_id) GROUP BY ALL",
        f"CREATE OR REPLACE VIEW main.token_frequencies AS {freqs}",
        f"CREATE OR REPLACE VIEW main.vocab_fields AS {vocab_body}",
        "CREATE OR REPLACE VIEW main.vocab_coverage AS "
        f"WITH seen AS ({seen}) "
        "SELECT v.encoding, v.config_hash, v.kind, v.field_index, v.field, v.vocab_size, "
        "coalesce(s.seen, 0) AS seen, v.vocab_size - coalesce(s.seen, 0) AS never_seen, "
        "coalesce(s.seen, 0) / v.vocab_size AS coverage "
        "FROM main.vocab_fields v LEFT JOIN seen s USING (encoding, config_hash, field_index)",
        "CREATE OR REPLACE VIEW main.unused_tokens AS "
        "SELECT v.encoding, v.config_hash, v.field_index, v.field, r.token::INTEGER AS token "
        "FROM main.vocab_fields v, range(v.vocab_size) r(token) "
        "WHERE v.vocab_size IS NOT NULL AND NOT EXISTS (SELECT 1 FROM main.token_frequencies f "
        "WHERE f.encoding = v.encoding AND f.config_hash = v.config_hash "
        "AND f.field_index = v.field_index AND f.token = r.token)",
        f"CREATE OR REPLACE VIEW main.shard_views AS {meta_body}",
    ]


def refresh_shard_views(con: duckdb.DuckDBPyConnection, root: Path) -> list[str]:
    """(Re)create the in-place shard views for the workspace at `root`; returns their names.

    Call it inside a write transaction (`with ws.catalog.write() as con:`) after shards were
    written or when the workspace folder moved. Cheap: reads one Parquet footer per config.
    """
    root = Path(root).resolve()
    sets = discover(con, root)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    wanted = {s.view for s in sets}
    stale = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [SCHEMA]
    ).fetchall()
    # Derived views reference the per-encoding ones: drop them first, recreate them last.
    for name in DERIVED_VIEWS:
        con.execute(f"DROP VIEW IF EXISTS main.{name}")
    for (name,) in stale:
        if f"{SCHEMA}.{name}" not in wanted:
            con.execute(f'DROP VIEW IF EXISTS {SCHEMA}."{name}"')
    for s in sets:
        con.execute(_raw_view_sql(s))
    baseline = BASELINE if any(s.encoding == BASELINE for s in sets) else None
    statements = derived_views_sql(sets, root, baseline)
    # shard_views is read by length_vs_remi's body: create it first.
    con.execute(statements[-1])
    for sql in statements[:-1]:
        con.execute(sql)
    return [s.view for s in sets] + [f"main.{n}" for n in DERIVED_VIEWS]


def shard_views_root(con: duckdb.DuckDBPyConnection) -> str | None:
    """The workspace root the stored views point at (None when they were never created)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'main' "
        "AND view_name = 'shard_views'"
    ).fetchall()[0][0]
    if not exists:
        return None
    rows = con.execute("SELECT any_value(root) FROM main.shard_views").fetchall()
    return rows[0][0]
