"""Encoding registry: registry names are part of the interface (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from musicdata.encodings.base import Encoding, EncodingError
from musicdata.encodings.cp import CompoundWord
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


def get_encoding(name: str, overrides: Mapping[str, Any] | None = None) -> Encoding:
    try:
        cls = REGISTRY[name]
    except KeyError:
        msg = f"unknown encoding {name!r}; available: {', '.join(sorted(REGISTRY))}"
        raise ValueError(msg) from None
    return cls(overrides)


__all__ = ["REGISTRY", "Encoding", "EncodingError", "get_encoding"]
