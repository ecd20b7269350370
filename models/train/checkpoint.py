"""Checkpoints: safetensors for every tensor, a JSON file beside it for everything else.

`step-00000100.safetensors` holds the model ("model/<name>") and optimizer state tensors
("optim/<param index>/<key>"); `step-00000100.json` holds the model registry name and config,
the train config, the manifest hash, optimizer scalars and param groups, scheduler and sampler
positions, and the RNG states of every rank (base64 / ints), plus the safetensors file's sha256.
Both are written atomically (temp name, fsync, rename) and the JSON goes last, so a JSON on disk
means a complete checkpoint. Loading never unpickles: safetensors and json only (DESIGN rule 6).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from musicdata.schemas.faults import fault

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "capture_rng",
    "checkpoint_paths",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "prune_checkpoints",
    "restore_rng",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
_STEP = re.compile(r"^step-(\d{8})\.json$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(final: Path, write: Callable[[Path], None]) -> None:
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        fault("train.mid_checkpoint", torn=tmp)  # the kill -9 tests (docs/faults.md)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(final)
        _fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(safetensors, json) of a checkpoint named by either file or their common stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


# ---- RNG states, JSON-safe --------------------------------------------------------------------


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def capture_rng() -> dict[str, Any]:
    """torch CPU/CUDA, numpy and python RNG states of this process as JSON-safe values."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": _b64(torch.get_rng_state()),
        "numpy": {
            "name": str(np_state[0]),
            "keys": base64.b64encode(np.asarray(np_state[1], dtype=np.uint32).tobytes()).decode(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(_unb64(state["torch"]))
    n = state["numpy"]
    keys = np.frombuffer(base64.b64decode(n["keys"]), dtype=np.uint32).copy()
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])


# ---- save / load -------------------------------------------------------------------------------


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, torch.Tensor):
        assert v.numel() == 1, "only scalar tensors can go into the JSON"
        return v.item()
    return v


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
) -> tuple[Path, str]:
    """Write `path` (.safetensors + .json) atomically; returns (safetensors path, its sha256).

    `meta` (JSON-safe) is stored as is, plus the optimizer's scalars and param groups.
    """
    st_path, js_path = checkpoint_paths(path)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    # clone: tied weights share storage, which safetensors refuses; loading copies into both.
    tensors = {
        f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
    }
    doc: dict[str, Any] = {"format": CHECKPOINT_FORMAT, **meta}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in sd["state"].items():
            for key, val in st.items():
                if isinstance(val, torch.Tensor):
                    tensors[f"optim/{idx}/{key}"] = val.detach().cpu().contiguous().clone()
                else:
                    scalars.setdefault(str(idx), {})[key] = val
        groups = [{k: _jsonable(v) for k, v in g.items()} for g in sd["param_groups"]]
        doc["optimizer"] = {
            "param_groups": groups,
            "scalars": scalars,
            "class": type(optimizer).__name__,
        }
    _atomic(st_path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    digest = _sha256(st_path)
    doc["safetensors"] = {"file": st_path.name, "sha256": digest}
    text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=True) + "\n"
    _atomic(js_path, lambda tmp: tmp.write_text(text))
    return st_path, digest


