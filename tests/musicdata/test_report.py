"""`musicdata report`: every section renders from real catalog rows and shard files (HTML content,
PNG files, CSV tables), empty catalogs render too, and the same tables become Prefect artifacts."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musicdata.catalog import records
from musicdata.catalog.connection import now
from musicdata.cli import app
from musicdata.metrics.features import FEATURES
from musicdata.metrics.plots import FEATURE_TITLES, evaluation_figure, in_suite_order
from musicdata.metrics.sets import SetConfig, evaluate_sets
from musicdata.report import Report, _query, build_report
from musicdata.report.artifacts import section_markdown
from musicdata.report.html import fmt_percent, fmt_value
from musicdata.report.screenshot import BROWSERS
from musicdata.report.vocab import compound_counts, special_ids, token_name_map
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
    return _full_workspace(tmp_path / "home")


def _full_workspace(root: Path) -> Workspace:
    """Two encodings, a quarantined file, a transcribed piece, a training run with evaluations."""
    ws = make_workspace(root)
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
        con.execute(
            "INSERT INTO core.transcriptions (recording_sha256, params_hash, status, piece_id, "
            "model_id, params_json, n_notes, n_chunks, audio_s, seconds, run_id, created_at) "
            "VALUES ('ff', 'p', 'ok', ?, 'basic-pitch', '{}', 120, 1, 60.0, 3.0, 'r', ?)",
            [piece_id(0), t],
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
        "Set-level metrics (m1) in the mgeval order: pc, ioi",
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
    # a mistyped --home is refused, naming the path (wording is the CLI's)
    assert missing.exit_code == 2 and str(tmp_path / "none") in missing.output


def test_token_names_for_unused_remi_ids(tmp_path: Path, corpus: Path) -> None:
    from musicdata.stages.ingest import ingest_paths
    from musicdata.stages.tokenize import tokenize_encoding

    ws = make_workspace(tmp_path / "home")
    ingest_paths(ws, [corpus / "folk_6_8.mid"], run_id="i")
    tokenize_encoding(ws, "remi", run_id="t")
    rep = build_report(ws, tmp_path / "out")
    (unused,) = next(s for s in rep.sections if s.key == "vocabulary").tables[1].rows
    # special tokens are never in a stored piece: listing them as "never used" tells nothing
    for special in ("PAD_None", "BOS_None", "EOS_None", "MASK_None"):
        assert special not in unused["tokens"]
    assert unused["specials_left_out"] == 4 and unused["never_seen"] > 0
    assert "_" in unused["tokens"].split(",")[0]  # ids keep their names: "123 Pitch_108"


@pytest.mark.slow
def test_report_flow_publishes_artifacts(full: Workspace, tmp_path: Path) -> None:
    from musicdata.flows.report import report_flow

    result = report_flow(str(full.root), str(tmp_path / "flow-out"), base_url="http://r.example/x")
    from prefect.artifacts import Artifact

    assert set(result["artifacts"]) == {f"report-{k}" for k in SECTIONS} | {"report-html"}
    link = Artifact.get("report-html")
    assert link is not None and "http://r.example/x/index.html" in link.data  # never file://
    art = Artifact.get("report-quarantine")
    assert art is not None and "unparseable" in art.data


def test_cells_never_round_a_lossy_value_to_a_whole_number() -> None:
    assert fmt_percent(0.9998) == "99.98%" and fmt_percent(0.9999996) == "99.99996%"
    assert fmt_percent(1.0) == "100%" and fmt_percent(2e-7) == "0.00002%"
    assert fmt_value(0.9998) == "0.9998" and fmt_value(1005.8499999999997) == "1,005.85"
    assert fmt_value(True) == "yes" and fmt_value(False) == "no" and fmt_value(3) == "3"
    assert fmt_value(0.9998, "percent") == "99.98%"


def _table_cells(page: str, title: str) -> list[list[str]]:
    """Rows of cell texts of the HTML table under the <h3> `title`."""
    chunk = page.split(f"<h3>{title}</h3>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", chunk, flags=re.S)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in rows]


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Report]:
    """The `full` workspace where remi's round trip loses 2 of 10,000 notes, reported once."""
    ws = _full_workspace(tmp_path_factory.mktemp("lossy") / "home")
    t = now()
    with ws.catalog.write() as con:
        (chash,) = con.execute(
            "SELECT config_hash FROM core.encodings WHERE encoding = 'remi'"
        ).fetchone()
        con.execute("UPDATE core.encodings SET lossless = true WHERE encoding = 'remi'")
        fid = {"encoding": "remi", "config_hash": chash, "error": None, "run_id": "r"}
        records.insert_rows(
            con,
            "fidelity",
            [
                fid
                | {"piece_id": piece_id(i), "notes": 5000, "recovered": r, "decoded": r}
                | {"created_at": t}
                for i, r in ((0, 4998), (1, 5000))
            ],
        )
    return ws, build_report(ws, ws.root / "out", token_names=False)


def test_fidelity_shows_lossy_pieces_and_yes_no(lossy: tuple[Workspace, Report]) -> None:
    """9,998 of 10,000 notes recovered reads 99.98% with its one lossy piece, never "1"."""
    rep = lossy[1]
    page = rep.index.read_text()
    header, row = _table_cells(page, "Round-trip fidelity (view fidelity)")
    cells = dict(zip(header, row, strict=True))
    assert cells["fidelity"] == "99.98%" and cells["worst_piece"] == "99.96%"
    assert cells["lossy_pieces"] == "1" and cells["lossless_by_design"] == "yes"
    assert "most of all remi: 1 of 2 pieces, 99.98% of notes recovered" in page
    csv = (rep.index.parent / "tables").glob("compression-*.csv")
    assert any("0.9998" in c.read_text() for c in csv)  # the CSV keeps the raw fraction


