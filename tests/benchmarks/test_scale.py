"""Scale, CI-sized (`pytest -m long`): ingest + tokenize of real-derived corpora at two sizes,
each step in a fresh process, with peak memory that does not grow with the corpus (no step
holds the corpus in RAM). The full run is `python benchmarks/bench_scale.py --pieces
10000,100000` (docs/benchmarks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_scale


@pytest.mark.long
@pytest.mark.slow  # minutes: two corpora ingested and tokenized in fresh processes
def test_peak_memory_is_bounded_as_the_corpus_grows(tmp_path: Path) -> None:
    # shards of 100 rows: the tokenize driver's buffer (one shard per split) fills and flushes
    # inside both sizes, so a plateau is what bounded looks like here
    small, big = (bench_scale.run_size(tmp_path, n, rows_per_shard=100) for n in (300, 1500))
    for r in (small, big):
        assert r["ingest"]["summary"]["ok"] == r["pieces"]  # every real-derived file accepted
        assert r["tokenize"]["summary"]["tokenized"] == r["pieces"]
    for row in bench_scale.rows([small, big]):
        assert row["pass"], row
