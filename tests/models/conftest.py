"""Real token shards for the model tests: the fixture MIDI tokenized once per session.

Tests may import musicdata (models/ may not): the shards are written with the pipeline's own
build_table/write_shard, and the manifest is made by hand the way the catalog side does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import symusic
import torch

from musicdata.encodings import get_encoding
from musicdata.schemas.config import ShardConfig
from musicdata.schemas.manifest import ShardFile, ShardManifest
from musicdata.store import ShardRow, build_table, write_shard

MIDI = Path(__file__).parent.parent / "fixtures" / "midi"
# Real fixture pieces (tests/conftest.py REAL); the last one is held out for validation.
TRAIN = [
    "chorale_4_4.mid",
    "cut_time_2_2.mid",
    "folk_6_8.mid",
    "multitrack_tempo_change.mid",
    "waltz_3_4.mid",
]
VALIDATION = ["chorale_near_dup.mid", 'it\'s "odd"; name.mid']


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Debug models are tiny: on 2 shared cores, intra-op threads spin against other processes
    (measured 40x slower steps under load). One thread, restored after the session."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _vocab(tokenizer: object) -> list[list[str]]:
    """MidiTok vocab (a dict, or one dict per field) -> one list of token strings per field."""
    voc = tokenizer.vocab  # type: ignore[attr-defined]
    fields = voc if isinstance(voc, list) else [voc]
    out = []
    for d in fields:
        names = [""] * len(d)
        for tok, idx in d.items():
            names[idx] = tok
        out.append(names)
    return out


def make_manifest(encoding: str, root: Path, *, row_group_rows: int = 2) -> ShardManifest:
    """Tokenize the fixture MIDI with `encoding`; write train/validation shards and a manifest."""
    enc = get_encoding(encoding)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for split, names in (("train", TRAIN), ("validation", VALIDATION)):
        rows = [ShardRow(Path(n).stem, enc.encode(symusic.Score(str(MIDI / n)))) for n in names]
        table = build_table(
            rows,
            split=split,
            encoding=encoding,
            config_hash=enc.config_hash,
            kind=enc.kind,
            sub_tokens=enc.sub_tokens,
        )
        path = root / f"{split}-part-00000.parquet"
        cfg = ShardConfig(row_group_rows=row_group_rows)
        written = write_shard(table, path, cfg)
        files.append(
            ShardFile(path.name, written.file_sha256, split, written.n_rows, written.n_tokens)
        )
    # `performance` has no MidiTok tokenizer: its event names come from `vocabulary()`
    vocab = [list(enc.vocabulary())] if hasattr(enc, "vocabulary") else _vocab(enc.tokenizer)
    return ShardManifest(
        encoding=encoding,
        config_hash=enc.config_hash,
        kind=enc.kind,
        sub_tokens=enc.sub_tokens or ["token"],
        vocab_sizes=[len(v) for v in vocab],
        pad_id=0,
        files=files,
        root=str(root),
        extra={"vocab": vocab},
    )


@pytest.fixture(scope="session")
def remi_manifest(tmp_path_factory: pytest.TempPathFactory) -> ShardManifest:
    m = make_manifest("remi", tmp_path_factory.mktemp("remi-shards"))
    m.save(Path(m.root) / "manifest.json")
    return m


@pytest.fixture(scope="session")
def nb_manifest(tmp_path_factory: pytest.TempPathFactory) -> ShardManifest:
    m = make_manifest("nb-pf", tmp_path_factory.mktemp("nb-shards"))
    m.save(Path(m.root) / "manifest.json")
    return m
