"""A checkpoint, codec weights or result file carrying a pickle payload is refused with a clear
error, and its payload never runs (DESIGN rule 6).

The payload is real: unpickling it creates a sentinel folder (proved first, in a subprocess). It
is then handed to every loader the project has for persisted files: checkpoints (load, resume,
evaluate and generate through the catalog), EnCodec weights, shard manifests, benchmark results.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from musicdata.models.train.checkpoint import latest_checkpoint, load_checkpoint, load_model  # noqa: E402


class Payload:
    """Unpickling this runs os.mkdir(sentinel): any loader that unpickles leaves a trace."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.sentinel,))


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD-RAN"


def _pickles(sentinel: Path, folder: Path) -> dict[str, Path]:
    """The payload as a raw pickle and as a torch.save zip (what a .pt/.bin checkpoint is)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.pkl"
    raw.write_bytes(pickle.dumps({"model": Payload(sentinel)}, protocol=4))
    zipped = folder / "torch.pt"
    torch.save({"model": Payload(sentinel)}, zipped)
    return {"raw": raw, "torch": zipped}


def test_the_payload_is_live(sentinel: Path, tmp_path: Path) -> None:
    """Without this, every refusal below would prove nothing."""
    files = _pickles(sentinel, tmp_path / "p")
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    subprocess.run([sys.executable, "-c", code, str(files["raw"])], check=True)
    assert sentinel.is_dir()


def _forged_checkpoint(folder: Path, body: Path, step: int = 1) -> Path:
    """A checkpoint pair whose .safetensors is `body` (a pickle) and whose JSON is well formed
    and names the pickle's true sha256, as a forger would write it."""
    folder.mkdir(parents=True, exist_ok=True)
    st = folder / f"step-{step:08d}.safetensors"
    st.write_bytes(body.read_bytes())
    meta = {
        "format": 1,
        "step": step,
        "model_name": "flat",
        "model_config": {},
        "manifest_hash": "x",
        "safetensors": {"file": st.name, "sha256": hashlib.sha256(st.read_bytes()).hexdigest()},
    }
    st.with_suffix(".json").write_text(json.dumps(meta))
    return st


@pytest.mark.parametrize("kind", ["raw", "torch"])
def test_checkpoint_loaders_refuse_a_pickle(kind: str, sentinel: Path, tmp_path: Path) -> None:
    body = _pickles(sentinel, tmp_path / "p")[kind]
    st = _forged_checkpoint(tmp_path / "ckpts", body)
    assert latest_checkpoint(tmp_path / "ckpts") == st  # resume would pick it
    for load in (load_checkpoint, load_model):
        with pytest.raises(ValueError, match=r"pickle.*refused"):
            load(st)
        with pytest.raises(ValueError, match=r"pickle.*refused"):
            load(st.with_suffix(""))  # the stem, as resume and evaluate name it
    assert not sentinel.exists()


