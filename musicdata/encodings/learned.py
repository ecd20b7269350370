"""Learned vocabularies (BPE, Unigram) on top of a flat MidiTok encoding: `remi-bpe`,
`remi-unigram`, `midilike-bpe`.

MidiTok trains the model (Hugging Face `tokenizers`) on the base token sequences of the corpus's
train split, split per bar as MidiTok does by default (Fradet et al. 2023, "Byte Pair Encoding for
Symbolic Music"). The training set is part of the config: its hash (sorted piece ids) enters the
config hash, so new training pieces give a new tokenizer and new shards, never a silent change.
The trained tokenizer is saved beside the shards and its sha256 recorded in the catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from musicdata.encodings.base import MidiTokEncoding
from musicdata.encodings.midilike import MidiLike
from musicdata.encodings.remi import Remi
from musicdata.schemas.config import config_hash

# Not hashed: where the trained file lives and its digest (both follow from the hashed params).
_UNHASHED = ("tokenizer_file", "tokenizer_sha256")


class LearnedEncoding(MidiTokEncoding):
    base: ClassVar[type[MidiTokEncoding]]
    model: ClassVar[str]
    kind = "flat"
    version = 1
    learned = True

    @classmethod
    def learned_defaults(cls) -> dict[str, Any]:
        return {
            **cls.base.defaults,
            "vocab_size": 20000,  # an upper bound: training stops when no pair is left to merge
            "max_train_pieces": 20000,
            "training_set": None,  # hash of the training piece ids, set by prepare()
            "tokenizer_file": None,
            "tokenizer_sha256": None,
        }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defaults = cls.learned_defaults()
        cls.tokenizer_class = cls.base.tokenizer_class
        cls.note_token_prefixes = cls.base.note_token_prefixes
        cls.note_offs = cls.base.note_offs
        cls.paper = f"{cls.base.paper}; {cls.model} as in Fradet et al. 2023 (arXiv 2301.11975)"

    @cached_property
    def config_hash(self) -> str:
        params = {k: v for k, v in self.params.items() if k not in _UNHASHED}
        return config_hash({"encoding": self.name, "version": self.version, "params": params})

    def base_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k in self.base.defaults}

    @cached_property
    def tokenizer(self) -> Any:
        path = self.params.get("tokenizer_file")
        if not path:
            msg = f"{self.name}: not trained yet; tokenize it through the pipeline (prepare())"
            raise RuntimeError(msg)
        return self._tokenizer_class()(params=Path(path))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def train(self, blobs: Sequence[Path], out: Path) -> None:
        """Train on the given MIDI blobs and save the tokenizer to `out`."""
        tok = self.base(self.base_params()).tokenizer
        tok.train(
            vocab_size=int(self.params["vocab_size"]),
            model=self.model,
            iterator=_BarIterator(tok, list(blobs)),
        )
        tok.save(out)


class _BarIterator:
    """MidiTok's TokTrainingIterator for extension-less blobs: base token bytes per bar."""

    def __init__(self, tokenizer: Any, paths: list[Path]) -> None:
        self.tokenizer, self.paths = tokenizer, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[str]:
        import symusic

        for path in self.paths:
            score = symusic.Score.from_midi(path.read_bytes())
            seq = self.tokenizer(score, encode_ids=False)
            for bar in seq.split_per_bars():
                if len(bar):
                    yield from _as_list(self.tokenizer._ids_to_bytes(bar.ids, as_one_str=True))


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def training_set_hash(piece_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(piece_ids)).encode()).hexdigest()[:16]


class RemiBPE(LearnedEncoding):
    name = "remi-bpe"
    base = Remi
    model = "BPE"


class RemiUnigram(LearnedEncoding):
    name = "remi-unigram"
    base = Remi
    model = "Unigram"


class MidiLikeBPE(LearnedEncoding):
    """BPE over MidiTok's *single-stream* MIDILike (BPE learns merges within one stream, per bar);
    lossy where same-program tracks re-strike a held pitch (see `midilike`)."""

    name = "midilike-bpe"
    base = MidiLike
    model = "BPE"
    lossless = False

    @classmethod
    def learned_defaults(cls) -> dict[str, Any]:
        return {**super().learned_defaults(), "one_token_stream_for_programs": True}
