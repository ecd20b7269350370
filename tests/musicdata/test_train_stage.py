"""The train, evaluate and generate stages on real shards: catalog rows, lineage from a raw MIDI
file to an eval row, idempotent evaluation, generated MIDI, clear refusals, and a run killed
with SIGKILL after a checkpoint that resumes to completion without duplicate rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from musicdata.catalog.lineage import walk
from musicdata.models import api
from musicdata.schemas.config import Config, IngestConfig, SplitConfig, TokenizeConfig
from musicdata.stages.evaluate import evaluate, generate
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.stages.train import train
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The real fixture MIDI, ingested with a split that leaves pieces in validation and test,
    tokenized into nb-pf and remi once for the module."""
    root = tmp_path_factory.mktemp("train") / "home"
    root.mkdir()
    cfg = Config(
        ingest=IngestConfig(workers=2, timeout_s=20),
        tokenize=TokenizeConfig(workers=2),
        split=SplitConfig(validation=0.3, test=0.3),
    )
    ws = Workspace(root=root.resolve(), config=cfg)
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encodings(ws, ["nb-pf", "remi"], run_ids={"nb-pf": "t1", "remi": "t2"})
    return ws


def _ids(ws: Workspace, sql: str) -> list:
    return [tuple(r.values()) for r in ws.catalog.query(sql).to_pylist()]


def test_train_evaluate_generate_with_lineage(shards: Workspace) -> None:
    ws = shards
    s = train(ws, api, model="nmt", encoding="nb-pf", preset="debug", steps=6)
    tid = s.train_run_id
    assert s.steps == 6 and s.checkpoints >= 1 and s.n_parameters > 0
    (run,) = ws.catalog.query(f"SELECT * FROM train_runs WHERE train_run_id = '{tid}'").to_pylist()
    assert run["status"] == "completed" and run["preset"] == "debug" and run["target_steps"] == 6
    losses = _ids(
        ws,
        f"SELECT step, value FROM train_metrics WHERE train_run_id = '{tid}' "
        "AND split = 'train' AND name = 'loss' ORDER BY step",
    )
    assert [st for st, _ in losses] == list(range(1, 7))
    assert all(v > 0 for _, v in losses)
    (ckpt,) = _ids(
        ws,
        f"SELECT checkpoint_id, path FROM checkpoints WHERE train_run_id = '{tid}' "
        "ORDER BY step DESC LIMIT 1",
    )
    assert (ws.root / ckpt[1]).is_file()

    e = evaluate(ws, api, tid, split="test")
    assert e.recorded == 1 and 0 < e.nll < 20
    assert {"nll/Pitch", "nll/Duration"} <= set(e.to_dict())
    assert evaluate(ws, api, tid, split="test").recorded == 0  # the same evaluation, once
    rows = _ids(ws, f"SELECT metric FROM eval_results WHERE eval_id = '{e.eval_id}'")
    assert ("bits_per_token",) in rows and ("nll/Pitch",) in rows

    # lineage: the eval row reaches back to a raw MIDI file through checkpoint, run and shard
    with ws.catalog.read() as con:
        up = {edge.src_id.split(":")[0] for edge in walk(con, f"eval:{e.eval_id}", "upstream")}
    assert {"checkpoint", "train_run", "shard", "piece", "file"} <= up

    # the report's training section draws the loss curve from train_metrics
    from musicdata.report import collect_sections

    (training,) = [sec for sec in collect_sections(ws) if sec.key == "training"]
    assert "curve-train-loss" in [f.name for f in training.figures]

    g = generate(ws, api, tid, n=2, max_new_tokens=24, seed=1)
    gens = ws.catalog.query("SELECT path, error, n_tokens FROM generations").to_pylist()
    assert len(gens) == 2 and g.generated + g.undecodable == 2
    for r in gens:
        assert r["n_tokens"] >= 2
        assert (r["path"] is None) == (r["error"] is not None)
        if r["path"]:
            assert (ws.root / r["path"]).read_bytes()[:4] == b"MThd"


def test_flat_baseline_on_remi_and_clear_refusals(shards: Workspace) -> None:
    s = train(shards, api, model="flat", encoding="remi", preset="debug", steps=2)
    again = train(shards, api, model="flat", encoding="remi", preset="debug", steps=2)
    assert s.steps == 2
    # the seed covers the initial weights too: the same config trains to the same losses
    losses = [
        _ids(
            shards,
            f"SELECT step, value FROM train_metrics WHERE train_run_id = '{r}' "
            "AND split = 'train' AND name = 'loss' ORDER BY step",
        )
        for r in (s.train_run_id, again.train_run_id)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    with pytest.raises(ValueError, match="nmt takes compound"):
        train(shards, api, model="nmt", encoding="remi", preset="debug", steps=2)
    with pytest.raises(ValueError, match="no encoding 'cp'"):
        train(shards, api, model="nmt", encoding="cp", preset="debug", steps=2)
    with pytest.raises(ValueError, match="no train run"):
        evaluate(shards, api, "train-nope")


def test_killed_run_resumes_without_duplicates(shards: Workspace) -> None:
    """SIGKILL right after the first checkpoint (the trainer's fault hook), then --resume."""
    env = {**os.environ, "MUSICDATA_FAULT": "train.after_checkpoint:1"}
    cmd = [
        sys.executable,
        "-m",
        "musicdata.cli",
        "--home",
        str(shards.root),
        "train",
        "-m",
        "nmt",
        "-e",
        "nb-pf",
        "--steps",
        "8",
        "--json",
    ]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (tid,) = _ids(shards, "SELECT train_run_id FROM train_runs WHERE status = 'running'")[0]
    done_before = _ids(shards, f"SELECT count(*) FROM checkpoints WHERE train_run_id = '{tid}'")
    assert done_before == [(1,)]
    env.pop("MUSICDATA_FAULT")
    out = subprocess.run(
        [*cmd[:5], "train", "--resume", tid, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["steps"] == 8
    rows = _ids(
        shards,
        f"SELECT step, count(*) FROM train_metrics WHERE train_run_id = '{tid}' "
        "AND split = 'train' AND name = 'loss' GROUP BY step ORDER BY step",
    )
    assert rows == [(st, 1) for st in range(1, 9)]
    (status,) = _ids(shards, f"SELECT status FROM train_runs WHERE train_run_id = '{tid}'")
    assert status == ("completed",)
