"""Catalog -> shard manifest: the one hand-over from the data side to the model side.

The trainer reads only the manifest (paths, sha256, vocabulary sizes and token strings), never the
catalog, so the one-writer rule holds and `models/` never imports DuckDB. The config is resolved
as `musicdata.load_dataset` resolves it (the same reader, pinned to one config hash).
"""

from __future__ import annotations

from typing import Any

from musicdata.catalog import publishing
from musicdata.datasets import LATEST, EncodingConfig, resolve_config
from musicdata.schemas.manifest import ShardFile, ShardManifest
from musicdata.workspace import Workspace


def build_manifest(
    ws: Workspace, encoding: str, config_hash: str | None = LATEST
) -> tuple[ShardManifest, list[str]]:
    """The manifest of one encoding config (default: the newest) and the ids of its shards
    (the lineage sources of whatever trains on it)."""
    cfg = resolve_config(ws.catalog, encoding, config_hash)
    with ws.catalog.read() as con:
        shards = publishing.config_shards(con, cfg.encoding, cfg.config_hash)
    files = [
        ShardFile(s["path"], s["file_sha256"], s["split"], int(s["n_rows"]), int(s["n_tokens"]))
        for s in shards
    ]
    manifest = ShardManifest(
        encoding=cfg.encoding,
        config_hash=cfg.config_hash,
        kind=cfg.kind,
        sub_tokens=_sub_tokens(cfg),
        vocab_sizes=list(cfg.sub_vocab_sizes or [cfg.vocab_size]),
        pad_id=None if cfg.kind == "codec" else 0,  # MidiTok and `performance` put PAD first
        files=files,
        root=str(ws.root),
        extra=_extra(cfg),
    )
    return manifest, [s["shard_id"] for s in shards]


def _sub_tokens(cfg: EncodingConfig) -> list[str]:
    if cfg.sub_tokens:
        return list(cfg.sub_tokens)
    if cfg.kind == "codec":
        return [f"codebook_{k}" for k in range(len(cfg.sub_vocab_sizes or [0]))]
    return ["token"]


def _extra(cfg: EncodingConfig) -> dict[str, Any]:
    """Token strings per field (index = id), for transposition and token roles; codec shards
    carry their frame rate instead."""
    if cfg.kind == "codec":
        return {
            "frame_rate": cfg.params.get("frame_rate"),
            "n_codebooks": cfg.params.get("n_codebooks"),
        }
    return {"vocab": vocab_strings(cfg.encoding, cfg.params)}


def vocab_strings(encoding: str, params: dict[str, Any]) -> list[list[str]]:
    """Each field's token strings by id: MidiTok's vocabularies ("Pitch_60", ...) or the
    `performance` event names."""
    from musicdata.encodings import get_encoding

    enc = get_encoding(encoding, params)
    if hasattr(enc, "vocabulary"):
        return [list(enc.vocabulary())]
    voc = enc.tokenizer.vocab  # type: ignore[attr-defined]
    fields = voc if isinstance(voc, list) else [voc]
    out = []
    for field in fields:
        names = [""] * len(field)
        for token, idx in field.items():
            names[idx] = token
        out.append(names)
    return out