def test_a_pickled_checkpoint_json_is_refused(sentinel: Path, tmp_path: Path) -> None:
    body = _pickles(sentinel, tmp_path / "p")["raw"]
    st = _forged_checkpoint(tmp_path / "ckpts", body)
    st.with_suffix(".json").write_bytes(body.read_bytes())
    with pytest.raises(ValueError, match="not a checkpoint's JSON"):
        load_checkpoint(st)
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A real workspace with a real train run (flat on remi, debug, 2 steps) and its checkpoint."""
    from musicdata.models import api
    from musicdata.stages.train import train
    from tests.musicdata.tokenized_ws import build

    ws = build(tmp_path_factory.mktemp("sec-train") / "home", ["remi"])
    s = train(ws, api, model="flat", encoding="remi", preset="debug", steps=2)
    return ws, s.train_run_id


@pytest.mark.slow  # a real train run (ingest, tokenize, 2 steps): ~15 s on an idle machine
def test_resume_evaluate_generate_refuse_a_planted_pickle(
    trained: tuple, sentinel: Path, tmp_path: Path
) -> None:
    """Resume reads the newest checkpoint in the run folder: a planted pickle there is refused.
    Evaluate and generate read the recorded checkpoint: a pickle swapped in is refused too."""
    from musicdata.models import api
    from musicdata.stages.evaluate import evaluate, generate
    from musicdata.stages.train import train
    from tests.musicdata.tokenized_ws import copy

    ws, tid = trained
    ws = copy(ws, tmp_path / "home")
    (row,) = ws.catalog.query(
        f"SELECT path FROM checkpoints WHERE train_run_id = '{tid}' ORDER BY step DESC LIMIT 1"
    ).to_pylist()
    recorded = ws.root / row["path"]
    files = _pickles(sentinel, tmp_path / "p")
    _forged_checkpoint(recorded.parent, files["torch"], step=99_999_999)
    with pytest.raises(ValueError, match=r"pickle.*refused"):
        train(ws, api, resume=tid, steps=4)
    for path in recorded.parent.glob("step-99999999.*"):
        path.unlink()
    recorded.write_bytes(files["torch"].read_bytes())
    with pytest.raises(ValueError, match="changed since recorded"):
        evaluate(ws, api, tid, split="train")
    with pytest.raises(ValueError, match="changed since recorded"):
        generate(ws, api, tid, n=1, max_new_tokens=4)
    with pytest.raises(ValueError, match="damaged"):  # its JSON still names the real sha256
        train(ws, api, resume=tid, steps=4)
    assert not sentinel.exists()


def test_codec_weights_as_pickle_are_refused(sentinel: Path, tmp_path: Path) -> None:
    """A local EnCodec folder holding pytorch_model.bin (a pickle) instead of safetensors."""
    pytest.importorskip("transformers")
    from transformers import EncodecConfig

    from musicdata.audio.codec import ARCHITECTURES, CodecUnavailable, codec_settings
    from musicdata.schemas.config import CodecConfig

    weights = tmp_path / "encodec"
    EncodecConfig(**ARCHITECTURES["encodec-32k"]).save_pretrained(weights)
    (weights / "pytorch_model.bin").write_bytes(
        _pickles(sentinel, tmp_path / "p")["torch"].read_bytes()
    )
    for allow_untrained in (False, True):  # never silently replaced by random weights either
        with pytest.raises(CodecUnavailable, match=r"no \*\.safetensors weights"):
            codec_settings(
                "encodec-32k", CodecConfig(model_32k=str(weights)), allow_untrained=allow_untrained
            )
    assert not sentinel.exists()


def test_json_loaders_refuse_pickles(sentinel: Path, tmp_path: Path) -> None:
    """Shard manifests and benchmark results are JSON; a pickle in their place is an error."""
    from musicdata.schemas.manifest import ShardManifest

    body = _pickles(sentinel, tmp_path / "p")["raw"]
    with pytest.raises((ValueError, UnicodeDecodeError)):
        ShardManifest.load(body)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import results

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "evil.json").write_bytes(body.read_bytes())
    old = results.RESULTS
    results.RESULTS = folder
    try:
        with pytest.raises((ValueError, UnicodeDecodeError)):
            results.load_all()
    finally:
        results.RESULTS = old
    assert not sentinel.exists()


def test_no_persisted_file_is_ever_unpickled() -> None:
    """The library, models and flows call no unpickling loader at all (the isolated workers'
    in-memory pipes between our own processes are not persisted files)."""
    root = Path(__file__).resolve().parents[2]
    banned = (
        "pickle.load(",
        "pickle.loads(",
        "torch.load(",
        "allow_pickle=True",
        "joblib.load(",
        "read_pickle(",
        "dill.load",
        "cloudpickle.load",
        "shelve.open(",
        "marshal.load",
    )
    hits = []
    for folder in ("musicdata", "models", "flows", "schemas"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            hits += [f"{path.relative_to(root)}: {b}" for b in banned if b in text]
    assert not hits, hits