def test_transcription_speed_column_is_named_and_explained(
    lossy: tuple[Workspace, Report],
) -> None:
    page = lossy[1].index.read_text()
    assert "x_realtime" not in page
    header, row = _table_cells(page, "Transcriptions (basic-pitch)")
    cells = dict(zip(header, row, strict=True))
    assert cells["audio_s_per_transcribe_s"] == "20" and cells["transcribe_s"] == "3"
    assert "seconds of audio transcribed per second" in page


def test_rank_frequency_counts_whole_compound_tokens(lossy: tuple[Workspace, Report]) -> None:
    ws, rep = lossy
    q = _query(ws)
    counts = compound_counts(q)
    (key,) = counts
    assert key[0] == "nb-pf"
    steps = q("SELECT sum(length)::BIGINT AS n FROM token_lengths WHERE encoding = 'nb-pf'")
    assert int(counts[key].sum()) == steps[0]["n"]  # every step counted once, as one token
    vocab = next(s for s in rep.sections if s.key == "vocabulary")
    (fig,) = [f for f in vocab.figures if f.name == "token-frequency"]
    assert "compound" in fig.caption


def test_special_token_ids_by_name_or_by_config() -> None:
    cfg = json.dumps({"special_tokens": ["PAD", "BOS", "EOS", "MASK", "Meter"]})
    assert special_ids(None, cfg) == {0, 1, 2, 3, 4}  # MidiTok puts them first in every field
    names = {0: "PAD_None", 1: "Ignore_None", 2: "Meter_None", 3: "Pitch_60"}
    assert special_ids(names, cfg) == {0, 1, 2}
    assert special_ids(None, "{}") == set()
    perf = token_name_map("performance", "h", "{}", 390)
    assert perf is not None and perf[0][0] == "PAD" and perf[0][1] == "EOS"
    assert special_ids(perf[0], "{}") == {0, 1}


def _detail(feature: str, shift: float) -> dict:
    grid = np.linspace(-0.5, 3.0, 50)  # a row recorded before the support was clipped at 0
    return {
        "feature": feature,
        "grid": grid.tolist(),
        "intra_ref_pdf": np.exp(-((grid - 1.0) ** 2)).tolist(),
        "inter_pdf": np.exp(-((grid - 1.0 - shift) ** 2)).tolist(),
        "n_ref": 10,
        "n_gen": 8,
    }


def test_density_panels_mgeval_order_no_negative_distances_one_legend() -> None:
    alphabetical = [_detail(f, 0.1 * i) for i, f in enumerate(sorted(FEATURES))]
    assert [d["feature"] for d in in_suite_order(alphabetical)] == list(FEATURES)
    assert FEATURES[:9] == ("pc", "nc", "pch", "pctm", "pr", "pi", "ioi", "nlh", "nltm")
    fig = evaluation_figure([d for d in alphabetical if d["feature"] in ("ioi", "nc", "pc", "pr")])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title().split("\n")[0] for ax in axes]
    assert titles == [FEATURE_TITLES[f] for f in ("pc", "nc", "pr", "ioi")]
    for ax in axes:
        assert min(line.get_xdata().min() for line in ax.lines) == 0.0
        assert ax.get_legend() is None  # no legend inside a panel, over a peak
    assert len(fig.legends) == 1 and len(fig.axes) == 6  # 3 per row, 2 cells hidden


def test_set_densities_start_at_zero_distance() -> None:
    rng = np.random.default_rng(0)
    ref = {"pc": rng.integers(20, 24, 12).astype(float)}  # near-identical pieces: distances ~0
    gen = {"pc": rng.integers(20, 30, 9).astype(float)}
    r = evaluate_sets(ref, gen)["pc"]
    grid = np.asarray(r["grid"])
    assert grid[0] == 0.0
    for pdf in ("intra_ref_pdf", "inter_pdf"):
        assert np.trapz(r[pdf], grid) == pytest.approx(1.0, abs=0.03)
    unclipped = evaluate_sets(ref, gen, SetConfig(clip_at_zero=False))["pc"]
    assert unclipped["grid"][0] < 0  # what the panels used to show


def test_screenshot_crops_the_empty_background_below_the_page() -> None:
    from PIL import Image

    from musicdata.report.screenshot import BACKGROUND, _content_bottom

    img = Image.new("RGB", (50, 400), BACKGROUND)
    img.paste((255, 255, 255), (5, 10, 45, 120))  # one white section, 120 px down
    assert _content_bottom(img) == 120 + 23  # the last content row + a 24 px margin


@pytest.mark.slow
@pytest.mark.skipif(not any(map(shutil.which, BROWSERS)), reason="needs headless chromium")
def test_screenshot_of_a_rendered_report(tmp_path: Path) -> None:
    from PIL import Image

    from musicdata.report.screenshot import screenshot

    ws = make_workspace(tmp_path / "home")
    ws.catalog.migrate()
    rep = build_report(ws, token_names=False)
    png = screenshot(rep.index, tmp_path / "shot.png", width=900)
    img = Image.open(png)
    assert img.width == 900 and 300 < img.height < 16000
