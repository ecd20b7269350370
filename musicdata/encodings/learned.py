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
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from musicdata.encodings.base import MidiTokEncoding
from musicdata.encodings.midilike import MidiLike
from musicdata.encodings.remi import Remi
from musicdata.schemas.config import config_hash

# Not hashed: where the trained file lives and its digest (both follow from the hashed params).
_UNHASHED = ("tokenizer_file", "tokenizer_sha256")

log = logging.getLogger(__name__)

# A vocabulary that leaves a training bar at this many tokens or fewer has memorized its training
# set (whole bars became single tokens): the ids are shorter but each is seen about once.
MEMORIZED_TOKENS_PER_BAR = 1.5
_SAMPLE_BARS = 2000  # bars re-encoded after training to measure that


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

    def train(self, blobs: Sequence[Path], out: Path) -> TrainingReport:
        """Train on the given MIDI blobs and save the tokenizer to `out`; warns (log, shown by
        the CLI) when the training set is too small for the requested vocabulary."""
        tok = self.base(self.base_params()).tokenizer
        base_size = len(tok)
        bars = _BarIterator(tok, list(blobs))
        with _stdout_to_stderr():  # the trainer's progress bar must not reach a --json stdout
            tok.train(vocab_size=int(self.params["vocab_size"]), model=self.model, iterator=bars)
        encoded = tok._model.encode_batch([[b] for b in bars.sample], is_pretokenized=True)
        report = TrainingReport(
            encoding=self.name,
            pieces=len(blobs),
            bars=bars.n_bars,
            base_tokens=bars.n_tokens,
            base_vocab=base_size,
            requested_vocab=int(self.params["vocab_size"]),
            learned_vocab=len(tok),
            sample_bars=len(bars.sample),
            sample_base_tokens=sum(len(b) for b in bars.sample),
            sample_learned_tokens=sum(len(e.ids) for e in encoded),
        )
        if report.memorized:
            log.warning("%s", report.warning())
        tok.save(out)
        return report


@dataclass(frozen=True)
class TrainingReport:
    """What a learned vocabulary was trained on and what it does to its own training bars."""

    encoding: str
    pieces: int
    bars: int
    base_tokens: int
    base_vocab: int
    requested_vocab: int
    learned_vocab: int
    sample_bars: int
    sample_base_tokens: int
    sample_learned_tokens: int

    @property
    def tokens_per_bar(self) -> float:
        """Mean tokens of a training bar after training (before: base_tokens / bars)."""
        return self.sample_learned_tokens / max(self.sample_bars, 1)

    @property
    def memorized(self) -> bool:
        return self.sample_bars > 0 and self.tokens_per_bar <= MEMORIZED_TOKENS_PER_BAR

    def warning(self) -> str:
        before = self.base_tokens / max(self.bars, 1)
        # about 100 base tokens of training data per learned token keeps merges frequent
        suggested = self.base_vocab + max(self.base_tokens // 100, 1)
        return (
            f"{self.encoding}: the training set is too small for vocab_size "
            f"{self.requested_vocab}: {self.pieces} train-split pieces ({self.bars} bars, "
            f"{self.base_tokens} base tokens) gave {self.learned_vocab - self.base_vocab} "
            f"learned tokens that memorize them: a training bar went from {before:.1f} tokens to "
            f"{self.tokens_per_bar:.1f}, so most new ids occur about once. Ingest more MIDI "
            f"into the train split, or set `[encodings.{self.encoding}] vocab_size = "
            f"{suggested}` (or lower) in musicdata.toml"
        )


class _BarIterator:
    """MidiTok's TokTrainingIterator for extension-less blobs: base token bytes per bar. Counts
    bars and base tokens, and keeps the first bars to measure the trained vocabulary on."""

    def __init__(self, tokenizer: Any, paths: list[Path]) -> None:
        self.tokenizer, self.paths = tokenizer, paths
        self.n_bars = self.n_tokens = 0
        self.sample: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[str]:
        import symusic

        self.n_bars = self.n_tokens = 0
        self.sample = []
        for path in self.paths:
            score = symusic.Score.from_midi(path.read_bytes())
            seq = self.tokenizer(score, encode_ids=False)
            for bar in seq.split_per_bars():
                if len(bar):
                    for chunk in _as_list(self.tokenizer._ids_to_bytes(bar.ids, as_one_str=True)):
                        self.n_bars += 1
                        self.n_tokens += len(chunk)
                        if len(self.sample) < _SAMPLE_BARS:
                            self.sample.append(chunk)
                        yield chunk


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while (Hugging Face `tokenizers` writes its
    progress bar from Rust, past sys.stdout)."""
    try:
        out, errfd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real descriptors (a notebook): leave it
        yield
        return
    sys.stdout.flush()
    saved = os.dup(out)
    try:
        os.dup2(errfd, out)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, out)
        os.close(saved)


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
