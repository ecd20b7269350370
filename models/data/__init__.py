"""Data loading from token shards: manifest -> windows -> batch dicts (see model-contract)."""

from musicdata.models.data.collate import PitchTransposer, collate
from musicdata.models.data.loader import TrainBatches, eval_batches, make_transposer, pad_value_of
from musicdata.models.data.shards import ShardIntegrityError, SplitReader, verify_file
from musicdata.models.data.windows import (
    PAD_SIDE,
    STRATEGIES,
    eval_windows,
    plan_windows,
    shard_for_rank,
)

__all__ = [
    "PAD_SIDE",
    "STRATEGIES",
    "PitchTransposer",
    "ShardIntegrityError",
    "SplitReader",
    "TrainBatches",
    "collate",
    "eval_batches",
    "eval_windows",
    "make_transposer",
    "pad_value_of",
    "plan_windows",
    "shard_for_rank",
    "verify_file",
]
