"""The registry: every preset of "nmt" and "flat" builds for every shard kind it accepts."""

from __future__ import annotations

import pytest
import torch

from musicdata.models.builders import (
    MODELS,
    ModelSpec,
    build,
    build_config,
    count_parameters,
    register,
)
from musicdata.models.flat import FlatDecoder
from musicdata.models.nmt import NestedMusicTransformer
from musicdata.schemas.manifest import ShardManifest


def _manifest(encoding: str) -> ShardManifest:
    """A file-less manifest with the real vocabulary sizes (codec: MusicGen's 4 x 2048)."""
    if encoding == "encodec-32k":
        return ShardManifest(
            encoding, "h", "codec", [f"q{i}" for i in range(4)], [2048] * 4, None, []
        )
    from musicdata.encodings import get_encoding

    enc = get_encoding(encoding)
    if enc.kind == "flat":
        return ShardManifest(encoding, enc.config_hash, "flat", ["token"], [enc.vocab_size], 0, [])
    return ShardManifest(
        encoding, enc.config_hash, "compound", enc.sub_tokens, enc.sub_vocab_sizes, 0, []
    )


class _Manifests(dict):
    """Built on first use (tokenizers take a second each), not when pytest collects the file."""

    def __missing__(self, encoding: str) -> ShardManifest:
        self[encoding] = _manifest(encoding)
        return self[encoding]


MANIFESTS = _Manifests()
ACCEPTS = {"nmt": ["nb-pf", "nb-mf", "cp", "encodec-32k"], "flat": ["remi"]}


def _batch(model: torch.nn.Module, manifest: ShardManifest) -> dict[str, torch.Tensor]:
    length = 9
    shape = (2, length) if manifest.kind == "flat" else (2, length, manifest.n_fields)
    low = 0 if manifest.kind == "codec" else 1
    tokens = torch.randint(low, min(manifest.vocab_sizes), shape)
    return {"tokens": tokens, "mask": torch.ones(2, length, dtype=torch.bool)}


def test_registry_entries_name_their_segmentation() -> None:
    for name in ("nmt", "flat"):
        spec = MODELS[name]
        assert spec.segmentation == "stride" and spec.pad_side == "right"
        assert {"debug", "small", "paper"} <= set(spec.presets)


@pytest.mark.parametrize(("name", "encoding"), [(n, e) for n, es in ACCEPTS.items() for e in es])
def test_every_preset_configures_and_debug_trains_a_step(name: str, encoding: str) -> None:
    manifest = MANIFESTS[encoding]
    for preset in ("debug", "small", "paper"):
        cfg = build_config(name, preset, manifest)
        assert cfg.vocab_sizes == manifest.vocab_sizes and cfg.sub_tokens == manifest.sub_tokens
        assert cfg.pad_id == manifest.pad_id
    model = build(name, "debug", manifest)
    assert isinstance(model, NestedMusicTransformer if name == "nmt" else FlatDecoder)
    loss, stats = model.loss(_batch(model, manifest))
    loss.backward()
    assert torch.isfinite(loss) and stats.tokens == 16


def test_paper_sizes_and_parameter_counts_without_allocating() -> None:
    nb, remi = MANIFESTS["nb-pf"], MANIFESTS["remi"]
    cfg = build_config("nmt", "paper", nb)
    assert (cfg.dim, cfg.n_heads, cfg.n_layers, cfg.sub_layers) == (512, 8, 6, 1)
    assert (cfg.sub_decoder, cfg.enricher, cfg.dropout, cfg.max_len) == ("cross", True, 0.2, 3072)
    assert build_config("flat", "paper", remi).max_len == 8192
    counts = {
        "nmt": count_parameters("nmt", "paper", nb),
        "nmt-parallel": count_parameters(
            "nmt", "paper", nb, sub_decoder="parallel", enricher=False
        ),
        "flat": count_parameters("flat", "paper", remi),
    }
    print("paper parameter counts:", counts)
    block = 12 * 512 * 512  # attention 4 D^2 + MLP 8 D^2 per layer, 6 layers
    assert 6 * block < counts["flat"] < 6 * block + 2_000_000
    # the cross sub-decoder + enricher add two cross blocks (~2 layers) and their own embeddings
    assert counts["nmt-parallel"] + 2 * block < counts["nmt"] < counts["nmt-parallel"] + 3 * block


def test_options_and_errors() -> None:
    nb = MANIFESTS["nb-pf"]
    par = build("nmt", "debug", nb, sub_decoder="parallel", enricher=False)
    assert par.cfg.sub_decoder == "parallel" and not par.cfg.enricher
    codec = build_config("nmt", "debug", MANIFESTS["encodec-32k"], codec_pattern="delay")
    assert codec.kind == "codec" and codec.pad_id is None and codec.field_sizes == [2049] * 4
    with pytest.raises(ValueError, match="accepts flat"):
        build("flat", "debug", nb)
    with pytest.raises(ValueError, match="accepts compound, codec"):
        build("nmt", "debug", MANIFESTS["remi"])
    with pytest.raises(ValueError, match="no preset 'huge'"):
        build("nmt", "huge", nb)
    with pytest.raises(ValueError, match="unknown option"):
        build("nmt", "debug", nb, sub_decodr="cross")
    with pytest.raises(ValueError, match="unknown model"):
        build("gpt5", "debug", nb)


def test_register_adds_a_family() -> None:
    spec = MODELS["flat"]
    alias = ModelSpec(
        "flat-alias-for-test",
        spec.config_cls,
        spec.model_cls,
        ("flat",),
        spec.presets,
        "random",
        "left",
    )
    try:
        register(alias)
        assert isinstance(build("flat-alias-for-test", "debug", MANIFESTS["remi"]), FlatDecoder)
    finally:
        MODELS.pop("flat-alias-for-test", None)
