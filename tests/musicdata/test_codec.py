"""EnCodec audio tokens: weights resolution offline, encode/decode shapes, codec shards in the
catalog (token_stats, lineage, reruns, crash leftovers), and the CLI's refusal without weights."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from musicdata.audio.codec import (
    CodecUnavailable,
    codec_settings,
    decode_codes,
    encode_audio,
    load_model,
)
from musicdata.schemas.config import CodecConfig
from musicdata.stages.codec import read_codes, tokenize_codec
from musicdata.stages.ingest import ingest_paths
from musicdata.store import read_shard_metadata
from musicdata.testing.audio import render_midi
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES

# Hub ids that exist nowhere, so no test depends on what this machine's hub cache holds.
NO_WEIGHTS = CodecConfig(model_32k="nobody/no-such-encodec-32k", model_24k="nobody/no-such-24k")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may download anything."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_offline_without_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CodecUnavailable, match="--allow-untrained"):
        codec_settings("encodec-32k", NO_WEIGHTS, allow_untrained=False)
    missing = CodecConfig(model_24k=str(tmp_path / "nothing-here"))
    with pytest.raises(CodecUnavailable, match="nothing-here"):
        codec_settings("encodec-24k", missing, allow_untrained=False)
    with pytest.raises(ValueError, match="unknown codec"):
        codec_settings("encodec-48k", NO_WEIGHTS, allow_untrained=True)


def test_settings_follow_the_papers() -> None:
    s32 = codec_settings("encodec-32k", NO_WEIGHTS, allow_untrained=True)
    assert (s32.sample_rate, s32.frame_rate, s32.n_codebooks, s32.codebook_size) == (
        32000,
        50,
        4,
        2048,
    )
    assert not s32.trained
    for bw, k in ((1.5, 2), (6.0, 8), (24.0, 32)):
        cfg = dataclasses.replace(NO_WEIGHTS, bandwidth_24k=bw)
        s24 = codec_settings("encodec-24k", cfg, allow_untrained=True)
        assert (s24.sample_rate, s24.frame_rate, s24.n_codebooks) == (24000, 75, k)
    with pytest.raises(ValueError, match="bandwidth_24k"):
        bad = dataclasses.replace(NO_WEIGHTS, bandwidth_24k=5.0)
        codec_settings("encodec-24k", bad, allow_untrained=True)
    ten = dataclasses.replace(NO_WEIGHTS, chunk_s=10.0)
    other = codec_settings("encodec-32k", ten, allow_untrained=True)
    assert other.config_hash != s32.config_hash


def test_encode_chunks_batches_and_decodes() -> None:
    cfg = dataclasses.replace(NO_WEIGHTS, chunk_s=0.2, batch_size=2)
    s = codec_settings("encodec-32k", cfg, allow_untrained=True)
    model = load_model(s)
    assert load_model(s) is model  # once per process
    audio = render_midi(FIXTURES / "folk_6_8.mid", 32000)[: 32000 + 123]
    codes = encode_audio(model, audio, s)
    assert codes.dtype == np.int16 and codes.shape == (4, int(np.ceil(len(audio) / 640)))
    assert codes.min() >= 0 and codes.max() < 2048 and len(np.unique(codes)) > 1
    # batching does not change the codes (whole chunks are never padded)
    one = encode_audio(model, audio, dataclasses.replace(s, batch_size=1))
    assert np.array_equal(one, codes)
    back = decode_codes(model, codes)
    assert back.shape == (codes.shape[1] * 640,) and np.isfinite(back).all()


def test_weights_from_a_local_folder(tmp_path: Path) -> None:
    """A local folder (config.json + safetensors) is used as trained weights, offline."""
    untrained = codec_settings("encodec-32k", NO_WEIGHTS, allow_untrained=True)
    load_model(untrained).save_pretrained(tmp_path / "enc32")
    cfg = CodecConfig(model_32k=str(tmp_path / "enc32"))
    s = codec_settings("encodec-32k", cfg, allow_untrained=False)
    assert s.trained and s.weights == str(tmp_path / "enc32")
    x = np.sin(np.arange(16000) / 7).astype(np.float32) * 0.2
    assert np.array_equal(
        encode_audio(load_model(s), x, s), encode_audio(load_model(untrained), x, untrained)
    )


def test_codec_shards_in_the_catalog(ws: Workspace, tmp_path: Path) -> None:
    ws = dataclasses.replace(ws, config=dataclasses.replace(ws.config, codec=NO_WEIGHTS))
    d = tmp_path / "rec"
    d.mkdir()
    sf.write(d / "folk.wav", render_midi(FIXTURES / "folk_6_8.mid", 22050)[: 22050 * 3], 22050)
    six = np.stack([np.sin(np.arange(8000) / (5 + c)) * 0.1 for c in range(6)], axis=1)
    sf.write(d / "six.wav", six.astype(np.float32), 8000)
    (d / "broken.wav").write_bytes(b"RIFF0000WAVEfmt ")
    s = ingest_paths(ws, [d], run_id="r1", transcribe=False)
    assert (s.recordings, s.quarantined) == (2, 1)

    out = tokenize_codec(ws, "encodec-32k", run_id="c1", allow_untrained=True)
    assert (out.tokenized, out.quarantined, out.shards_written, out.trained) == (2, 0, 1, False)
    # one token per frame (a compound step of K codes), as for every compound encoding
    assert out.frames == 150 + 50 and out.tokens == out.frames
    stats = ws.catalog.query(
        "SELECT encoding, sum(pieces) AS pieces, sum(tokens) AS tokens, any_value(vocab_size) AS v "
        "FROM token_stats WHERE encoding = 'encodec-32k' GROUP BY encoding"
    ).to_pylist()
    assert stats == [{"encoding": "encodec-32k", "pieces": 2, "tokens": out.tokens, "v": 2048}]
    # the in-place shard views cover codec shards, and agree with the catalog's token counts
    lengths = ws.catalog.query(
        "SELECT sum(tokens) AS tokens FROM token_length_stats WHERE encoding = 'encodec-32k'"
    ).to_pylist()
    assert lengths == [{"tokens": out.tokens}]
    enc = ws.catalog.query("SELECT kind, config_json FROM encodings").to_pylist()[0]
    assert enc["kind"] == "codec" and json.loads(enc["config_json"])["trained"] is False

    (path,) = sorted(Path(out.shard_dir).rglob("*.parquet"))
    meta = read_shard_metadata(path)
    assert meta["trained"] == "false" and meta["frame_rate"] == "50"
    assert meta["n_codebooks"] == "4" and meta["sample_rate"] == "32000"
    assert pq.read_schema(path).field("tokens").type.value_type.list_size == 4
    codes = read_codes(path)
    assert sorted(c.shape for c in codes.values()) == [(4, 50), (4, 150)]
    edges = ws.catalog.query(
        "SELECT src_id FROM lineage WHERE stage = 'tokenize:encodec-32k'"
    ).to_pylist()
    assert sum(e["src_id"].startswith("audio:") for e in edges) == 2

    # rerun: nothing to do; a crash leftover (temp file, foreign part) is cleaned up
    stray = path.parent / ".part-00001.parquet.abcd1234.tmp"
    stray.write_bytes(b"half a shard")
    foreign = path.parent / "part-00007.parquet"
    foreign.write_bytes(b"not parquet")
    again = tokenize_codec(ws, "encodec-32k", run_id="c2", allow_untrained=True)
    assert (again.tokenized, again.skipped, again.shards_written) == (0, 2, 0)
    assert not stray.exists() and not foreign.exists() and path.exists()


def test_cli_refuses_codec_without_weights(tmp_path: Path) -> None:
    """Before any work (and before Prefect starts), with the setting and the flag named."""
    import subprocess
    import sys

    home = tmp_path / "h"
    home.mkdir()
    (home / "musicdata.toml").write_text(f'[codec]\nmodel_32k = "{NO_WEIGHTS.model_32k}"\n')
    with Workspace.open(home).catalog.write():  # a real, empty workspace (not a bare folder)
        pass
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicdata.cli",
            "--home",
            str(home),
            "tokenize",
            "-e",
            "encodec-32k",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
    )
    assert res.returncode == 2
    assert "codec.model_32k" in res.stderr and "--allow-untrained" in res.stderr
