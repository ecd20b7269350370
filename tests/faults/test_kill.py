"""Kill -9 anywhere (issue 18): a run SIGKILLed at a fault point (schemas/faults.py) mid-shard,
between a shard's rename and its catalog commit, inside a catalog transaction, inside a config
save, mid-publish and mid-checkpoint; the rerun completes and the shard tree and catalog equal
a clean run's (file hashes, every row), with no duplicates, no orphans and no temp files.

The default suite runs one chain per stage (each kill recovered by the next run, the last run
clean); `pytest -m long` kills every point at several counts (seeds), each in a fresh copy,
through the real CLI."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicdata.catalog.verify import verify
from musicdata.publish import stage
from musicdata.workspace import Workspace
from tests.faults.conftest import ENCODINGS
from tests.faults.state import ROOT, cli, diff, files, killed, runner, snapshot, temp_debris


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _assert_like_clean(home: Path, clean: Path) -> None:
    assert temp_debris(home / "shards") == [], "temp files left after the rerun"
    problems = verify(Workspace.open(home))
    assert problems == [], problems
    assert diff(snapshot(clean, under="shards"), snapshot(home, under="shards")) == []


def test_tokenize_killed_at_every_kind_of_point_then_rerun_equals_clean(
    ingested: Path, clean: Path, tmp_path: Path
) -> None:
    home = _copy(ingested, tmp_path / "home")
    enc = ",".join(ENCODINGS)
    # 1. inside remi's config save (the finding): a `.tokenizer.json.<hex>.tmp.d` left
    p = runner("tokenize", str(home), enc, "--kill-in-config-save", "remi")
    assert killed(p), p.stderr[-2000:]
    torn = [d for d in temp_debris(home / "shards") if d.endswith(".tmp.d")]
    assert torn, temp_debris(home / "shards")
    # 2. a run of another encoding only, killed mid-shard: it still clears remi's torn save
    p = runner("tokenize", str(home), "cp", fault="write.parquet:2")
    assert killed(p), p.stderr[-2000:]
    left = temp_debris(home / "shards")
    assert not set(torn) & set(left), f"remi's torn config save survived a cp run: {left}"
    assert any(".part-" in d for d in left), left  # the torn shard of this kill
    # 3. between a shard's rename and its catalog commit
    p = runner("tokenize", str(home), enc, fault="store.after_rename:2")
    assert killed(p), p.stderr[-2000:]
    # 4. inside a catalog transaction (statements run, COMMIT not reached)
    p = runner("tokenize", str(home), enc, fault="catalog.in_transaction:7")
    assert killed(p), p.stderr[-2000:]
    # 5. the real CLI, uninterrupted: the same shards and rows as a run nothing interrupted
    done = cli("tokenize", *(f"--encoding={e}" for e in ENCODINGS), "--json", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_like_clean(home, clean)
    assert diff(snapshot(clean), snapshot(home)) == []


POINTS = ["write.json", "write.parquet", "store.after_rename", "catalog.in_transaction"]


def _trace_counts(ingested: Path, tmp_path: Path) -> dict[str, int]:
    """How often a clean CLI run passes each point (MUSICDATA_FAULT_TRACE)."""
    home = _copy(ingested, tmp_path / "traced")
    trace = tmp_path / "trace.txt"
    p = cli("tokenize", *(f"--encoding={e}" for e in ENCODINGS), home=home, trace=trace)
    assert p.returncode == 0, p.stderr[-2000:]
    counts: dict[str, int] = {}
    for line in trace.read_text().split():
        counts[line] = counts.get(line, 0) + 1
    return counts


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tokenize_cli_killed_at_a_seeded_point_then_rerun_equals_clean(
    ingested: Path, clean: Path, tmp_path: Path, seed: int
) -> None:
    """Each point, at a count drawn from the seed among the times a clean run passes it."""
    counts = _trace_counts(ingested, tmp_path)
    rng = random.Random(seed)
    for point in POINTS:
        n = rng.randint(1, counts[point])
        home = _copy(ingested, tmp_path / f"{point}-{n}")
        p = cli(
            "tokenize", *(f"--encoding={e}" for e in ENCODINGS), home=home, fault=f"{point}:{n}"
        )
        assert killed(p), (point, n, p.stderr[-2000:])
        done = cli("tokenize", *(f"--encoding={e}" for e in ENCODINGS), home=home)
        assert done.returncode == 0, (point, n, done.stderr[-3000:])
        _assert_like_clean(home, clean)
        assert diff(snapshot(clean), snapshot(home)) == [], (point, n)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tokenize_all_killed_after_a_seeded_delay(
    ingested: Path, tmp_path: Path, seed: int
) -> None:
    """The issue's report, as a user did it: `tokenize --all` SIGKILLed some seconds in (wherever
    that lands), then run again: it finishes, and nothing torn or orphaned is left."""
    home = _copy(ingested, tmp_path / "home")
    env = {**os.environ, "MUSICDATA_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "musicdata.cli", "tokenize", "--all", "--json"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(random.Random(seed).uniform(3.0, 12.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = cli("tokenize", "--all", "--json", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert temp_debris(home / "shards") == []
    assert verify(Workspace.open(home)) == []


# ---- publish ------------------------------------------------------------------------------------


@pytest.fixture
def published(clean: Path, tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A copy of the clean workspace with one staging folder already published from it, and a
    reference copy of that folder."""
    home = _copy(clean, tmp_path / "home")
    out = tmp_path / "out" / "staged"
    stage(Workspace.open(home), out)
    reference = _copy(out, tmp_path / "reference")
    yield home, out, reference


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def test_publish_killed_mid_stage_and_mid_swap_then_rerun_equals_clean(
    published: tuple[Path, Path, Path],
) -> None:
    home, out, reference = published
    before = snapshot(home, under="shards")
    p = runner("publish", str(home), str(out), fault="publish.swap:1")
    assert killed(p), p.stderr[-2000:]
    assert not out.exists() and len(_siblings(out)) == 2, _siblings(out)  # .old and .tmp
    p = runner("publish", str(home), str(out), fault="publish.mid_stage:2")
    assert killed(p), p.stderr[-2000:]
    done = cli("publish", "--out", str(out), "--json", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _siblings(out) == [], f"a killed publish left {_siblings(out)} beside {out}"
    assert files(out) == files(reference)
    assert diff(before, snapshot(home, under="shards")) == []  # one publication, recorded once
