"""Checkpoints: safetensors + JSON, atomic, exact round trip, never unpickled."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from musicdata.models.builders import build
from musicdata.models.train.checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from musicdata.schemas.manifest import ShardManifest


def _trained(manifest: ShardManifest) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict]:
    torch.manual_seed(0)
    model = build("flat", "debug", manifest, dropout=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    batch = {"tokens": torch.randint(4, 50, (2, 17)), "mask": torch.ones(2, 17, dtype=torch.bool)}
    for _ in range(2):
        loss, _ = model.loss(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt, batch


def _meta(model: torch.nn.Module, step: int) -> dict:
    return {"step": step, "model_name": "flat", "model_config": model.cfg.to_dict(), "rng": []}


def test_round_trip_continues_bitwise(remi_manifest: ShardManifest, tmp_path: Path) -> None:
    model, opt, batch = _trained(remi_manifest)
    st, digest = save_checkpoint(tmp_path / "step-00000002", model, opt, _meta(model, 2))
    assert st.name == "step-00000002.safetensors" and len(digest) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000002.json",
        "step-00000002.safetensors",
    ], "no temp files left behind"
    doc = json.loads((tmp_path / "step-00000002.json").read_text())
    assert doc["safetensors"]["sha256"] == digest and doc["model_name"] == "flat"

    ckpt = load_checkpoint(st)
    torch.manual_seed(123)
    other = build("flat", "debug", remi_manifest, dropout=0.1)
    other.load_state_dict(ckpt.model_state)
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3, betas=(0.9, 0.95))
    opt2.load_state_dict(ckpt.optimizer_state())
    for m, o in ((model, opt), (other, opt2)):
        torch.manual_seed(7)
        loss, _ = m.loss(batch)
        loss.backward()
        o.step()
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{k} differs after one more step"


def test_load_model_rebuilds_from_registry_without_pickle(
    remi_manifest: ShardManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, opt, batch = _trained(remi_manifest)
    st, _ = save_checkpoint(tmp_path / "step-00000002", model, opt, _meta(model, 2))

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("a checkpoint load unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    again = load_model(st)
    assert not again.training
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(batch["tokens"][:, :-1]), again(batch["tokens"][:, :-1]))


def test_damaged_or_incomplete_checkpoints_are_refused(
    remi_manifest: ShardManifest, tmp_path: Path
) -> None:
    model, opt, _ = _trained(remi_manifest)
    for step in (2, 4, 6):
        save_checkpoint(tmp_path / f"step-{step:08d}", model, opt, _meta(model, step))
    (tmp_path / "step-00000006.json").unlink()  # killed between the two renames
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000004.safetensors"
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_checkpoint(tmp_path / "step-00000006.safetensors")
    st = tmp_path / "step-00000004.safetensors"
    data = bytearray(st.read_bytes())
    data[-3] ^= 0x01
    st.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(st)
    prune_checkpoints(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["step-00000004.json"]


def test_rng_states_round_trip_through_json() -> None:
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    state = json.loads(json.dumps(capture_rng()))
    want = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    torch.rand(10)
    np.random.rand(10)
    random.random()
    restore_rng(state)
    got = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2] == got[2] and want[3] == got[3]
