"""PerceiverS through the generic stages on real files: the fixture MIDI ingested, tokenized into
`performance`, trained a few debug steps, scored on the test split and sampled to MIDI, with the
catalog rows each stage writes (issue 14: "the debug presets train, generate and evaluate")."""

from __future__ import annotations

import pytest
import symusic

from musicdata.models import api
from musicdata.schemas.config import Config, IngestConfig, SplitConfig, TokenizeConfig
from musicdata.stages.evaluate import evaluate, generate
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.stages.train import train
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def perf_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The real fixture MIDI with pieces in every split, tokenized into `performance` once."""
    root = tmp_path_factory.mktemp("perceivers") / "home"
    root.mkdir()
    cfg = Config(
        ingest=IngestConfig(workers=2, timeout_s=20),
        tokenize=TokenizeConfig(workers=2),
        split=SplitConfig(validation=0.3, test=0.3),
    )
    ws = Workspace(root=root.resolve(), config=cfg)
    ingest_paths(ws, [FIXTURES], run_id="i")
    tokenize_encodings(ws, ["performance"], run_ids={"performance": "t"})
    return ws


def _rows(ws: Workspace, sql: str) -> list[dict]:
    return ws.catalog.query(sql).to_pylist()


# the baseline goes through the same generic stages; it is the slow-marked twin
@pytest.mark.parametrize(
    "model", ["perceivers", pytest.param("perceiver-ar", marks=pytest.mark.slow)]
)
def test_perceivers_train_evaluate_generate(perf_ws: Workspace, model: str) -> None:
    ws = perf_ws
    s = train(ws, api, model=model, encoding="performance", preset="debug", steps=4)
    tid = s.train_run_id
    assert s.steps == 4 and s.checkpoints >= 1 and s.n_parameters > 0
    (run,) = _rows(ws, f"SELECT * FROM train_runs WHERE train_run_id = '{tid}'")
    assert run["status"] == "completed" and run["model"] == model, run
    assert run["encoding"] == "performance", run
    losses = _rows(
        ws,
        f"SELECT step, value FROM train_metrics WHERE train_run_id = '{tid}' "
        "AND split = 'train' AND name = 'loss' ORDER BY step",
    )
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    # 390-way flat vocabulary: an untrained model starts near ln(390) = 5.97 nats
    assert all(0 < r["value"] < 8 for r in losses), losses

    e = evaluate(ws, api, tid, split="test")
    assert e.recorded == 1 and 0 < e.nll < 8, e.to_dict()
    metrics = {
        r["metric"]
        for r in _rows(ws, f"SELECT metric FROM eval_results WHERE eval_id = '{e.eval_id}'")
    }
    assert {"bits_per_token", "nll/token"} <= metrics, metrics

    g = generate(ws, api, tid, n=2, max_new_tokens=48, seed=3)
    gens = _rows(
        ws,
        "SELECT path, error, n_tokens, n_notes FROM generations "
        f"WHERE train_run_id = '{tid}' ORDER BY sample_index",
    )
    assert len(gens) == 2 and g.generated + g.undecodable == 2, gens
    for r in gens:
        assert r["n_tokens"] == 49, r  # the start token + 48 sampled
        assert (r["path"] is None) == (r["error"] is not None), r
        if r["path"]:
            path = ws.root / r["path"]
            assert path.read_bytes()[:4] == b"MThd", path
            score = symusic.Score(str(path))
            assert sum(len(t.notes) for t in score.tracks) == r["n_notes"], r


def test_paper_train_preset_follows_the_paper() -> None:
    """The family's `paper` train preset: Adam at the Noam peak of scale 0.03125 (4000 warm-up
    steps), no weight decay, no augmentation; other presets stay the shared ones."""
    from musicdata.models.perceivers import paper_lr

    for model in ("perceivers", "perceiver-ar"):
        cfg = api.train_config(model, "paper")
        assert cfg.lr == pytest.approx(paper_lr(4000)) == pytest.approx(0.03125 * 4000**-0.5)
        assert (cfg.warmup_steps, cfg.weight_decay, cfg.transpose) == (4000, 0.0, 0), cfg
        assert cfg.betas == (0.9, 0.999), cfg
        assert api.train_config(model, "debug") == api.train_config("nmt", "debug")
    assert api.train_config("nmt", "paper").lr == api.TRAIN_PRESETS["paper"]["lr"]
