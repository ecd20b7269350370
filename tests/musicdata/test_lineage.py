"""Lineage: recursive walks up and down (files -> pieces -> shards -> run -> checkpoint -> eval),
cycles, depth bounds, node descriptions, the CLI tree and JSON, and an old catalog migrated."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from musicdata.catalog import records
from musicdata.catalog.connection import migrate_to, now
from musicdata.catalog.lineage import lineage, resolve, walk
from musicdata.cli import app
from musicdata.schemas.catalog import latest_version
from musicdata.testing.synthetic import SyntheticEncoding, piece_id, write_synthetic_corpus
from musicdata.workspace import Workspace
from tests.conftest import make_workspace

runner = CliRunner()
N = 12  # pieces: 10 train, 1 validation, 1 test


def _edge(src: str, dst: str, stage: str) -> dict:
    return {
        "src_id": src,
        "dst_id": dst,
        "stage": stage,
        "config_hash": "h",
        "code_version": "test",
        "run_id": "run-1",
        "created_at": now(),
    }


@pytest.fixture
def trained(tmp_path: Path) -> Workspace:
    """A corpus whose train shards fed a training run, a checkpoint and an evaluation."""
    ws = make_workspace(tmp_path / "home")
    write_synthetic_corpus(ws, N, [SyntheticEncoding("remi", (100,))])
    t = now()
    with ws.catalog.write() as con:
        shards = [r[0] for r in con.execute("SELECT shard_id FROM core.shards").fetchall()]
        train = [s for s in shards if ":train:" in s]
        edges = [_edge(f"shard:{s}", "train_run:t1", "train") for s in train]
        edges += [
            _edge("train_run:t1", "checkpoint:c1", "train"),
            _edge("checkpoint:c1", "eval:e1", "evaluate"),
        ]
        records.insert_rows(con, "lineage_edges", edges)
        con.execute(
            "INSERT INTO core.train_runs (train_run_id, run_id, model, encoding, "
            "encoding_config_hash, config_json, device, status, started_at, finished_at) VALUES ("
            "'t1', 'run-1', 'nmt', 'remi', 'h', '{}', 'cpu', "
            "'completed', ?, ?)",
            [t, t],
        )
        con.execute(
            "INSERT INTO core.checkpoints VALUES ('c1', 't1', 100, 'ckpt/c1.safetensors', 'x', ?)",
            [t],
        )
        con.execute(
            "INSERT INTO core.eval_results VALUES ('e1', 'c1', 'val.nll', 'validation', 2.5, "
            "NULL, 'run-1', ?)",
            [t],
        )
    return ws


def _files_of(ws: Workspace, split: str) -> set[str]:
    rows = ws.catalog.query("SELECT sha256 FROM pieces WHERE split = ?", [split]).to_pylist()
    return {f"file:{r['sha256']}" for r in rows}


def test_upstream_from_an_evaluation_reaches_exactly_the_training_files(trained: Workspace) -> None:
    with trained.catalog.read() as con:
        graph = lineage(con, "eval:e1", "upstream")
    nodes = graph.nodes()
    assert nodes[:4] == ["eval:e1", "checkpoint:c1", "train_run:t1", nodes[3]]
    assert {n for n in nodes if n.startswith("file:")} == _files_of(trained, "train")
    assert sum(n.startswith("piece:") for n in nodes) == 10
    assert graph.descriptions["checkpoint:c1"] == "step 100: ckpt/c1.safetensors"
    assert graph.descriptions["eval:e1"] == "val.nll=2.5"
    assert "nmt on remi" in graph.descriptions["train_run:t1"]
    assert "/synthetic/" in graph.descriptions[next(n for n in nodes if n.startswith("file:"))]
    depth = {n["id"]: n["depth"] for n in graph.to_dict()["nodes"]}
    assert depth["eval:e1"] == 0 and depth["train_run:t1"] == 2
    assert all(depth[n] == 5 for n in nodes if n.startswith("file:"))


def test_downstream_from_a_file_reaches_the_evaluation(trained: Workspace) -> None:
    sha = sorted(_files_of(trained, "train"))[0]
    with trained.catalog.read() as con:
        nodes = lineage(con, sha, "downstream").nodes()
    assert nodes[0] == sha and nodes[-1] == "eval:e1"
    assert [n.split(":")[0] for n in nodes] == [
        "file",
        "piece",
        "shard",
        "train_run",
        "checkpoint",
        "eval",
    ]


def test_cycles_terminate_and_depth_bounds_the_walk(trained: Workspace) -> None:
    with trained.catalog.write() as con:
        records.insert_rows(con, "lineage_edges", [_edge("eval:e1", "train_run:t1", "bogus")])
        full = walk(con, "eval:e1", "upstream")
        one = walk(con, "eval:e1", "upstream", max_depth=1)
    pairs = [(e.src_id, e.dst_id) for e in full]
    assert len(pairs) == len(set(pairs))  # every edge once, despite the cycle
    assert ("eval:e1", "train_run:t1") in pairs
    assert [(e.src_id, e.dst_id) for e in one] == [("checkpoint:c1", "eval:e1")]


def test_resolve_paths_bare_ids_and_unknowns(trained: Workspace) -> None:
    pid = piece_id(0)
    with trained.catalog.read() as con:
        assert resolve(con, pid) == f"piece:{pid}"
        assert resolve(con, "/synthetic/0.mid").startswith("file:")
        assert resolve(con, "0.mid") == resolve(con, "/synthetic/0.mid")
        assert resolve(con, "c1") == "checkpoint:c1"
        with pytest.raises(ValueError, match="node ids look like file:<sha256>"):
            resolve(con, "no-such-thing")


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_tree_json_and_kind_filter(trained: Workspace) -> None:
    home = str(trained.root)
    data = _json(["--home", home, "catalog", "lineage", "checkpoint:c1", "--kind", "file"])
    assert {n["id"] for n in data["nodes"]} == _files_of(trained, "train")
    assert data["counts"] == {"encoding": 1, "file": 10, "piece": 10, "shard": 1, "train_run": 1}
    edges = _json(["--home", home, "catalog", "lineage", "checkpoint:c1"])["edges"]
    assert {"src_id", "dst_id", "stage", "config_hash", "code_version", "run_id"} <= set(edges[0])
    result = runner.invoke(app, ["--home", home, "catalog", "lineage", "eval:e1", "--width", "3"])
    assert result.exit_code == 0, result.output
    assert "checkpoint:c1  step 100" in result.output
    assert "… and 8 more" in result.output  # the train shard has 11 inputs: 3 shown
    assert "upstream: 1 checkpoint, 1 encoding, 10 file, 10 piece, 1 shard" in result.output
    bad = runner.invoke(app, ["--home", home, "catalog", "lineage", "nope"])
    assert bad.exit_code == 2 and "no lineage edges touch 'nope'" in bad.output


def test_quarantined_file_says_why(tmp_path: Path, corpus: Path) -> None:
    from musicdata.stages.ingest import ingest_paths

    ws = make_workspace(tmp_path / "home")
    ingest_paths(ws, [corpus / "truncated.mid", corpus / "folk_6_8.mid"], run_id="i")
    home = str(ws.root)
    data = _json(["--home", home, "catalog", "lineage", "truncated.mid"])
    (node,) = data["nodes"]
    assert node["kind"] == "file" and "quarantined: ingest unparseable" in node["description"]
    down = _json(["--home", home, "catalog", "lineage", "folk_6_8.mid", "--downstream"])
    assert down["counts"] == {"piece": 1}


def test_lineage_command_migrates_a_first_release_catalog(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    con = duckdb.connect(str(home / "catalog.duckdb"))
    migrate_to(con, 1)  # written by the first release: no training tables yet
    records.insert_rows(
        con,
        "lineage_edges",
        [_edge("file:abc", "piece:p1", "ingest"), _edge("piece:p1", "shard:s", "tok")],
    )
    con.close()
    data = _json(["--home", str(home), "catalog", "lineage", "shard:s"])
    assert [n["id"] for n in data["nodes"]] == ["shard:s", "piece:p1", "file:abc"]
    ws = Workspace.open(home)
    versions = ws.catalog.query("SELECT max(version) AS v FROM schema_version").to_pylist()
    assert versions == [{"v": latest_version()}]
