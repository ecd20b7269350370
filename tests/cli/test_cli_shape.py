"""The CLI as a new user meets it (issue 19): help without `<bool>` placeholders, commands in
pipeline order, read commands that refuse a folder that is not a workspace, one JSON shape for
results and errors, rounded floats, "did you mean" for encoding names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicdata.cli import app
from musicdata.cli.common import fmt
from musicdata.workspace import Workspace

runner = CliRunner()

COMMANDS = [
    ["ingest"],
    ["transcribe"],
    ["tokenize"],
    ["train"],
    ["evaluate"],
    ["generate"],
    ["variations"],
    ["metrics"],
    ["report"],
    ["publish"],
    ["demo"],
    ["catalog"],
    ["catalog", "sql"],
    ["catalog", "stats"],
    ["catalog", "lineage"],
    ["catalog", "verify"],
    ["catalog", "views"],
    ["encodings"],
    ["encodings", "list"],
    ["encodings", "compare"],
]


@pytest.mark.parametrize("args", [[], *COMMANDS], ids=lambda a: " ".join(a) or "top")
def test_help_has_no_type_placeholders(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    for placeholder in ("<bool>", "<path>", "<int>", "<str>", "<list", "<float>"):
        assert placeholder not in result.output, (args, placeholder, result.output)


def test_commands_are_listed_in_pipeline_order() -> None:
    out = runner.invoke(app, ["--help"]).output
    order = [
        "demo",
        "ingest",
        "transcribe",
        "tokenize",
        "train",
        "evaluate",
        "generate",
        "variations",
        "metrics",
        "report",
        "publish",
        "catalog",
        "encodings",
    ]
    where = [out.index(f"│ {name} ") for name in order]
    assert where == sorted(where), out
    catalog_help = runner.invoke(app, ["catalog", "--help"]).output
    assert "only `views` writes" in catalog_help
    assert "read-only)" not in catalog_help  # the group no longer claims all of it reads


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "stats"],
        ["catalog", "sql", "SELECT 1"],
        ["catalog", "views"],
        ["encodings", "compare"],
        ["report"],
        ["tokenize", "-e", "remi"],
        ["train"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_read_commands_refuse_a_mistyped_home(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "musicdata-hme"
    result = runner.invoke(app, ["--home", str(typo), *args, "--json"])
    assert result.exit_code == 2, result.output
    err = json.loads(result.stdout.strip().splitlines()[-1])
    assert err["error"] == "not_a_workspace" and str(typo) in err["detail"], err
    assert set(err) >= {"error", "detail", "hint", "home"} and err["hint"]
    assert not typo.exists(), "a read command created the mistyped workspace"
    # an existing folder that is not a workspace is refused too, and left as it was
    typo.mkdir()
    result = runner.invoke(app, ["--home", str(typo), *args])
    assert result.exit_code == 2 and "not a musicdata workspace" in result.output
    assert list(typo.iterdir()) == []


def test_errors_with_json_are_one_object(tmp_path: Path) -> None:
    home = tmp_path / "h"
    Workspace.open(home).catalog.migrate()
    cases = [
        (["tokenize", "--encoding", "remi-bep"], "unknown_encoding", "did you mean 'remi-bpe'"),
        (["tokenize"], "no_encoding", "available: "),
        (["catalog", "sql", "DELETE FROM core.pieces"], "query_refused", "SELECT"),
        (["catalog", "sql", "SELECT * FROM no_such_view"], "query_failed", "SELECT"),
        (["ingest", str(tmp_path / "nothing")], "no_inputs", "MIDI"),
    ]
    for args, error, hint in cases:
        result = runner.invoke(app, ["--home", str(home), *args, "--json"])
        assert result.exit_code == 2, (args, result.output)
        lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
        assert len(lines) == 1, (args, result.stdout)  # exactly one object on stdout
        obj = json.loads(lines[0])
        assert obj["error"] == error and obj["detail"] and hint in obj["hint"], (args, obj)
        assert obj["home"] == str(home.resolve())


def test_did_you_mean_in_human_output(tmp_path: Path) -> None:
    home = tmp_path / "h"
    Workspace.open(home).catalog.migrate()
    result = runner.invoke(app, ["--home", str(home), "tokenize", "-e", "octupel"])
    assert result.exit_code == 2
    assert "unknown encoding(s) octupel" in result.output
    assert "did you mean 'octuple'?" in result.output


def test_encodings_list_has_every_name_tokenize_accepts(tmp_path: Path) -> None:
    from musicdata.cli.audio import CODEC_NAMES
    from musicdata.encodings import available

    result = runner.invoke(app, ["--home", str(tmp_path / "none"), "encodings", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = {r["encoding"] for r in data["encodings"]}
    assert names == {*available(), *CODEC_NAMES}
    groups = {r["encoding"]: r["group"] for r in data["encodings"]}
    assert groups["remi-bpe"] == "learned" and groups["encodec-32k"] == "codec"
    assert groups["nb-pf"] == "paper"
    assert data["home"] == str((tmp_path / "none").resolve())
    assert not (tmp_path / "none").exists()  # listing the registry needs no workspace


def test_floats_are_rounded_for_people() -> None:
    assert fmt(1005.8499999999997) == "1005.85"
    assert fmt(0.99995) == "1.0"
    assert fmt(0.958234) == "0.9582"
    assert fmt(0.00012345) == "0.000123"
    assert fmt(12) == "12" and fmt("x") == "x" and fmt(None) == "None"
    assert fmt(float("nan")) == "nan"


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        (["catalog", "sql"], "Missing argument"),
        (["tokenize", "--bogus"], "No such option: --bogus"),
        (["train", "--steps", "zero"], "--steps"),
    ],
)
def test_usage_errors_with_json_are_one_object(args: list[str], detail: str) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2, result.output
    obj = json.loads(result.stdout)
    assert obj["error"] == "usage" and detail in obj["detail"], obj
    assert obj["hint"].endswith("--help`") and "home" in obj
