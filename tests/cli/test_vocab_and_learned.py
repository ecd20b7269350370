"""Token ids readable in SQL (the `vocab` view) and learned vocabularies that say when their
training set is too small (issue 19), on real fixture pieces through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicdata.cli import app
from musicdata.encodings import get_encoding
from musicdata.stages.ingest import ingest_paths
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES, make_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict, str]:
    root = tmp_path_factory.mktemp("vocab")
    shutil.copytree(FIXTURES, root / "corpus")
    ws = make_workspace(root / "home")
    ingest_paths(ws, [root / "corpus"], run_id="i")
    args = ["--home", str(ws.root), "tokenize", "-e", "remi", "-e", "cp", "-e", "remi-bpe"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return ws, result, result.stderr


def test_tokenize_json_is_one_object_and_warns_on_a_tiny_training_set(tokenized) -> None:
    ws, result, stderr = tokenized
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stdout  # the BPE trainer's progress bar stays off stdout
    summary = json.loads(lines[0])
    assert summary["home"] == str(ws.root) and isinstance(summary["seconds"], float)
    # the warning names the numbers and the fix, and reaches the terminal without --verbose
    text = " ".join(stderr.split())
    assert "remi-bpe: the training set is too small for vocab_size 20000" in text, stderr
    assert "train-split pieces" in text and "base tokens" in text
    assert "[encodings.remi-bpe] vocab_size =" in text


def test_vocab_view_names_every_id_in_the_shards(tokenized) -> None:
    ws = tokenized[0]
    q = ws.catalog.query
    missing = q(
        "SELECT f.encoding, f.field, f.token FROM token_frequencies f LEFT JOIN vocab v "
        "ON v.encoding = f.encoding AND v.config_hash = f.config_hash "
        "AND v.field_index = f.field_index AND v.id = f.token WHERE v.token IS NULL"
    ).to_pylist()
    assert missing == []
    used = q("SELECT DISTINCT encoding FROM token_frequencies").column(0).to_pylist()
    assert set(used) == {"remi", "cp", "remi-bpe"}
    sizes = q(
        "SELECT v.encoding, count(*) AS n, any_value(e.vocab_size) AS size FROM vocab v "
        "JOIN encodings e USING (encoding, config_hash) GROUP BY ALL"
    ).to_pylist()
    assert all(r["n"] == r["size"] for r in sizes), sizes  # one name per id, every id
    pitch = q("SELECT id FROM vocab WHERE encoding = 'remi' AND token = 'Pitch_60'").to_pylist()
    enc = get_encoding("remi")
    assert pitch == [{"id": enc.tokenizer.vocab["Pitch_60"]}]
    fields = q("SELECT DISTINCT field_index, field FROM vocab WHERE encoding = 'cp' ORDER BY 1")
    assert fields.column("field").to_pylist() == get_encoding("cp").sub_tokens
    merged = q("SELECT token FROM vocab WHERE encoding = 'remi-bpe' AND token LIKE '% %' LIMIT 1")
    assert merged.num_rows == 1  # a learned token is named by the base tokens it stands for
    # an analyst's readable frequency table, through the CLI
    out = runner.invoke(
        app,
        [
            "--home",
            str(ws.root),
            "catalog",
            "sql",
            "SELECT v.token, sum(f.count) AS n FROM token_frequencies f JOIN vocab v "
            "ON v.encoding = f.encoding AND v.config_hash = f.config_hash "
            "AND v.field_index = f.field_index AND v.id = f.token "
            "WHERE f.encoding = 'remi' GROUP BY ALL ORDER BY n DESC LIMIT 3",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["rows"]
    assert len(rows) == 3 and all("_" in r["token"] for r in rows)


def test_catalog_views_backfills_the_vocabulary(tokenized) -> None:
    ws = tokenized[0]
    with ws.catalog.write() as con:
        con.execute("DELETE FROM core.vocab WHERE encoding = 'remi'")
    result = runner.invoke(app, ["--home", str(ws.root), "catalog", "views", "--json"])
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)["vocab_rows_added"]
    assert added == get_encoding("remi").vocab_size
    n = ws.catalog.query("SELECT count(*) AS n FROM vocab WHERE encoding = 'remi'")
    assert n.column(0)[0].as_py() == added


def test_training_report_flags_memorization_only(tmp_path: Path) -> None:
    files = [FIXTURES / n for n in ("chorale_4_4.mid", "folk_6_8.mid", "waltz_3_4.mid")]
    tiny = get_encoding("remi-bpe", {"training_set": "t"}).train(files[:2], tmp_path / "a.json")
    assert tiny.memorized and tiny.pieces == 2 and tiny.tokens_per_bar <= 1.5
    assert tiny.base_tokens > tiny.bars > 0 and tiny.learned_vocab > tiny.base_vocab
    small = get_encoding("remi-bpe", {"training_set": "t", "vocab_size": 660})
    report = small.train(files, tmp_path / "b.json")
    assert not report.memorized and report.tokens_per_bar > 2, report
