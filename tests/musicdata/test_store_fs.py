"""Shards at a URL ([shards] root) through fsspec: written, adopted, checked and deleted there,
with the same bytes and catalog rows as local shards (tested on fsspec's `memory://` and
`file://` filesystems; s3:// and gs:// are the same calls with s3fs/gcsfs installed)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from fsspec.core import url_to_fs

from musicdata.catalog.verify import ShardsDisagree
from musicdata.schemas.config import Config, IngestConfig, ShardConfig, TokenizeConfig
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.store import fs as store_fs
from musicdata.workspace import Workspace


def _ws(root: Path, shard_root: str = "") -> Workspace:
    cfg = Config(
        ingest=IngestConfig(workers=2, timeout_s=20),
        tokenize=TokenizeConfig(workers=2, fidelity=False),
        shards=ShardConfig(rows_per_shard=3, root=shard_root),
    )
    root.mkdir(parents=True)
    return Workspace(root=root.resolve(), config=cfg)


def _remote_files(url: str) -> dict[str, bytes]:
    fs, base = url_to_fs(url)
    return {p[len(base.rstrip("/")) + 1 :]: fs.cat_file(p) for p in sorted(fs.find(base))}


def _local_files(ws: Workspace) -> dict[str, bytes]:
    return {
        str(p.relative_to(ws.shards_dir)): p.read_bytes()
        for p in sorted(ws.shards_dir.rglob("*.parquet"))
    }


def _shard_rows(ws: Workspace) -> list[tuple]:
    return ws.catalog.query(
        "SELECT shard_id, split, path, n_rows, n_tokens, size_bytes, file_sha256 "
        "FROM core.shards ORDER BY path"
    ).to_pylist()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from tests.conftest import FIXTURES

    ws = _ws(tmp_path_factory.mktemp("local") / "home")
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encoding(ws, "remi", run_id="t")
    return ws


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_shards_at_a_url_match_local_shards(local: Workspace, tmp_path: Path, scheme: str) -> None:
    from tests.conftest import FIXTURES

    url = (
        f"memory://musicdata-test/{uuid.uuid4().hex}/shards"
        if scheme == "memory"
        else f"file://{tmp_path}/bucket/shards"
    )
    ws = _ws(tmp_path / "home", url)
    ingest_paths(ws, [FIXTURES], run_id="i")
    s = tokenize_encoding(ws, "remi", run_id="t")
    assert s.shards_written >= 2 and s.shard_dir.startswith(url)

    remote = _remote_files(url)
    parquet = {k: v for k, v in remote.items() if k.endswith(".parquet")}
    assert parquet == _local_files(local)  # same names, same bytes
    assert not (ws.shards_dir.exists() and any(ws.shards_dir.rglob("*.parquet")))
    assert _shard_rows(ws) == _shard_rows(local)  # relative paths: the catalog does not move

    again = tokenize_encoding(ws, "remi", run_id="t2")  # the check passes, nothing to do
    assert (again.tokenized, again.shards_written) == (0, 0)


def test_reconcile_adopts_and_deletes_at_the_url(local: Workspace, tmp_path: Path) -> None:
    """A crash left a whole shard without its catalog row and a temp upload: the next run
    adopts the shard (same bytes, recorded) and deletes the temp file, at the URL."""
    from tests.conftest import FIXTURES

    url = f"memory://musicdata-test/{uuid.uuid4().hex}/shards"
    ws = _ws(tmp_path / "home", url)
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encoding(ws, "remi", run_id="t")
    first = _shard_rows(ws)[0]
    with ws.catalog.write() as con:  # forget the first shard, as a crash before its commit
        con.execute("DELETE FROM core.shard_pieces WHERE shard_id = ?", [first["shard_id"]])
        con.execute("DELETE FROM core.stage_results WHERE output_id = ?", [first["shard_id"]])
        con.execute(
            "DELETE FROM core.lineage_edges WHERE dst_id = ?", [f"shard:{first['shard_id']}"]
        )
        con.execute("DELETE FROM core.shards WHERE shard_id = ?", [first["shard_id"]])
    split_dir = first["path"].rsplit("/", 1)[0]  # shards/remi/<config hash>/<split>
    fs, leftover = url_to_fs(f"{store_fs.location(ws, split_dir)}/.part-w0-00099.parquet.1.tmp")
    fs.pipe_file(leftover, b"half a shard")

    s = tokenize_encoding(ws, "remi", run_id="t2")
    assert (s.shards_adopted, s.tokenized) == (1, 0)
    assert not fs.exists(leftover)
    assert _shard_rows(ws) == _shard_rows(local)


def test_a_missing_remote_shard_stops_the_next_run(tmp_path: Path) -> None:
    from tests.conftest import FIXTURES

    url = f"memory://musicdata-test/{uuid.uuid4().hex}/shards"
    ws = _ws(tmp_path / "home", url)
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encoding(ws, "remi", run_id="t")
    gone = _shard_rows(ws)[0]["path"]
    fs, path = url_to_fs(str(store_fs.location(ws, gone)))
    fs.rm_file(path)
    with pytest.raises(ShardsDisagree, match="missing"):
        tokenize_encoding(ws, "remi", run_id="t2")


def test_a_local_root_stays_in_the_workspace(tmp_path: Path) -> None:
    ws = _ws(tmp_path / "home")
    assert store_fs.location(ws, "shards/remi/abc/train/part-w0-00000.parquet") == (
        ws.root / "shards/remi/abc/train/part-w0-00000.parquet"
    )
    bad = dataclasses.replace(ws, config=Config(shards=ShardConfig(root="/mnt/shards")))
    with pytest.raises(ValueError, match="not a URL"):
        store_fs.location(bad, "shards/x")
