"""The training loop on real shards: records, schedule, evaluation, exact resume after SIGKILL."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musicdata.models.builders import MODELS, build
from musicdata.models.evaluate import evaluate_nll, generate_samples
from musicdata.models.train import TrainConfig, fit, load_model, lr_at
from musicdata.models.train.__main__ import main
from musicdata.schemas.manifest import ShardManifest
from musicdata.schemas.training import CheckpointRecord, MetricRecord

ROOT = Path(__file__).resolve().parents[2]


def _records(recs: list) -> tuple[dict[tuple[str, str], list[tuple[int, float]]], list]:
    metrics: dict[tuple[str, str], list[tuple[int, float]]] = {}
    ckpts = []
    for r in recs:
        if isinstance(r, MetricRecord):
            metrics.setdefault((r.split, r.name), []).append((r.step, r.value))
        else:
            assert isinstance(r, CheckpointRecord)
            ckpts.append(r)
    return metrics, ckpts


def test_lr_schedule_warms_up_then_follows_cosine() -> None:
    cfg = TrainConfig(steps=110, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert lr_at(1, cfg) == pytest.approx(1e-4) and lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4) and lr_at(110, cfg) == pytest.approx(1e-4)
    lrs = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_fit_flat_learns_and_records(remi_manifest: ShardManifest, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("flat", "debug", remi_manifest)
    cfg = TrainConfig(
        steps=16,
        batch_size=4,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=3,
        eval_every=8,
        eval_batches=2,
        ckpt_every=5,
        keep_last=2,
        transpose=2,
    )
    metrics, ckpts = _records(list(fit(model, remi_manifest, cfg, tmp_path, model_name="flat")))
    loss = [v for _, v in metrics[("train", "loss")]]
    assert len(loss) == 16 and all(math.isfinite(v) for v in loss)
    assert sum(loss[-4:]) / 4 < sum(loss[:4]) / 4 - 0.3, f"loss did not fall: {loss}"
    assert [s for s, _ in metrics[("validation", "nll")]] == [8, 16]
    assert metrics[("train", "lr")][2] == (3, pytest.approx(3e-3))
    assert all(v > 0 for _, v in metrics[("train", "tokens_per_s")])
    assert [(c.step, c.final) for c in ckpts] == [(5, False), (10, False), (15, False), (16, True)]
    final = Path(ckpts[-1].path)
    assert hashlib.sha256(final.read_bytes()).hexdigest() == ckpts[-1].sha256
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "step-00000015.json",
        "step-00000016.json",
    ], "keep_last=2 prunes older checkpoints"
    # the saved model evaluates exactly like the trained one, on deterministic windows
    again = load_model(ckpts[-1].path)
    a = evaluate_nll(model, remi_manifest, "validation", batch_size=4)
    b = evaluate_nll(again, remi_manifest, "validation", batch_size=4)
    assert a.mean_nll == b.mean_nll and a.tokens == b.tokens > 0
    samples = generate_samples(again, 2, 12, temperature=1.0, top_p=0.9, seed=3)
    assert [len(s) for s in samples] == [13, 13]
    assert all(
        torch.equal(x, y)
        for x, y in zip(samples, generate_samples(again, 2, 12, top_p=0.9, seed=3), strict=True)
    )
    with pytest.raises(ValueError, match="manifest"):
        other = ShardManifest.from_dict({**remi_manifest.to_dict(), "config_hash": "elsewhere"})
        list(fit(model, other, cfg, tmp_path, resume_from=tmp_path))


def test_fit_nmt_reports_per_sub_token_nll(nb_manifest: ShardManifest, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build("nmt", "debug", nb_manifest)
    cfg = TrainConfig(
        steps=2, batch_size=2, grad_accum=2, eval_every=2, eval_batches=1, ckpt_every=0
    )
    metrics, ckpts = _records(list(fit(model, nb_manifest, cfg, tmp_path, model_name="nmt")))
    for split in ("train", "validation"):
        for name in nb_manifest.sub_tokens:
            assert (split, f"nll/{name}") in metrics, (split, name)
        assert (split, "bits_per_token") in metrics
    assert [c.step for c in ckpts] == [2] and ckpts[0].final
    stats = evaluate_nll(load_model(ckpts[0].path), nb_manifest, "validation", 4, max_batches=1)
    assert stats.counts.shape == (nb_manifest.n_fields,)


ARGS = [
    "--model",
    "flat",
    "--preset",
    "debug",
    "--steps",
    "6",
    "--batch-size",
    "2",
    "--set",
    "dropout=0.1",
    "--train",
    "grad_accum=2",
    "--train",
    "transpose=3",
    "--train",
    "ckpt_every=2",
    "--train",
    "eval_every=3",
    "--train",
    "eval_batches=1",
    "--train",
    "warmup_steps=2",
]


def _final_bytes(out: Path) -> bytes:
    return (out / "step-00000006.safetensors").read_bytes()


def test_sigkill_then_resume_is_bitwise_exact(remi_manifest: ShardManifest, tmp_path: Path) -> None:
    """Killed after step 5 (its last checkpoint is step 4's), resumed: step 5 is redone and the
    final bytes equal the uninterrupted run's."""
    man = str(Path(remi_manifest.root) / "manifest.json")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["--manifest", man, "--out", str(straight), *ARGS]) == 0
    env = {**os.environ, "MUSICDATA_FAULT": "train.after_step:5", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicdata.models.train",
            "--manifest",
            man,
            "--out",
            str(killed),
            *ARGS,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "step-00000004.json").is_file()
    assert not (killed / "step-00000006.json").exists()
    assert main(["--manifest", man, "--out", str(killed), "--resume", "auto", *ARGS]) == 0
    assert _final_bytes(killed) == _final_bytes(straight)


@pytest.mark.slow
def test_ddp_two_ranks_sigkill_then_resume_is_bitwise_exact(
    remi_manifest: ShardManifest, tmp_path: Path
) -> None:
    """torchrun, 2 gloo ranks: killed after step 4's checkpoint and resumed == uninterrupted."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    man = str(Path(remi_manifest.root) / "manifest.json")

    def run(out: Path, *extra: str, fault: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MUSICDATA_FAULT": fault, "OMP_NUM_THREADS": "1"}
        cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "musicdata.models.train"]
        cmd += ["--manifest", man, "--out", str(out), *ARGS, *extra]
        return subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run(straight).returncode == 0
    assert run(killed, fault="train.after_checkpoint:2").returncode != 0
    assert (killed / "step-00000004.json").is_file()
    assert not (killed / "step-00000006.json").exists()
    done = run(killed, "--resume", "auto")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _final_bytes(killed) == _final_bytes(straight)


@pytest.mark.skipif("perceivers" not in MODELS, reason="PerceiverS is not registered yet")
def test_fit_effective_segmentation_model(tmp_path: Path, remi_manifest: ShardManifest) -> None:
    """A left-padded, Effective-Segmentation model trains and evaluates through the same loop."""
    spec = MODELS["perceivers"]
    torch.manual_seed(0)
    model = build("perceivers", "debug", remi_manifest)
    cfg = TrainConfig(steps=2, batch_size=2, eval_every=2, eval_batches=1, ckpt_every=0)
    recs = fit(
        model,
        remi_manifest,
        cfg,
        tmp_path,
        model_name="perceivers",
        segmentation=spec.segmentation,
        pad_side=spec.pad_side,
    )
    metrics, ckpts = _records(list(recs))
    assert ("validation", "nll") in metrics and ckpts[-1].final
