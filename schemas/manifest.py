"""The shard manifest: the contract between the catalog side (musicdata) and the model side.

The catalog resolves "encoding X under config hash H" into a manifest; a trainer reads only the
manifest (paths, sha256, vocabulary sizes) and never opens DuckDB. Its hash goes into checkpoints
and lineage, so a checkpoint names exactly the data it saw. lhotse-style `to_dict`/`from_dict`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ShardFile:
    """One Parquet shard: `path` relative to the manifest's `root` (or absolute)."""

    path: str
    sha256: str
    split: str
    n_rows: int
    n_tokens: int


@dataclass(frozen=True)
class ShardManifest:
    """Every shard of one (encoding, config hash), with what a model needs to size itself.

    kind: "flat" (tokens [T] int32), "compound" (tokens [T, F] int16, F = len(sub_tokens)) or
    "codec" (EnCodec codes as [T, K] frames, K codebooks, no special ids).
    vocab_sizes: one entry per sub-token field ([V] for flat). pad_id: the id that pads a field
    (MidiTok's PAD is 0); None for codec shards, where every id is a code and a model adds its own
    special ids above `vocab_sizes`.
    """

    encoding: str
    config_hash: str
    kind: str
    sub_tokens: list[str]
    vocab_sizes: list[int]
    pad_id: int | None
    files: list[ShardFile]
    root: str = "."
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. frame_rate, n_codebooks

    def __post_init__(self) -> None:
        assert self.kind in ("flat", "compound", "codec"), f"unknown shard kind {self.kind!r}"
        assert len(self.sub_tokens) == len(self.vocab_sizes), (
            f"{self.encoding}: {len(self.sub_tokens)} sub-token names but "
            f"{len(self.vocab_sizes)} vocabulary sizes"
        )

    @property
    def n_fields(self) -> int:
        return len(self.vocab_sizes)

    def split(self, name: str) -> list[ShardFile]:
        return [f for f in self.files if f.split == name]

    def abspath(self, f: ShardFile) -> Path:
        p = Path(f.path)
        return p if p.is_absolute() else Path(self.root) / p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardManifest:
        files = [ShardFile(**f) for f in d["files"]]
        return cls(**{**d, "files": files})

    @property
    def hash(self) -> str:
        """sha256 over what the data is (not where it lies): moving a workspace keeps the hash."""
        ident = {k: v for k, v in self.to_dict().items() if k != "root"}
        ident["files"] = sorted((f["split"], f["sha256"]) for f in ident["files"])
        text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> ShardManifest:
        return cls.from_dict(json.loads(Path(path).read_text()))
