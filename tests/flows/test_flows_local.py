"""The main job without a server (Prefect's ephemeral mode): ingest -> tokenize -> train ->
evaluate -> report in one call, with each stage's artifacts. The server, deployments and
automations are tests/infra/test_deployment.py's."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import BROKEN, REAL


@pytest.mark.slow  # an ephemeral Prefect server and a debug training run: ~1-2 min on 2 cores
def test_ingest_and_train_runs_every_stage_without_a_server(corpus: Path, tmp_path: Path) -> None:
    from prefect.artifacts import Artifact

    from musicdata.flows.train import ingest_and_train

    home = tmp_path / "home"
    out = ingest_and_train(
        paths=[str(corpus)], home=str(home), preset="debug", steps=6, report=True
    )
    assert out["ingest"]["ok"] == len(REAL) and out["ingest"]["quarantined"] == len(BROKEN)
    assert out["tokenize"][0]["tokenized"] == len(REAL) - 1  # not the near duplicate
    assert out["evaluate"]["nll"] > 0
    assert "training" in out["report"]["sections"]
    for key in ("ingest-summary", "tokenize-nb-pf-stats", "train-nmt-nb-pf-curve"):
        assert Artifact.get(key) is not None, key
    quarantine = Artifact.get("ingest-summary-table")
    assert quarantine is not None and "quarantined: unparseable" in str(quarantine.data)
    con = duckdb.connect(str(home / "catalog.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM eval_results").fetchone()[0] >= 1
    finally:
        con.close()