class Checkpoint:
    """A loaded checkpoint: `meta` (the JSON), model tensors, and the optimizer state dict."""

    def __init__(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path) -> None:
        self.meta = meta
        self.path = path
        self.model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
        self._optim = {k[6:]: v for k, v in tensors.items() if k.startswith("optim/")}

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer state dict as torch.optim.Optimizer.load_state_dict wants it."""
        opt = self.meta.get("optimizer")
        assert opt is not None, f"{self.path} has no optimizer state (a weights-only export?)"
        state: dict[int, dict[str, Any]] = {}
        for key, val in self._optim.items():
            idx, name = key.split("/", 1)
            state.setdefault(int(idx), {})[name] = val
        for idx, vals in opt["scalars"].items():
            state.setdefault(int(idx), {}).update(vals)
        return {"state": state, "param_groups": [dict(g) for g in opt["param_groups"]]}


def load_checkpoint(path: str | Path, *, map_location: str = "cpu") -> Checkpoint:
    """Read a checkpoint (either file or the stem), checking the safetensors sha256; no pickle."""
    st_path, js_path = checkpoint_paths(path)
    if not js_path.is_file() or not st_path.is_file():
        msg = (
            f"checkpoint {st_path.with_suffix('')} is incomplete: need both {st_path.name} and "
            f"{js_path.name}; pick another one (latest_checkpoint finds complete ones)"
        )
        raise FileNotFoundError(msg)
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{js_path} is not a checkpoint's JSON ({exc}); {_NO_PICKLE}"
        raise ValueError(msg) from exc
    assert isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT, (
        f"{js_path}: checkpoint format {meta.get('format')} is not {CHECKPOINT_FORMAT}"
    )
    want = meta["safetensors"]["sha256"]
    got = _sha256(st_path)
    if got != want:
        msg = f"{st_path} has sha256 {got} but {js_path.name} says {want}: the file is damaged"
        raise ValueError(msg)
    _refuse_non_safetensors(st_path)
    return Checkpoint(meta, load_file(str(st_path), device=map_location), st_path)


_NO_PICKLE = (
    "checkpoints are safetensors + JSON and are never unpickled (pickle runs code on load); "
    "convert a trusted torch.save file with safetensors.torch.save_file"
)


def _refuse_non_safetensors(path: Path) -> None:
    """Refuse a file that is not safetensors (e.g. a torch.save zip or a raw pickle renamed)
    before any parser reads it, with a message that says what it is."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        msg = f"{path} is a pickle (torch.save) file, not safetensors: refused; {_NO_PICKLE}"
        raise ValueError(msg)
    if len(head) < 9 or head[8:9] != b"{":
        msg = f"{path} is not a safetensors file (no safetensors header): refused; {_NO_PICKLE}"
        raise ValueError(msg)


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, json path) of the complete checkpoints in a folder, by step."""
    d = Path(directory)
    found = []
    for js in d.glob("step-*.json") if d.is_dir() else []:
        m = _STEP.match(js.name)
        if m and js.with_suffix(".safetensors").is_file():
            found.append((int(m.group(1)), js))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The safetensors path of the newest complete checkpoint in `directory`, or None."""
    found = list_checkpoints(directory)
    return found[-1][1].with_suffix(".safetensors") if found else None


def prune_checkpoints(
    directory: str | Path, keep_last: int, *, keep: set[int] = frozenset()
) -> None:
    """Delete all but the newest `keep_last` checkpoints (JSON first: never a JSON without data),
    and the temp files of a save a kill interrupted (called after every save, by the one writer)."""
    for tmp in Path(directory).glob(".step-*.tmp"):
        tmp.unlink(missing_ok=True)
    if keep_last <= 0:
        return
    found = list_checkpoints(directory)
    for step, js in found[:-keep_last]:
        if step in keep:
            continue
        js.unlink(missing_ok=True)
        js.with_suffix(".safetensors").unlink(missing_ok=True)


def load_model(
    path: str | Path,
    *,
    device: str = "cpu",
    builder: Callable[[str, dict[str, Any]], nn.Module] | None = None,
) -> nn.Module:
    """Rebuild the model a checkpoint was trained as (registry name + config) with its weights.

    builder(name, config_dict) -> module; by default the registry's config and model classes.
    """
    ckpt = load_checkpoint(path, map_location=device)
    name, cfg = ckpt.meta["model_name"], ckpt.meta["model_config"]
    if builder is None:
        from musicdata.models.builders import MODELS

        if name not in MODELS:
            msg = f"{ckpt.path}: model {name!r} is not in the registry ({', '.join(MODELS)})"
            raise KeyError(msg)
        spec = MODELS[name]
        model = spec.model_cls(spec.config_cls.from_dict(cfg))
    else:
        model = builder(name, cfg)
    model.load_state_dict(ckpt.model_state, strict=True)
    return model.to(device).eval()
