"""`musicdata report`: every section renders from real catalog rows and shard files (HTML content,
PNG files, CSV tables), empty catalogs render too, and the same tables become Prefect artifacts."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.cli import app
from musicdata.report import build_report
from musicdata.report.artifacts import section_markdown
from musicdata.testing.synthetic import SyntheticEncoding, piece_id, write_synthetic_corpus
from musicdata.workspace import Workspace
from tests.conftest import make_workspace

SECTIONS = ["corpus", "lengths", "compression", "vocabulary", "quarantine", "audio", "training"]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.ids: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag not in ("meta", "br"):
            self.open.append(tag)
        if "id" in a:
            self.ids.append(a["id"])

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text())
    assert page.open == []  # every tag closed, in order
    return page


def _oa_detail(feature: str) -> str:
    grid = np.linspace(0, 1, 20)
    return json.dumps(
        {
            "feature": feature,
            "grid": grid.tolist(),
            "intra_ref_pdf": np.exp(-((grid - 0.4) ** 2) * 30).tolist(),
            "inter_pdf": np.exp(-((grid - 0.6) ** 2) * 30).tolist(),
        }
    )


@pytest.fixture
def full(tmp_path: Path) -> Workspace:
    """Two encodings, a quarantined file, a transcribed piece, a training run with evaluations."""
    ws = make_workspace(tmp_path / "home")
    nb = SyntheticEncoding("nb-pf", (12, 40, 30), ("metric", "pitch", "duration"), 0.3)
    write_synthetic_corpus(ws, 50, [SyntheticEncoding("remi", (200,), unused=11), nb])
    t = now()
    with ws.catalog.write() as con:
        con.execute(
            "INSERT INTO core.quarantine VALUES ('/in/bad.mid', 'ab', 'ingest', 'unparseable', "
            "'not a readable MIDI file', 'h', 'r', ?)",
            [t],
        )
        edge = {"config_hash": "h", "code_version": "t", "run_id": "r", "created_at": t}
        records.insert_rows(
            con,
            "lineage_edges",
            [
                {"src_id": "audio:ff", "dst_id": f"piece:{piece_id(0)}", "stage": "transcribe"}
                | edge
            ],
        )
        con.execute(
            "INSERT INTO core.train_runs (train_run_id, run_id, model, encoding, "
            "encoding_config_hash, config_json, device, status, started_at, finished_at) VALUES ("
            "'t1', 'r', 'nmt', 'nb-pf', 'h', '{}', 'cpu', "
            "'completed', ?, ?)",
            [t, t],
        )
        for step, nll in ((100, 3.1), (200, 2.6), (300, 2.4)):
            con.execute(
                "INSERT INTO core.checkpoints VALUES (?, 't1', ?, 'c.safetensors', 'x', ?)",
                [f"c{step}", step, t],
            )
            con.execute(
                "INSERT INTO core.eval_results VALUES (?, ?, 'nll', 'validation', ?, NULL, 'r', ?)",
                [f"e{step}", f"c{step}", nll, t],
            )
        for feature in ("pc", "ioi"):
            con.execute(
                "INSERT INTO core.eval_results VALUES ('m1', NULL, ?, NULL, 0.7, ?, 'r', ?)",
                [f"{feature}.oa", _oa_detail(feature), t],
            )
    return ws


def test_every_section_renders_from_the_catalog(full: Workspace, tmp_path: Path) -> None:
    rep = build_report(full, tmp_path / "out", token_names=False)
    page = _parse(rep.index)
    assert [i for i in page.ids if i in SECTIONS] == SECTIONS
    assert len(page.images) >= 8
    for src in page.images:
        assert (rep.index.parent / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = rep.index.read_text()
    for expected in (
        "50 pieces",
        "nb-pf",
        "Length relative to remi",
        "unparseable",
        "not a readable MIDI file",
        "were transcribed from audio",
        "nll over training",
        "Set-level metrics (m1): ioi, pc",
        "duration",  # a compound field in the coverage table
    ):
        assert expected in html, expected
    by_key = {s.key: s for s in rep.sections}
    ratio = by_key["compression"].tables[0].rows
    assert [r["encoding"] for r in ratio] == ["nb-pf", "remi"]
    assert 0.2 < ratio[0]["length_ratio_vs_remi"] < 0.4  # generated at 0.3 x remi's length
    unused = {r["field"]: r["never_seen"] for r in by_key["vocabulary"].tables[1].rows}
    assert unused["token"] >= 11  # the generator never emits remi's top 11 ids
    csvs = sorted((rep.index.parent / "tables").glob("*.csv"))
    assert any("quarantine" in c.name for c in csvs)
    md = section_markdown(by_key["quarantine"])
    assert "| stage | reason | files |" in md and "| ingest | unparseable | 1 |" in md


def test_an_empty_workspace_still_renders(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "home")
    ws.catalog.migrate()
    rep = build_report(ws, token_names=False)
    assert rep.index == ws.root / "report" / "index.html"
    _parse(rep.index)
    text = rep.index.read_text()
    assert "No token shards yet" in text and "No audio sources" in text
    assert "No training runs or evaluations recorded yet" in text


def test_cli_report_json(full: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-out"
    args = ["--home", str(full.root), "report", "--out", str(out), "--no-token-names", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["index"] == str(out / "index.html")
    assert summary["sections"]["training"]["figures"] == 2  # nll curve + set-level panel
    missing = runner.invoke(app, ["--home", str(tmp_path / "none"), "report"])
    assert missing.exit_code == 2 and "no catalog" in missing.output


def test_token_names_for_unused_remi_ids(tmp_path: Path, corpus: Path) -> None:
    from musicdata.stages.ingest import ingest_paths
    from musicdata.stages.tokenize import tokenize_encoding

    ws = make_workspace(tmp_path / "home")
    ingest_paths(ws, [corpus / "folk_6_8.mid"], run_id="i")
    tokenize_encoding(ws, "remi", run_id="t")
    rep = build_report(ws, tmp_path / "out")
    (unused,) = next(s for s in rep.sections if s.key == "vocabulary").tables[1].rows
    assert "0 PAD_None" in unused["tokens"]  # a one-piece corpus never pads


@pytest.mark.slow
def test_report_flow_publishes_artifacts(full: Workspace, tmp_path: Path) -> None:
    from musicdata.flows.report import (
        report_flow,  # first: flows/__init__ sets Prefect's server timeouts
    )

    result = report_flow(str(full.root), str(tmp_path / "flow-out"))
    from prefect.artifacts import Artifact

    assert set(result["artifacts"]) == {f"report-{k}" for k in SECTIONS} | {"report-html"}
    art = Artifact.get("report-quarantine")
    assert art is not None and "unparseable" in art.data
