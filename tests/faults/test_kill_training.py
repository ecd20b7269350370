"""Kill -9 mid-checkpoint (issue 18): training SIGKILLed while a checkpoint file is half written
(`train.mid_checkpoint`, the temp file cut to half), then resumed: the final checkpoint is
bitwise the uninterrupted run's and no temp file is left in the run folder. The kills after a
step and after a whole checkpoint are tests/models/test_train.py's and test_train_stage.py's."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

from musicdata.models.train.__main__ import main
from musicdata.schemas.manifest import ShardManifest
from tests.faults.state import killed, run, temp_debris
from tests.models.conftest import make_manifest

# 6 steps, a checkpoint every 2: the hook is passed twice per checkpoint (safetensors, JSON).
ARGS = ["--model", "flat", "--preset", "debug", "--steps", "6", "--batch-size", "2"]
ARGS += ["--train", "ckpt_every=2", "--train", "eval_every=0", "--train", "warmup_steps=2"]
PASSES = 6


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> ShardManifest:
    m = make_manifest("remi", tmp_path_factory.mktemp("remi-shards"))
    m.save(Path(m.root) / "manifest.json")
    return m


@pytest.fixture(scope="module")
def straight(manifest: ShardManifest, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("straight")
    assert (
        main(["--manifest", str(Path(manifest.root) / "manifest.json"), "--out", str(out), *ARGS])
        == 0
    )
    return (out / "step-00000006.safetensors").read_bytes()


def _kill_and_resume(manifest: ShardManifest, out: Path, nth: int, straight: bytes) -> None:
    man = str(Path(manifest.root) / "manifest.json")
    cmd = [sys.executable, "-m", "musicdata.models.train", "--manifest", man, "--out", str(out)]
    p = run([*cmd, *ARGS], env={"MUSICDATA_FAULT": f"train.mid_checkpoint:{nth}"})
    assert killed(p), p.stderr[-2000:]
    assert temp_debris(out), "the kill should leave the half-written temp file"
    assert main(["--manifest", man, "--out", str(out), "--resume", "auto", *ARGS]) == 0
    assert temp_debris(out) == [], f"a killed checkpoint save left {temp_debris(out)}"
    assert (out / "step-00000006.safetensors").read_bytes() == straight


def test_killed_mid_checkpoint_resumes_bitwise(
    manifest: ShardManifest, straight: bytes, tmp_path: Path
) -> None:
    _kill_and_resume(manifest, tmp_path / "run", 3, straight)  # step 4's safetensors, torn


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_mid_checkpoint_at_a_seeded_pass(
    manifest: ShardManifest, straight: bytes, tmp_path: Path, seed: int
) -> None:
    nth = random.Random(seed).randint(1, PASSES)
    _kill_and_resume(manifest, tmp_path / "run", nth, straight)
