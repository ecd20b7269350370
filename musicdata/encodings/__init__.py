"""Encoding registry: registry names are part of the interface (docs/design.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musicdata.encodings import miditok_import  # noqa: F401  first: MidiTok without torch
from musicdata.encodings.base import Encoding, EncodingError
from musicdata.encodings.cp import CompoundWord
from musicdata.encodings.learned import MidiLikeBPE, RemiBPE, RemiUnigram
from musicdata.encodings.midilike import MidiLike
from musicdata.encodings.nb import NoteBasedMetricFirst, NoteBasedPitchFirst
from musicdata.encodings.octuple import Octuple
from musicdata.encodings.performance import Performance
from musicdata.encodings.pertok import PerTok
from musicdata.encodings.remi import Remi

REGISTRY: dict[str, type[Encoding]] = {
    cls.name: cls
    for cls in (
        Remi,
        CompoundWord,
        Octuple,
        MidiLike,
        PerTok,
        NoteBasedPitchFirst,
        NoteBasedMetricFirst,
        Performance,
    )
}


# Optional learned vocabularies over flat encodings: trained on the workspace's train split when
# first tokenized; opt-in by name (`--all` runs the paper encodings above).
LEARNED: dict[str, type[Encoding]] = {cls.name: cls for cls in (RemiBPE, RemiUnigram, MidiLikeBPE)}


def get_encoding(name: str, overrides: Mapping[str, Any] | None = None) -> Encoding:
    cls = REGISTRY.get(name) or LEARNED.get(name)
    if cls is None:
        msg = f"unknown encoding {name!r}; available: {', '.join(available())}"
        raise ValueError(msg)
    return cls(overrides)


def workspace_encoding(config: Any, name: str) -> Encoding:
    """An encoding as a workspace configures it: `[encodings.<name>]` overrides plus the
    `[ingest] normalize` setting (an encoding parameter, so it changes the config hash)."""
    from musicdata.encodings.normalize import normalization_params

    overrides = dict(config.encodings.get(name) or {})
    ingest = config.ingest
    overrides.update(normalization_params(ingest.normalize, ingest.max_duration_quarters))
    return get_encoding(name, overrides)


def available() -> list[str]:
    return sorted(REGISTRY) + sorted(LEARNED)


__all__ = [
    "LEARNED",
    "REGISTRY",
    "Encoding",
    "EncodingError",
    "available",
    "get_encoding",
    "workspace_encoding",
]
