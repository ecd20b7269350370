"""Concurrency (issue 18): two pipeline runs started at once on one workspace while an analyst
queries the catalog read-only the whole time. The second run waits for the first (and says
whom it waits for), every analyst query succeeds, and the result equals one clean run: nothing
duplicated, nothing torn. `--no-wait` refusing instead is tests/musicdata/test_safety.py's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from musicdata.catalog import Catalog
from musicdata.catalog.verify import verify
from musicdata.workspace import Workspace
from tests.faults.state import ROOT, diff, snapshot, temp_debris

ENCODINGS = "remi,cp"


def test_two_runs_and_an_analyst_at_once(ingested: Path, clean: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ingested, home)
    cmd = [sys.executable, "-m", "tests.faults.runner", "tokenize", str(home), ENCODINGS]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    catalog = Catalog(home / "catalog.duckdb")
    (home / "shards").mkdir(exist_ok=True)
    reads, counts = 0, set()
    while any(p.poll() is None for p in procs):
        table = catalog.analyst_query("SELECT count(*) AS n FROM pieces", [home / "shards"])
        counts.add(table.column("n")[0].as_py())
        reads += 1
        time.sleep(0.2)
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    waited = [err for _, err in outs if "waiting for pid" in err]
    assert len(waited) == 1, [err[-500:] for _, err in outs]
    assert reads > 0 and counts == {7}, (reads, counts)
    assert temp_debris(home / "shards") == []
    assert verify(Workspace.open(home)) == []
    assert diff(snapshot(clean), snapshot(home)) == []
