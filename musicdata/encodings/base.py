"""The one interface every encoding implements, and the MidiTok-backed base most of them share.

An encoding is: paper defaults + user overrides -> a resolved parameter dict, whose hash (with the
encoding's code version) keys its shards in lineage; encode(score) -> token array; decode back to
a score, so round-trip fidelity can be measured; and a config file saved beside the shards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from schemas.config import config_hash


class EncodingError(ValueError):
    """A piece this encoding cannot represent; the message is the quarantine detail."""


class Encoding(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]  # "flat": int32 [T]; "compound": int16 [T, F]
    version: ClassVar[int]  # bump when encode() output changes for the same params
    paper: ClassVar[str]  # where the defaults come from
    defaults: ClassVar[Mapping[str, Any]]

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        unknown = set(overrides or {}) - set(self.defaults)
        if unknown:
            msg = (
                f"[encodings.{self.name}]: unknown parameter(s) {sorted(unknown)}; "
                f"known: {', '.join(sorted(self.defaults))}"
            )
            raise ValueError(msg)
        self.params: dict[str, Any] = {**self.defaults, **(overrides or {})}

    @cached_property
    def config_hash(self) -> str:
        return config_hash({"encoding": self.name, "version": self.version, "params": self.params})

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, score: Any) -> np.ndarray:
        """symusic.Score -> int32 [T] (flat) or int16 [T, F] (compound)."""

    @abstractmethod
    def decode(self, tokens: np.ndarray) -> Any:
        """Token array -> symusic.Score."""

    @abstractmethod
    def save_config(self, directory: Path) -> Path:
        """Write what it takes to rebuild this tokenizer; returns the file written."""


class MidiTokEncoding(Encoding):
    """An encoding backed by a MidiTok tokenizer class (vocab, save/load and hub come from it)."""

    tokenizer_class: ClassVar[str]  # attribute name in the miditok package
    # Token types that carry a note; a sequence without one encodes no music (all notes outside the
    # tokenizer's pitch range, say) and is quarantined rather than written as a bar-only sequence.
    note_token_prefixes: ClassVar[tuple[str, ...]] = (
        "Pitch_",
        "PitchDrum_",
        "PitchIntervalTime_",
        "PitchIntervalChord_",
    )

    @cached_property
    def tokenizer(self) -> Any:
        import miditok

        cls = getattr(miditok, self.tokenizer_class)
        params = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.params.items()}
        beat_res = params.pop("beat_res", None)
        if beat_res is not None:  # TOML/JSON keys are strings "0-4"; MidiTok wants (0, 4) tuples
            params["beat_res"] = {_range_key(k): v for k, v in beat_res.items()}
        return cls(miditok.TokenizerConfig(**params))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def encode(self, score: Any) -> np.ndarray:
        seq = self.tokenizer.encode(score)
        if isinstance(seq, list):  # one sequence per track: this config must be one stream
            msg = f"{self.name}: tokenizer returned one sequence per track; set one_token_stream"
            raise EncodingError(msg)
        if not any(str(t).startswith(self.note_token_prefixes) for t in _flatten(seq.tokens)):
            lo, hi = self.params.get("pitch_range", ("?", "?"))
            msg = f"no note tokens: no note falls in the tokenizer's pitch range {lo}..{hi - 1}"
            raise EncodingError(msg)
        return np.asarray(seq.ids, dtype=np.int32 if self.kind == "flat" else np.int16)

    def decode(self, tokens: np.ndarray) -> Any:
        ids = np.asarray(tokens).tolist()
        return self.tokenizer.decode(ids if self.tokenizer.one_token_stream else [ids])

    def save_config(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(directory, filename="tokenizer.json")
        return directory / "tokenizer.json"


def _flatten(tokens: list) -> list:
    """Compound tokenizers give a list of lists of token strings; flat ones a list."""
    return [t for item in tokens for t in (item if isinstance(item, list) else [item])]


def _range_key(key: Any) -> tuple[int, int]:
    if isinstance(key, tuple):
        return key
    lo, hi = str(key).split("-")
    return int(lo), int(hi)
