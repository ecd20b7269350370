"""Benchmark: the in-place token-statistics views vs the equivalent hand-written DuckDB
`read_parquet` query over the same shards, same connection, same run.

A synthetic corpus (default 100,000 pieces; a flat `remi`-like and a compound `nb-pf`-like
encoding with 6 sub-token fields) is written exactly as the pipeline writes one: Parquet shards
through musicdata.store plus the catalog rows. Each pair of queries must return the same rows
(asserted); the script prints the median wall time of each and the ratio view / raw. Target: the
views within 1.2x of the raw query. No thresholds enforced, no timed tests.

    python benchmarks/bench_stats_views.py [--pieces 100000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REMI = ("remi", (530,))
NB = (
    "nb-pf",
    (20, 90, 64, 32, 12, 40),
    ("metric", "beat", "pitch", "duration", "velocity", "instrument"),
)


def build(root: Path, pieces: int) -> tuple[float, dict[str, str]]:
    from musicdata.catalog.shard_views import refresh_shard_views
    from musicdata.testing.synthetic import SyntheticEncoding, write_synthetic_corpus
    from musicdata.workspace import Workspace

    ws = Workspace.open(root)
    t0 = time.perf_counter()
    reuse = (root / "catalog.duckdb").exists()  # --keep DIR from an earlier run
    encs = [
        SyntheticEncoding(REMI[0], REMI[1], unused=20),
        SyntheticEncoding(NB[0], NB[1], NB[2], length_scale=0.3, unused=3),
    ]
    if not reuse:
        write_synthetic_corpus(ws, pieces, encs, mean_length=200)
    with ws.catalog.write() as con:
        refresh_shard_views(con, ws.root)
    globs = {e.name: f"{ws.root}/shards/{e.name}/{e.hash}/*/*.parquet" for e in encs}
    return time.perf_counter() - t0, globs


def queries(globs: dict[str, str]) -> list[tuple[str, str, str]]:
    """(what, view query, equivalent raw read_parquet query), each pair with identical rows."""
    remi, nb = globs["remi"], globs["nb-pf"]
    stats_cols = (
        "count(*) AS pieces, sum(length)::BIGINT AS tokens, min(length) AS min_length, "
        "avg(length) AS mean_length, quantile_cont(length, 0.5) AS p50_length, "
        "quantile_cont(length, 0.9) AS p90_length, quantile_cont(length, 0.95) AS p95_length, "
        "quantile_cont(length, 0.99) AS p99_length, max(length) AS max_length"
    )
    fields = "['" + "', '".join(NB[2]) + "']"
    return [
        (
            "length percentiles, both encodings",
            "SELECT * FROM token_length_stats ORDER BY ALL",
            f"SELECT 'remi' AS encoding, config_hash, split, {stats_cols} "
            f"FROM read_parquet('{remi}') GROUP BY ALL UNION ALL "
            f"SELECT 'nb-pf', config_hash, split, {stats_cols} "
            f"FROM read_parquet('{nb}') GROUP BY ALL ORDER BY ALL",
        ),
        (
            "token frequencies, remi",
            "SELECT * FROM token_frequencies WHERE encoding = 'remi' ORDER BY ALL",
            "SELECT 'remi' AS encoding, config_hash, split, 0 AS field_index, 'token' AS field, "
            "token::INTEGER AS token, count(*) AS count FROM (SELECT config_hash, split, "
            f"unnest(tokens) AS token FROM read_parquet('{remi}')) GROUP BY ALL ORDER BY ALL",
        ),
        (
            "sub-token frequencies, nb-pf (6 fields)",
            "SELECT * FROM token_frequencies WHERE encoding = 'nb-pf' ORDER BY ALL",
            "SELECT 'nb-pf' AS encoding, config_hash, split, field_index, field, "
            "token::INTEGER AS token, count(*) AS count FROM (SELECT config_hash, split, "
            f"unnest(range(1, 7)) AS field_index, unnest({fields}) AS field, "
            "unnest(step) AS token FROM (SELECT config_hash, split, unnest(tokens) AS step "
            f"FROM read_parquet('{nb}'))) GROUP BY ALL ORDER BY ALL",
        ),
        (
            "vocabulary coverage, remi",
            "SELECT seen, never_seen FROM vocab_coverage WHERE encoding = 'remi'",
            f"SELECT count(DISTINCT t) AS seen, {REMI[1][0]} - count(DISTINCT t) AS never_seen "
            f"FROM (SELECT unnest(tokens) AS t FROM read_parquet('{remi}'))",
        ),
        (
            "per-piece lengths joined to pieces, remi",
            "SELECT split, avg(tokens_per_note) AS tpn, count(*) AS n FROM piece_lengths "
            "WHERE encoding = 'remi' GROUP BY split ORDER BY split",
            "SELECT l.split, avg(l.length / p.n_notes) AS tpn, count(*) AS n "
            f"FROM read_parquet('{remi}') l JOIN core.pieces p USING (piece_id) "
            "GROUP BY l.split ORDER BY l.split",
        ),
    ]


def timed(con, sql: str) -> tuple[float, list]:
    t0 = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieces", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--keep", type=Path, help="Write the corpus here and keep it (reused when it exists)."
    )
    args = ap.parse_args()
    import duckdb

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-stats-"))
    try:
        build_s, globs = build(root, args.pieces)
        con = duckdb.connect(str(root / "catalog.duckdb"), read_only=True)
        n_tokens = con.execute(
            "SELECT encoding, sum(length)::BIGINT FROM token_lengths GROUP BY ALL ORDER BY 1"
        ).fetchall()
        size = sum(p.stat().st_size for p in (root / "shards").rglob("*.parquet"))
        n_pieces = con.execute("SELECT count(*) FROM pieces").fetchall()[0][0]
        print(
            f"corpus: {n_pieces:,} pieces, "
            + ", ".join(f"{e} {n:,} steps" for e, n in n_tokens)
            + f"; shards {size / 1e6:.1f} MB; "
            + ("reused" if build_s < 1 else f"built in {build_s:.1f} s")
        )
        print(f"median of {args.repeat} runs after one warm-up each, alternating view/raw\n")
        print("| query | view (s) | raw read_parquet (s) | view / raw |")
        print("|---|---|---|---|")
        ratios = []
        for what, view_sql, raw_sql in queries(globs):
            _, view_rows = timed(con, view_sql)
            _, raw_rows = timed(con, raw_sql)
            assert _same(view_rows, raw_rows), f"{what}: view and raw query disagree"
            tv, tr = [], []
            for _ in range(args.repeat):
                tv.append(timed(con, view_sql)[0])
                tr.append(timed(con, raw_sql)[0])
            v, r = statistics.median(tv), statistics.median(tr)
            ratios.append(v / r)
            print(f"| {what} | {v:.3f} | {r:.3f} | {v / r:.2f}x |")
        print(f"\nworst ratio {max(ratios):.2f}x (target <= 1.2x)")
        con.close()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) or isinstance(y, float):
                if abs(float(x) - float(y)) > 1e-9 * max(1.0, abs(float(x))):
                    return False
            elif x != y:
                return False
    return True


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
