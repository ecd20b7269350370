"""`musicdata metrics REF GEN` on the real fixture files against a transposed copy with a broken
file in it: skipped by name, rows and lineage in the catalog, reruns add nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import symusic
from typer.testing import CliRunner

from musicdata.catalog import Catalog
from musicdata.catalog.evaluation import PLOT_KEYS, STATISTICS, plot_details
from musicdata.cli import app
from musicdata.metrics.features import FEATURES
from tests.conftest import FIXTURES, REAL

runner = CliRunner()

# Transposition leaves these features unchanged; the pitch-class ones move.
TRANSPOSITION_INVARIANT = ("pc", "nc", "pr", "pi", "ioi", "nlh", "nltm", "pc_seg", "nc_seg")


def _run(args: list[str], code: int = 0) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1]) if code == 0 else {}


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sets")
    ref, gen = root / "ref", root / "gen" / "nested"
    ref.mkdir()
    gen.mkdir(parents=True)
    for name in REAL:
        shutil.copy(FIXTURES / name, ref / name)
        score = symusic.Score.from_midi((FIXTURES / name).read_bytes())
        (gen / f"up6-{name}").write_bytes(score.shift_pitch(6).dumps_midi())
    shutil.copy(FIXTURES / "truncated.mid", gen / "broken.mid")
    return ref, root / "gen"


def test_metrics_records_once_and_skips_the_broken_file(
    tmp_path: Path, sets: tuple[Path, Path]
) -> None:
    ref, gen = sets
    home = tmp_path / "home"
    s = _run(["--home", str(home), "metrics", str(ref), str(gen)])
    assert (s["n_ref"], s["n_gen"], s["recorded"]) == (len(REAL), len(REAL), True)
    assert [(Path(k["path"]).name, k["reason"]) for k in s["skipped"]] == [
        ("broken.mid", "unparseable")
    ]
    assert s["rows_new"] == 4 * len(FEATURES)

    cat = Catalog(home / "catalog.duckdb")
    rows = cat.query(
        "SELECT metric, value, detail_json, checkpoint_id FROM eval_results WHERE eval_id = ?",
        [s["eval_id"]],
    ).to_pylist()
    assert {r["metric"] for r in rows} == {f"{f}.{k}" for f in FEATURES for k in STATISTICS}
    assert all(r["checkpoint_id"] is None for r in rows)
    oa = {r["metric"]: r for r in rows if r["metric"].endswith(".oa")}
    detail = json.loads(oa["pch.oa"]["detail_json"])
    assert set(PLOT_KEYS) <= set(detail)
    assert len(detail["grid"]) == len(detail["inter_pdf"]) == 100
    assert (detail["n_ref"], detail["n_gen"]) == (len(REAL), len(REAL))
    assert detail["ref_set"] == s["ref_set"] and detail["gen_set"] == s["gen_set"]

    edges = cat.query("SELECT src_id, dst_id, stage FROM lineage").to_pylist()
    to_eval = {e["src_id"] for e in edges if e["dst_id"] == f"eval:{s['eval_id']}"}
    assert to_eval == {s["ref_set"], s["gen_set"]}
    files = [e for e in edges if e["stage"] == "metrics-set"]
    assert len(files) == 2 * len(REAL) and all(e["src_id"].startswith("file:") for e in files)

    again = _run(["--home", str(home), "metrics", str(ref), str(gen)])
    assert again["eval_id"] == s["eval_id"] and again["rows_new"] == 0
    n = cat.query("SELECT count(*) AS n FROM eval_results").to_pylist()[0]["n"]
    assert n == 4 * len(FEATURES)
    runs = cat.query("SELECT status FROM runs WHERE command = 'metrics'").to_pylist()
    assert [r["status"] for r in runs] == ["completed", "completed"]

    # the report draws a plot from the catalog alone
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from musicdata.metrics.plots import plot_metric

    with cat.read() as con:
        details = plot_details(con, s["eval_id"])
    assert [d["feature"] for d in details] == sorted(FEATURES)
    fig, ax = plt.subplots()
    plot_metric(details[0], ax)
    assert len(ax.lines) == 2
    plt.close(fig)


def test_transposed_set_moves_only_pitch_class_features(sets: tuple[Path, Path]) -> None:
    ref, gen = sets
    self_eval = _run(["metrics", str(ref), str(ref), "--no-record"])
    moved = _run(["metrics", str(ref), str(gen), "--no-record"])
    assert self_eval["recorded"] is False and self_eval["home"] is None
    assert isinstance(self_eval["seconds"], float) and "features" in self_eval["timings"]
    for name in TRANSPOSITION_INVARIANT:
        a, b = self_eval["features"][name], moved["features"][name]
        assert b["oa"] == pytest.approx(a["oa"]) and b["kld"] == pytest.approx(a["kld"]), name
    for name in ("pch", "pctm", "pch_seg"):  # pieces in other keys: farther, less alike
        a, b = self_eval["features"][name], moved["features"][name]
        assert b["inter_mean"] > 1.1 * a["inter_mean"], name
        assert b["kld"] > 2 * a["kld"], name
        assert b["intra_ref_mean"] == pytest.approx(a["intra_ref_mean"]), name


def test_metrics_rejects_a_missing_folder(tmp_path: Path, sets: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["metrics", str(sets[0]), str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "is not a folder" in " ".join(result.output.split())
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["metrics", str(empty), str(sets[1]), "--no-record"])
    assert result.exit_code == 2
    assert "needs at least 2" in " ".join(result.output.split())
