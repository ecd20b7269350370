"""Deterministic, leak-free splits: a piece's split is a function of its note-content hash.

Keying on the content hash (not the file hash or path) means exact and near duplicates always land
in the same split. Once written to the catalog a piece's split never changes, even if the ratios in
the config do later; near duplicates copy their canonical piece's persisted split.
"""

from __future__ import annotations

import hashlib

from musicdata.schemas.config import SplitConfig

SPLITS = ("train", "validation", "test")


def assign_split(content_hash: str, cfg: SplitConfig) -> str:
    digest = hashlib.sha256(f"{cfg.seed}:{content_hash}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < cfg.test:
        return "test"
    if u < cfg.test + cfg.validation:
        return "validation"
    return "train"
