"""Fan-out on Dask: the ingest and tokenize flows on a local 2-worker Dask cluster give the same
catalog rows and byte-identical shard files as the single-process library run; workers only
return records (the flow process writes the catalog and the shards)."""

from __future__ import annotations

import pickle
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from musicdata.schemas.config import Config, OrchestrationConfig
from musicdata.stages.ingest import Steps as IngestSteps
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.kit import in_order, ordered_fan_out
from musicdata.stages.tokenize import Steps as TokenizeSteps
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES

# Small batches and shards, so the run has several batches in flight and several shards per split.
TOML = """
[ingest]
workers = 1
batch_size = 3
timeout_s = 20
[tokenize]
workers = 1
batch_size = 4
[shards]
rows_per_shard = 3
"""
DASK = '[orchestration]\ntask_runner = "dask"\ndask_workers = 2\n'
TABLES = (
    "files",
    "pieces",
    "quarantine",
    "stage_results",
    "encodings",
    "shards",
    "shard_pieces",
    "lineage_edges",
    "fidelity",
)
ENCODINGS = ["remi", "nb-pf"]  # a flat and a compound encoding
RUN_COLUMNS = {"run_id", "created_at", "first_seen_at"}  # differ between any two runs


def _workspace(root: Path, toml: str) -> Workspace:
    root.mkdir(parents=True)
    (root / "musicdata.toml").write_text(toml)
    return Workspace.open(root)


def catalog_rows(ws: Workspace) -> dict[str, list[tuple[Any, ...]]]:
    """Every table a pipeline writes, minus run ids and timestamps, rows sorted."""
    out = {}
    for table in TABLES:
        t = ws.catalog.query(f"SELECT * FROM core.{table}")
        cols = [c for c in t.column_names if c not in RUN_COLUMNS]
        rows = zip(*(t.column(c).to_pylist() for c in cols), strict=True)
        out[table] = sorted(rows, key=repr)
    return out


def shard_bytes(ws: Workspace) -> dict[str, bytes]:
    return {
        str(p.relative_to(ws.root)): p.read_bytes()
        for p in sorted(ws.shards_dir.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fanout") / "corpus"
    shutil.copytree(FIXTURES, dest)
    return dest


@pytest.fixture(scope="module")
def single(corpus: Path) -> Workspace:
    """The reference: the library called directly, batches one after another."""
    ws = _workspace(corpus.parent / "single", TOML)
    ingest_paths(ws, [corpus], run_id="single:ingest")
    tokenize_encodings(ws, ENCODINGS, run_ids={e: e for e in ENCODINGS})
    return ws


def test_the_library_on_a_dask_cluster_matches_the_single_process_run(
    corpus: Path, single: Workspace
) -> None:
    """The kit's fan-out hook with a plain Dask client (no Prefect): a notebook user's way."""
    from distributed import Client, LocalCluster

    ws = _workspace(corpus.parent / "lib-dask", TOML)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        fan = ordered_fan_out(lambda fn, args, _: client.submit(fn, *args, pure=False), 4)
        ingest_paths(ws, [corpus], run_id="d:ingest", steps=IngestSteps(fan_out=fan))
        steps = TokenizeSteps(fan_out=fan)
        tokenize_encodings(ws, ENCODINGS, run_ids={e: e for e in ENCODINGS}, steps=steps)
    assert shard_bytes(ws) == shard_bytes(single)
    assert catalog_rows(ws) == catalog_rows(single)


@pytest.mark.slow  # a Prefect server start and two Dask clusters: ~30 s on 2 busy cores
def test_dask_flows_match_the_single_process_run(corpus: Path, single: Workspace) -> None:
    from musicdata.flows.ingest_tokenize import ingest_flow, tokenize_flow

    home = corpus.parent / "dask"
    ws = _workspace(home, TOML + DASK)
    assert ws.config.orchestration.task_runner == "dask"
    ingested = ingest_flow([str(corpus)], home=str(home))
    tokenized = tokenize_flow(ENCODINGS, home=str(home))
    assert ingested["ok"] == single.catalog.query("SELECT count(*) FROM core.pieces")[0][0].as_py()
    assert all(s["shards_written"] >= 2 for s in tokenized)  # several shards per encoding

    files = shard_bytes(ws)
    assert files, "the flows wrote no shards"
    assert files == shard_bytes(single)  # same names, same bytes
    assert catalog_rows(ws) == catalog_rows(single)

    # The Prefect task runs of the batches ran on the Dask cluster's worker threads.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs()
    names = {r.name.rsplit("-", 1)[0] for r in runs}
    assert {"parse-midi-batch", "tokenize remi, nb-pf"} <= names


@pytest.mark.slow
def test_a_rerun_on_dask_does_no_work(corpus: Path, single: Workspace) -> None:
    from musicdata.flows.ingest_tokenize import tokenize_flow

    home = corpus.parent / "dask"
    if not home.exists():
        pytest.skip("needs the workspace of the test above")
    before = shard_bytes(Workspace.open(home))
    again = tokenize_flow(["remi"], home=str(home))
    assert again[0]["tokenized"] == 0
    assert shard_bytes(Workspace.open(home)) == before


def test_ordered_fan_out_yields_in_call_order_with_a_bounded_window() -> None:
    """Later calls finish first; results still come back in call order, and no more than
    `window` calls are ever in flight."""
    running = 0
    peak = 0
    guard = threading.Lock()

    def work(i: int) -> int:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02 * (5 - i % 5))
        with guard:
            running -= 1
        return i * i

    with ThreadPoolExecutor(4) as pool:
        fan = ordered_fan_out(lambda fn, args, _name: pool.submit(fn, *args), window=3)
        out = list(fan(work, [(i,) for i in range(10)], name="squares"))
    assert out == [i * i for i in range(10)]
    assert peak <= 3
    assert list(in_order(work, [(i,) for i in range(3)])) == [0, 1, 4]


def test_a_workspace_travels_to_workers_without_its_catalog(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "home")
    assert ws.catalog is ws.catalog  # the handle, cached in this process
    copy = pickle.loads(pickle.dumps(ws))  # noqa: S301 - our own bytes, as Dask ships them
    assert "catalog" not in copy.__dict__
    assert copy.root == ws.root and copy.config == ws.config


def test_orchestration_config_rejects_an_unknown_runner() -> None:
    with pytest.raises(ValueError, match="task_runner='ray'"):
        Config.from_dict({"orchestration": {"task_runner": "ray"}})
    assert OrchestrationConfig().task_runner == ""
