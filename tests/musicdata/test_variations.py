"""Cadenza wired end to end on the real fixture MIDI: ingest, tokenize pertok, train a debug
Composer and Performer through the train stage, then variations of a fixture file and prior
samples through the variations stage and the CLI: valid MIDI files, generation rows, lineage to
both checkpoints and to the input file, figures in eval_results, idempotent reruns, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import symusic
from typer.testing import CliRunner

from musicdata.catalog.lineage import walk
from musicdata.cli import app
from musicdata.fsutil import sha256_file
from musicdata.models import api
from musicdata.schemas.config import Config, IngestConfig, SplitConfig, TokenizeConfig
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.stages.train import train
from musicdata.stages.variations import note_similarity, note_table, prior, variations
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES

INPUT = FIXTURES / "folk_6_8.mid"
FIGURES = {
    "pc_similarity",
    "onset_overlap",
    "novelty",
    "reconstruction_accuracy",
    "kl_total",
    "active_units",
    "performer_kl_velocity",
    "performer_kl_microtiming",
    "generated_kl_velocity",
    "generated_kl_microtiming",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str, str]:
    """The fixture MIDI ingested and tokenized as pertok; a debug Composer and Performer trained
    for a few steps through the train stage (tests/conftest.py keeps torch to one thread)."""
    root = tmp_path_factory.mktemp("variations") / "home"
    root.mkdir()
    cfg = Config(
        ingest=IngestConfig(workers=2, timeout_s=20),
        tokenize=TokenizeConfig(workers=2),
        split=SplitConfig(validation=0.3, test=0.3),
    )
    ws = Workspace(root=root.resolve(), config=cfg)
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encodings(ws, ["pertok"], run_ids={"pertok": "t"})
    comp = train(ws, api, model="cadenza", encoding="pertok", preset="debug", steps=6)
    perf = train(ws, api, model="cadenza-performer", encoding="pertok", preset="debug", steps=6)
    assert comp.checkpoints >= 1 and perf.checkpoints >= 1, "debug training wrote no checkpoint"
    return ws, comp.train_run_id, perf.train_run_id


def _rows(ws: Workspace, sql: str) -> list[dict]:
    return ws.catalog.query(sql).to_pylist()


def _upstream(ws: Workspace, node: str) -> set[str]:
    with ws.catalog.read() as con:
        return {e.src_id for e in walk(con, node, "upstream")}


def test_variations_of_a_fixture_file(trained: tuple[Workspace, str, str]) -> None:
    ws, crun, prun = trained
    s = variations(ws, api, crun, prun, INPUT, 3, temperature=1.0, spread=1.0, seed=1)
    assert s.generated + s.undecodable == 3 and s.generated >= 1
    assert set(s.to_dict()) >= FIGURES, f"missing figures: {FIGURES - set(s.to_dict())}"
    assert 0 <= s.pc_similarity <= 1 and 0 <= s.onset_overlap <= 1 and 0 <= s.novelty <= 1
    assert 0 <= s.reconstruction_accuracy <= 1 and s.kl_total >= 0 and s.performer_kl_velocity >= 0
    assert len(s.kl_per_dim) == 8 and 0 <= s.active_units <= 8  # the debug latent

    gens = _rows(ws, f"SELECT * FROM generations WHERE run_id = '{s.run_id}' ORDER BY sample_index")
    assert [g["sample_index"] for g in gens] == [0, 1, 2]
    assert all(g["train_run_id"] == crun for g in gens)
    out_dir = Path(s.out_dir)
    assert out_dir.parent.name == crun and out_dir.name.startswith("variations-")
    for g in gens:
        assert (g["path"] is None) == (g["error"] is not None)
        if g["path"]:
            path = ws.root / g["path"]
            assert path.parent == out_dir and sha256_file(path) == g["sha256"]
            assert path.read_bytes()[:4] == b"MThd"
            # the file may hold fewer notes than the decoded score counted (MIDI cannot keep
            # every note an undertrained model writes), never more
            assert 0 < symusic.Score(str(path)).note_num() <= g["n_notes"]
        params = json.loads(g["params_json"])
        assert params["spread"] == 1.0 and params["input_sha256"] == sha256_file(INPUT)

    # lineage: each piece comes from both checkpoints and from the input file; the Composer's
    # reaches back through its train run to the shards and pieces
    up = _upstream(ws, f"generated:{gens[0]['generation_id']}")
    assert f"checkpoint:{s.composer_checkpoint}" in up
    assert f"checkpoint:{s.performer_checkpoint}" in up
    assert f"file:{sha256_file(INPUT)}" in up
    assert {"train_run", "shard", "piece"} <= {n.split(":")[0] for n in up}

    evals = {
        r["metric"]: r
        for r in _rows(ws, f"SELECT * FROM eval_results WHERE eval_id = '{s.eval_id}'")
    }
    assert set(evals) >= FIGURES
    assert json.loads(evals["kl_total"]["detail_json"])["kl_per_dim"] == s.kl_per_dim
    assert f"checkpoint:{s.performer_checkpoint}" in _upstream(ws, f"eval:{s.eval_id}")

    again = variations(ws, api, crun, prun, INPUT, 3, temperature=1.0, spread=1.0, seed=1)
    assert again.recorded == 0 and again.out_dir == s.out_dir, "a rerun records nothing twice"
    n = _rows(ws, f"SELECT count(*) AS n FROM generations WHERE run_id = '{s.run_id}'")[0]["n"]
    assert n == 3


def test_prior_samples_and_cli(trained: tuple[Workspace, str, str]) -> None:
    ws, crun, prun = trained
    s = prior(ws, api, crun, prun, 2, seed=3, max_new_tokens=24, evaluate=False)
    assert s.generated + s.undecodable == 2 and Path(s.out_dir).name.startswith("prior-")
    assert "pc_similarity" not in s.to_dict() and "eval_id" not in s.to_dict()
    gens = _rows(ws, f"SELECT * FROM generations WHERE run_id = '{s.run_id}'")
    assert len(gens) == 2
    up = _upstream(ws, f"generated:{gens[0]['generation_id']}")
    assert f"checkpoint:{s.performer_checkpoint}" in up
    direct = _rows(
        ws, f"SELECT src_id FROM lineage WHERE dst_id = 'generated:{gens[0]['generation_id']}'"
    )
    assert {r["src_id"].split(":")[0] for r in direct} == {"checkpoint"}

    base = ["--home", str(ws.root), "variations", "--run", crun, "--performer-run", prun]
    res = CliRunner().invoke(app, [*base, "--input", str(INPUT), "--n", "2", "--no-eval", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["generated"] + out["undecodable"] == 2 and out["input_sha256"] == sha256_file(INPUT)
    both = CliRunner().invoke(app, [*base, "--input", str(INPUT), "--prior"])
    assert both.exit_code == 2 and "--prior" in both.output


def test_refusals(trained: tuple[Workspace, str, str]) -> None:
    ws, crun, prun = trained
    with pytest.raises(ValueError, match="not 'cadenza'"):
        variations(ws, api, prun, prun, INPUT, 1)
    with pytest.raises(ValueError, match="cannot encode"):
        variations(ws, api, crun, prun, FIXTURES / "random_bytes.mid", 1, evaluate=False)
    with pytest.raises(ValueError, match="no such MIDI file"):
        variations(ws, api, crun, prun, FIXTURES / "missing.mid", 1)


def test_note_similarity_figures() -> None:
    """Identical notes: similarity 1, novelty 0; transposed by a tritone: the same onsets, new
    notes (all but where another voice already sounds the transposed pitch), other pitch classes."""
    ref = note_table(symusic.Score(str(FIXTURES / "chorale_4_4.mid")))
    same = note_similarity(ref, ref)
    assert same == {"pc_similarity": 1.0, "onset_overlap": 1.0, "novelty": 0.0}
    moved = ref.copy()
    moved[:, 1] += 6
    far = note_similarity(moved, ref)
    assert far["onset_overlap"] == 1.0 and far["novelty"] > 0.9 and far["pc_similarity"] < 0.9
