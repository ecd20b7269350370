"""The CLI end to end: pipeline commands run as Prefect flows (local ephemeral mode, in process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicdata.cli import app
from tests.conftest import BROKEN, REAL

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_tokenize_query_rerun(tmp_path: Path, corpus: Path) -> None:
    home = str(tmp_path / "home")
    s = _json(["--home", home, "ingest", str(corpus)])
    assert {k: s[k] for k in ("ok", "quarantined", "duplicates", "skipped")} == {
        "ok": len(REAL),
        "quarantined": len(BROKEN),
        "duplicates": 0,
        "skipped": 0,
    }
    t = _json(["--home", home, "tokenize", "--encoding", "remi"])
    (remi,) = t["encodings"]
    assert remi["tokenized"] == len(REAL) - 1 and Path(remi["shard_dir"]).is_dir()
    q = _json(["--home", home, "catalog", "sql", "SELECT count(*) AS n FROM pieces"])
    assert q == {"count": 1, "rows": [{"n": len(REAL)}], "home": str(Path(home).resolve())}
    stats = _json(["--home", home, "catalog", "stats"])
    assert stats["counts"]["quarantine"] == len(BROKEN)
    assert {r["encoding"] for r in stats["token_stats"]} == {"remi"}
    # a second identical run reports zero new work
    again = _json(["--home", home, "ingest", str(corpus)])
    assert (again["ok"], again["quarantined"], again["skipped"]) == (0, 0, len(REAL) + len(BROKEN))
    assert _json(["--home", home, "tokenize", "-e", "remi"])["encodings"][0]["tokenized"] == 0


def test_demo_main_job(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    s = _json(["--home", str(home), "demo", "--limit", "3"])
    assert s["files"] == 5  # 3 real works + 2 deliberately broken files
    assert s["ingest"]["ok"] == 3 and s["ingest"]["quarantined"] == 2
    from musicdata.encodings import REGISTRY

    for name in REGISTRY:  # the demo tokenizes every symbolic encoding
        assert sum(r["pieces"] for r in s["token_stats"] if r["encoding"] == name) == 3, name
    assert {r["encoding"] for r in s["compression"]} == set(REGISTRY)
    assert all(r["fidelity"] > 0.85 for r in s["compression"])
    assert Path(s["catalog"]).exists()
    human = runner.invoke(app, ["--home", str(home), "demo", "--limit", "3"])
    assert human.exit_code == 0, human.output
    assert "skipped (already done)" in human.stdout and "catalog sql" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokenize", "--encoding", "nope"], "unknown encoding"),
        (["tokenize"], "name an encoding"),
        (["ingest", "/no/such/folder"], "none of the inputs exist"),
        (["catalog", "sql", "DELETE FROM core.pieces"], "read-only"),
        (["catalog", "sql", "SELECT * FROM no_such_view"], "no_such_view"),
    ],
)
def test_errors_are_clear_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    home = tmp_path / "h"
    from musicdata.workspace import Workspace

    Workspace.open(home).catalog.migrate()
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_console_script_is_installed(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "musicdata"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for command in ("ingest", "tokenize", "catalog", "demo"):
        assert command in out.stdout
    missing = subprocess.run(
        [str(exe), "--home", str(tmp_path / "none"), "catalog", "sql", "SELECT 1"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "musicdata ingest" in missing.stderr
