"""EnCodec audio tokens via transformers' EncodecModel (the `encodec` package does not import with
current torch; see docs/environment.md).

`encodec-32k` is MusicGen's codec (32 kHz mono, 4 codebooks x 2048, 50 Hz); `encodec-24k` is the
24 kHz model at a selectable bandwidth. Weights come from a local folder or a hub id in `[codec]`,
resolved once in the parent (honouring HF_HUB_OFFLINE); workers load that local folder only.
Without weights the stage refuses to run unless untrained weights are allowed explicitly: then the
model is built from the real architecture with a fixed seed, and everything it writes says
`trained = false`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicdata.schemas.config import CodecConfig, config_hash

CODEC_VERSION = 1  # bump when chunking or resampling changes the codes
UNTRAINED_CODEBOOK_STD = 0.03  # untrained codebooks: random vectors near the encoder's output scale

# Architectures (config.json of facebook/encodec_32khz and facebook/encodec_24khz), used to build
# an untrained model offline; with weights, the weights' own config.json is used.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "encodec-32k": {
        "sampling_rate": 32000,
        "target_bandwidths": [2.2],
        "num_filters": 64,
        "upsampling_ratios": [8, 5, 4, 4],
        "codebook_size": 2048,
        "use_causal_conv": False,
        "use_conv_shortcut": False,
        "normalize": False,
        "audio_channels": 1,
        "chunk_length_s": None,
        "overlap": None,
    },
    "encodec-24k": {
        "sampling_rate": 24000,
        "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
        "num_filters": 32,
        "upsampling_ratios": [8, 5, 4, 2],
        "codebook_size": 1024,
        "use_causal_conv": True,
        "use_conv_shortcut": True,
        "normalize": False,
        "audio_channels": 1,
        "chunk_length_s": None,
        "overlap": None,
    },
}
CODECS = tuple(ARCHITECTURES)


class CodecUnavailable(RuntimeError):
    """No weights for a codec and untrained weights were not allowed."""


@dataclass(frozen=True)
class CodecSettings:
    """Everything that decides the codes; hashed into the encoding's config hash."""

    name: str
    weights: str  # local folder with config.json + weights, or "" (untrained)
    source: str  # what [codec] named (hub id or folder)
    trained: bool
    sample_rate: int
    frame_rate: int
    hop_length: int
    n_codebooks: int
    codebook_size: int
    bandwidth: float
    chunk_s: float
    seed: int
    batch_size: int  # execution only (not hashed)

    @property
    def config_hash(self) -> str:
        params = {k: v for k, v in asdict(self).items() if k not in ("weights", "batch_size")}
        return config_hash({"codec": params, "version": CODEC_VERSION})

    @property
    def chunk_samples(self) -> int:
        """Chunk length rounded down to whole frames, so chunk codes concatenate exactly."""
        return max(1, int(self.chunk_s * self.sample_rate) // self.hop_length) * self.hop_length


def resolve_weights(source: str) -> Path | None:
    """A local folder holding the codec's config.json and weights, or None."""
    if not source:
        return None
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            return None
        if not any(local.glob("*.safetensors")):
            msg = (
                f"{local} holds no *.safetensors weights: pickle weights (pytorch_model.bin, "
                "*.pt) are never loaded, since unpickling runs code; convert them with "
                "safetensors in a trusted environment"
            )
            raise CodecUnavailable(msg)
        return local
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(
            source,
            allow_patterns=["config.json", "*.safetensors", "preprocessor_config.json"],
            local_files_only=offline,
        )
    except Exception:  # noqa: BLE001 - hub errors are many (offline, missing repo, network); all mean "no weights"
        return None
    path = Path(path)
    return path if (path / "config.json").exists() else None


def codec_settings(name: str, cfg: CodecConfig, *, allow_untrained: bool) -> CodecSettings:
    """Resolve weights for `name` (in the parent process) and fix every setting of the stage."""
    if name not in ARCHITECTURES:
        msg = f"unknown codec {name!r}; known: {', '.join(CODECS)}"
        raise ValueError(msg)
    source = cfg.model_32k if name == "encodec-32k" else cfg.model_24k
    weights = resolve_weights(source)
    if weights is None and not allow_untrained:
        key = "model_32k" if name == "encodec-32k" else "model_24k"
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        msg = (
            f"no EnCodec weights for {name}: {source!r} is neither a local folder with "
            f"config.json + model.safetensors nor a hub id available here{offline}. Set "
            f"codec.{key} in musicdata.toml to a local folder, download it once online, or pass "
            "--allow-untrained "
            "(random weights, recorded as untrained; for tests and demos only)"
        )
        raise CodecUnavailable(msg)
    arch = dict(ARCHITECTURES[name])
    if weights is not None:
        import json

        arch.update(json.loads((weights / "config.json").read_text()))
    sr = int(arch["sampling_rate"])
    hop = int(np.prod(arch["upsampling_ratios"]))
    frame_rate = math.ceil(sr / hop)
    bandwidth = float(arch["target_bandwidths"][0]) if name == "encodec-32k" else cfg.bandwidth_24k
    if bandwidth not in [float(b) for b in arch["target_bandwidths"]]:
        msg = (
            f"codec.bandwidth_24k = {bandwidth} is not one of {arch['target_bandwidths']} "
            f"for {name}"
        )
        raise ValueError(msg)
    bits = math.log2(int(arch["codebook_size"]))
    n_q = int(1000 * bandwidth // (frame_rate * bits))
    return CodecSettings(
        name=name,
        weights=str(weights) if weights else "",
        source=source,
        trained=weights is not None,
        sample_rate=sr,
        frame_rate=frame_rate,
        hop_length=hop,
        n_codebooks=max(1, n_q),
        codebook_size=int(arch["codebook_size"]),
        bandwidth=bandwidth,
        chunk_s=cfg.chunk_s,
        seed=cfg.seed,
        batch_size=max(1, cfg.batch_size),
    )


_MODELS: dict[tuple, Any] = {}  # per worker process


def load_model(s: CodecSettings) -> Any:
    """The codec model, loaded once per process (from the local folder, or untrained + seeded)."""
    key = (s.name, s.weights, s.seed)
    if key in _MODELS:
        return _MODELS[key]
    import torch
    from transformers import EncodecConfig, EncodecModel

    if s.weights:
        model = EncodecModel.from_pretrained(s.weights, local_files_only=True, use_safetensors=True)
    else:
        torch.manual_seed(s.seed)
        model = EncodecModel(EncodecConfig(**ARCHITECTURES[s.name]))
        g = torch.Generator().manual_seed(s.seed)
        with torch.no_grad():
            for layer in model.quantizer.layers:
                emb = layer.codebook.embed
                emb.copy_(torch.randn(emb.shape, generator=g) * UNTRAINED_CODEBOOK_STD)
    model.eval()
    _MODELS[key] = model
    return model


def encode_audio(model: Any, audio: np.ndarray, s: CodecSettings) -> np.ndarray:
    """Mono audio at the codec's rate -> codes [K, T] int16, T = ceil(len / hop).

    Whole chunks (equal length) go through the model `batch_size` at a time; the shorter last
    chunk goes alone, so no chunk is ever padded and the codes do not depend on the batching.
    """
    import torch

    chunk = s.chunk_samples
    full = len(audio) // chunk
    pieces: list[np.ndarray] = []
    with torch.inference_mode():
        for b in range(0, full, s.batch_size):
            n = min(s.batch_size, full - b)
            x = torch.from_numpy(audio[b * chunk : (b + n) * chunk].reshape(n, 1, chunk))
            codes = model.encode(x, bandwidth=s.bandwidth).audio_codes[0]  # [n, K, chunk/hop]
            pieces.extend(codes[i].numpy() for i in range(n))
        tail = audio[full * chunk :]
        if len(tail):
            x = torch.from_numpy(np.ascontiguousarray(tail).reshape(1, 1, -1))
            pieces.append(model.encode(x, bandwidth=s.bandwidth).audio_codes[0, 0].numpy())
    if not pieces:
        return np.zeros((s.n_codebooks, 0), np.int16)
    codes = np.concatenate(pieces, axis=1)
    assert codes.shape[0] == s.n_codebooks, f"{codes.shape[0]} codebooks, expected {s.n_codebooks}"
    return codes.astype(np.int16)


def decode_codes(model: Any, codes: np.ndarray) -> np.ndarray:
    """Codes [K, T] -> mono float32 audio at the codec's rate (T * hop samples)."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(codes, np.int64))[None, None]  # [1, 1, K, T]
        audio = model.decode(x, [None])[0]
    return audio[0, 0].numpy().astype(np.float32)


@dataclass(frozen=True)
class CodecJob:
    recording_id: str
    audio_path: str
    settings: CodecSettings


def encode_recording(job: CodecJob) -> dict[str, Any]:
    """Worker entry: decode, downmix, resample, chunk and encode one recording."""
    from musicdata.audio.decode import load_mono

    s = job.settings
    model = load_model(s)
    audio = load_mono(job.audio_path, s.sample_rate)
    if len(audio) == 0:
        return {
            "piece_id": job.recording_id,
            "status": "quarantined",
            "reason": "no_samples",
            "detail": "no audio frames to encode",
        }
    codes = encode_audio(model, audio, s)
    return {"piece_id": job.recording_id, "status": "ok", "codes": codes}
