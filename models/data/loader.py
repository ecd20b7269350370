"""Batches for training and evaluation: windows -> (augmented) samples -> collated batch dicts.

Training batches are a pure function of (seed, epoch, position): the sampler's whole state is two
integers, so a checkpoint stores them and a resumed run continues with exactly the batches the
uninterrupted run would have seen. Augmentation draws from a generator seeded by the window's
position, never from a global RNG. No worker processes: reading a row group is cheap next to a
training step, and one process keeps the order trivially deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from musicdata.models.data.collate import PITCH_TOKEN, PitchTransposer, collate
from musicdata.models.data.shards import SplitReader
from musicdata.models.data.windows import PAD_SIDE, eval_windows, plan_windows, shard_for_rank
from musicdata.schemas.manifest import ShardManifest

__all__ = ["TrainBatches", "eval_batches", "make_transposer", "pad_value_of"]


def pad_value_of(manifest: ShardManifest) -> int:
    """What padded positions hold: the manifest's pad id, or 0 for codec shards (no PAD id)."""
    return 0 if manifest.pad_id is None else int(manifest.pad_id)


def make_transposer(manifest: ShardManifest, max_shift: int) -> PitchTransposer | None:
    """A transposer for symbolic shards with a vocabulary, None when off or not applicable."""
    vocab = manifest.extra.get("vocab")
    if max_shift <= 0 or manifest.kind == "codec" or not vocab:
        return None
    if not any(PITCH_TOKEN.match(str(t)) for field in vocab for t in field):
        return None
    return PitchTransposer(vocab, max_shift)


class TrainBatches:
    """Endless training batches of one DDP rank; `state_dict()` is the sampler position."""

    def __init__(
        self,
        reader: SplitReader,
        *,
        strategy: str,
        max_len: int,
        batch_size: int,
        seed: int,
        pad_value: int,
        pad_side: str | None = None,
        query_len: int | None = None,
        transposer: PitchTransposer | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        assert batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"
        self.reader = reader
        self.strategy = strategy
        self.max_len = max_len
        self.batch_size = batch_size
        self.seed = seed
        self.pad_value = pad_value
        self.pad_side = pad_side or PAD_SIDE[strategy]
        self.query_len = query_len
        self.transposer = transposer
        self.rank, self.world = rank, world
        self.epoch = 0
        self.index = 0  # windows of this epoch already used by this rank
        self._plan: tuple[int, np.ndarray] | None = None

    def _windows(self, epoch: int) -> np.ndarray:
        if self._plan is None or self._plan[0] != epoch:
            plan = plan_windows(
                self.reader.lengths,
                self.strategy,
                self.max_len,
                seed=self.seed,
                epoch=epoch,
                query_len=self.query_len,
            )
            mine = shard_for_rank(plan, self.rank, self.world)
            if not len(mine):
                msg = (
                    f"split '{self.reader.split}' gives {len(plan)} training windows, fewer than "
                    f"{self.world} rank(s): add pieces or train on fewer processes"
                )
                raise ValueError(msg)
            self._plan = (epoch, mine)
        return self._plan[1]

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "index": self.index,
            "seed": self.seed,
            "strategy": self.strategy,
            "world": self.world,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "strategy", "world"):
            assert state[key] == getattr(self, key), (
                f"checkpoint sampler has {key}={state[key]!r} but this run {getattr(self, key)!r}; "
                "resume with the same settings (and number of processes) as the original run"
            )
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._plan = None

    def _sample(self, row: np.ndarray) -> np.ndarray:
        piece, start, end = (int(v) for v in row)
        window = self.reader.window(piece, start, end)
        if self.transposer is not None:
            rng = np.random.default_rng([self.seed, self.epoch, self.index, self.rank, 1])
            window, _ = self.transposer(window, rng)
        return window

    def next_batch(self) -> dict[str, torch.Tensor]:
        samples = []
        while len(samples) < self.batch_size:
            windows = self._windows(self.epoch)
            if self.index >= len(windows):
                self.epoch, self.index = self.epoch + 1, 0
                continue
            samples.append(self._sample(windows[self.index]))
            self.index += 1
        return collate(samples, pad_value=self.pad_value, pad_side=self.pad_side)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.next_batch()


def eval_batches(
    reader: SplitReader,
    *,
    max_len: int,
    batch_size: int,
    pad_value: int,
    pad_side: str = "right",
    hop: int | None = None,
    max_batches: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """Deterministic evaluation batches (no augmentation), this rank's share of the windows."""
    windows = shard_for_rank(
        eval_windows(reader.lengths, max_len, pad_side=pad_side, hop=hop),
        rank,
        world,
        drop_tail=False,
    )
    n_batches = -(-len(windows) // batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    for b in range(n_batches):
        rows = windows[b * batch_size : (b + 1) * batch_size]
        samples = [reader.window(int(p), int(s), int(e)) for p, s, e in rows]
        yield collate(samples, pad_value=pad_value, pad_side=pad_side)
