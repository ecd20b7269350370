"""Token shards as Hugging Face `datasets`, pinned to exactly one encoding config.

`datasets.load_dataset("parquet", data_dir=...)` over a workspace's shard folder silently mixes
every config of an encoding (two vocabularies in one dataset) and sees compound tokens as unnamed
`[T, F]` int16 lists. `load_dataset` here asks the catalog which shard files belong to one config
and returns them with Features that name every sub-token:

- flat encodings: `tokens: List(int32)`, one id sequence per piece;
- compound encodings (CP, Octuple, NB; EnCodec codebooks): `tokens: {<sub-token>: List(int16)}`,
  one sequence per named sub-token, in the encoding's field order (Arrow: a struct of lists).
  Chosen over one top-level column per sub-token because flat and compound datasets then share
  the column name `tokens` (one collator, one training reader), `ds.features["tokens"]` lists the
  names in order, and `with_format("torch")` yields `{name: 1-D tensor}` per piece, which
  `Collator` stacks into `[B, T, F]`.

Every dataset also has `piece_id`, `split`, `length` (sequence steps) and `config_hash`. Data is
read with pyarrow into memory (no cache files written into the workspace or ~/.cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicdata.catalog import Catalog
from musicdata.catalog import publishing as pubsql

if TYPE_CHECKING:
    import datasets
    import torch

    from musicdata.workspace import Workspace

SPLIT_ORDER = ("train", "validation", "test")
LATEST = "latest"


class ConfigChoiceError(ValueError):
    """No config, or several, match what the caller asked for; the message lists the choices."""


@dataclass(frozen=True)
class EncodingConfig:
    """One encoding config that has shards, as the catalog records it."""

    encoding: str
    config_hash: str
    kind: str  # flat | compound | codec
    vocab_size: int
    config_path: str  # tokenizer config, relative to the workspace
    params: dict[str, Any]
    sub_tokens: list[str] | None
    sub_vocab_sizes: list[int] | None
    lossless: bool | None
    paper: str | None
    created_at: Any
    pieces: int
    tokens: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EncodingConfig:
        return cls(
            encoding=row["encoding"],
            config_hash=row["config_hash"],
            kind=row["kind"],
            vocab_size=int(row["vocab_size"]),
            config_path=row["config_path"],
            params=json.loads(row["config_json"] or "{}"),
            sub_tokens=list(row["sub_tokens"]) if row["sub_tokens"] else None,
            sub_vocab_sizes=list(row["sub_vocab_sizes"]) if row["sub_vocab_sizes"] else None,
            lossless=row["lossless"],
            paper=row["paper"],
            created_at=row["created_at"],
            pieces=int(row["pieces"] or 0),
            tokens=int(row["tokens"] or 0),
        )


def _catalog(home: Path | str | Workspace) -> tuple[Path, Catalog]:
    root = Path(home if isinstance(home, str | Path) else home.root).expanduser().resolve()
    return root, Catalog(root / "catalog.duckdb")


def resolve_config(
    catalog: Catalog, encoding: str, config_hash: str | None = None
) -> EncodingConfig:
    """The one config of `encoding` to read: the only one, the one named (a unique prefix is
    enough), or with config_hash="latest" the newest. Several without a choice is an error."""
    with catalog.read() as con:
        return pick_config(con, encoding, config_hash, where=str(catalog.path))


def pick_config(
    con: Any, encoding: str, config_hash: str | None = None, *, where: str = "catalog"
) -> EncodingConfig:
    """`resolve_config` on an open read connection (callers that run several queries)."""
    rows = [EncodingConfig.from_row(r) for r in pubsql.encoding_configs(con, encoding)]
    if not rows:
        have = ", ".join(pubsql.encodings_with_shards(con)) or "none"
        msg = (
            f"{where}: no shards of encoding {encoding!r} (encodings with shards: "
            f"{have}); run `musicdata tokenize --encoding {encoding}` first"
        )
        raise ConfigChoiceError(msg)
    if config_hash == LATEST:
        return rows[0]  # newest first
    matches = [r for r in rows if config_hash is None or r.config_hash.startswith(config_hash)]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(f"{r.config_hash} (created {r.created_at:%Y-%m-%d %H:%M:%S})" for r in rows)
    if not matches:
        msg = f"{encoding}: no config hash starts with {config_hash!r}; choices: {listing}"
    else:
        msg = (
            f"{encoding} has {len(matches)} configs with shards, each its own vocabulary: "
            f"{listing}. Pass config_hash=<one of them> (or config_hash='latest')"
        )
    raise ConfigChoiceError(msg)


def sub_token_names(cfg: EncodingConfig, n_fields: int) -> list[str]:
    """Names of the compound fields; codec shards name their codebooks."""
    if cfg.sub_tokens:
        assert len(cfg.sub_tokens) == n_fields, (
            f"{cfg.encoding}@{cfg.config_hash}: catalog lists {len(cfg.sub_tokens)} sub-tokens, "
            f"shards hold {n_fields}"
        )
        return list(cfg.sub_tokens)
    prefix = "codebook" if cfg.kind == "codec" else "field"
    return [f"{prefix}_{i}" for i in range(n_fields)]


def named_tokens(table: pa.Table, names: list[str] | None) -> pa.Table:
    """A shard table in the dataset layout: compound `tokens` ([T, F] per row) becomes a struct
    of one list per sub-token; flat tables pass unchanged. Schema metadata is kept."""
    tokens = table.column("tokens").combine_chunks()
    if not pa.types.is_fixed_size_list(tokens.type.value_type):
        return table
    width = tokens.type.value_type.list_size
    names = names or [f"field_{i}" for i in range(width)]
    assert len(names) == width, f"{len(names)} sub-token names for {width} fields"
    offsets = tokens.offsets
    values = tokens.values.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    item = tokens.type.value_type.value_type
    fields = [
        pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values[:, i]), item))
        for i in range(width)
    ]
    struct = pa.StructArray.from_arrays(fields, names=names)
    idx = table.schema.get_field_index("tokens")
    field = pa.field("tokens", struct.type, nullable=False)
    meta = dict(table.schema.metadata or {})
    meta[b"musicdata.sub_tokens"] = ",".join(names).encode()
    return table.set_column(idx, field, struct).replace_schema_metadata(meta)


def read_config_split(
    root: Path, cfg: EncodingConfig, shards: list[dict[str, Any]], split: str
) -> pa.Table:
    """All rows of one config's split, sorted by piece id, in the dataset layout. Refuses a
    file whose own config hash is not the pinned one (a stray or replaced shard)."""
    tables = []
    for s in shards:
        if s["split"] != split:
            continue
        path = root / s["path"]
        if not path.exists():
            msg = (
                f"{path}: listed in the catalog for {cfg.encoding}@{cfg.config_hash} but "
                "missing; re-run `musicdata tokenize` to rebuild it"
            )
            raise FileNotFoundError(msg)
        table = pq.read_table(path)
        found = set(table.column("config_hash").to_pylist())
        if not found <= {cfg.config_hash}:
            msg = (
                f"{path}: holds rows of config(s) {sorted(found)}, not {cfg.config_hash}; the "
                "file was replaced outside musicdata: re-run `musicdata tokenize`"
            )
            raise ValueError(msg)
        tables.append(table)
    if not tables:
        msg = f"{cfg.encoding}@{cfg.config_hash} has no {split!r} shards"
        raise ConfigChoiceError(msg)
    table = pa.concat_tables(tables).combine_chunks()
    table = table.take(pc.sort_indices(table, [("piece_id", "ascending")]))
    table = table.replace_schema_metadata(tables[0].schema.metadata)
    names = None
    if pa.types.is_fixed_size_list(table.schema.field("tokens").type.value_type):
        names = sub_token_names(cfg, table.schema.field("tokens").type.value_type.list_size)
    return named_tokens(table, names)


def config_splits(shards: list[dict[str, Any]], wanted: Sequence[str] | None) -> list[str]:
    have = sorted({s["split"] for s in shards}, key=_split_key)
    if wanted is None:
        return have
    missing = [s for s in wanted if s not in have]
    if missing:
        msg = f"no shards for split(s) {missing}; this config has {have}"
        raise ConfigChoiceError(msg)
    return list(wanted)


def _split_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def load_dataset(
    home: Path | str | Workspace,
    encoding: str,
    split: str | None = None,
    config_hash: str | None = None,
) -> datasets.Dataset | datasets.DatasetDict:
    """One encoding config's shards as a `datasets.Dataset` (one split) or `DatasetDict` (all).

    `config_hash`: None picks the only config (several are an error listing them with their
    creation times), a hash or unique prefix picks that one, "latest" the newest.
    """
    import datasets

    root, catalog = _catalog(home)
    cfg = resolve_config(catalog, encoding, config_hash)
    with catalog.read() as con:
        shards = pubsql.config_shards(con, cfg.encoding, cfg.config_hash)
    splits = config_splits(shards, [split] if split else None)
    info = dataset_info(cfg)
    out = {}
    for name in splits:
        table = read_config_split(root, cfg, shards, name)
        features = datasets.Features.from_arrow_schema(table.schema)
        out[name] = datasets.Dataset(
            datasets.table.InMemoryTable(table),
            info=datasets.DatasetInfo(**{**info, "features": features}),
            split=datasets.NamedSplit(name),
        )
    return out[split] if split else datasets.DatasetDict(out)


def dataset_info(cfg: EncodingConfig) -> dict[str, Any]:
    """DatasetInfo fields that say which config this is (vocab sizes for the model's heads)."""
    meta = {
        "encoding": cfg.encoding,
        "config_hash": cfg.config_hash,
        "kind": cfg.kind,
        "vocab_size": cfg.vocab_size,
        "sub_tokens": cfg.sub_tokens,
        "sub_vocab_sizes": cfg.sub_vocab_sizes,
    }
    return {
        "description": json.dumps(meta, sort_keys=True),
        "config_name": cfg.encoding,
        "dataset_name": "musicdata",
        "citation": cfg.paper or "",
    }


class Collator:
    """Pad a batch of pieces into tensors with an attention mask (in the spirit of MidiTok's
    `DataCollator`). Examples hold `tokens` as a 1-D sequence (flat) or a {sub-token: 1-D}
    mapping (compound; stacked in mapping order, or `sub_tokens` order) or a [T, F] array.

    Returns `input_ids` [B, T] or [B, T, F] (long), `attention_mask` [B, T] (long, 1 = real)
    and, with `copy_inputs_as_labels`, `labels` padded with `labels_pad_id` (shifted one step
    left against `input_ids` with `shift_labels`, for teacher forcing).
    """

    def __init__(
        self,
        pad_id: int | Sequence[int],
        *,
        max_length: int | None = None,
        pad_on_left: bool = False,
        copy_inputs_as_labels: bool = False,
        shift_labels: bool = False,
        labels_pad_id: int = -100,
        sub_tokens: Sequence[str] | None = None,
        tokens_key: str = "tokens",
        inputs_key: str = "input_ids",
    ) -> None:
        assert max_length is None or max_length > 0, "max_length must be positive"
        self.pad_id = pad_id
        self.max_length = max_length
        self.pad_on_left = pad_on_left
        self.copy_inputs_as_labels = copy_inputs_as_labels
        self.shift_labels = shift_labels
        self.labels_pad_id = labels_pad_id
        self.sub_tokens = list(sub_tokens) if sub_tokens else None
        self.tokens_key = tokens_key
        self.inputs_key = inputs_key

    def _tensor(self, value: Any) -> torch.Tensor:
        import torch

        if isinstance(value, Mapping):
            names = self.sub_tokens or list(value)
            missing = [n for n in names if n not in value]
            assert not missing, f"example lacks sub-token(s) {missing}; has {list(value)}"
            return torch.stack([torch.as_tensor(np.asarray(value[n])) for n in names], dim=-1)
        return torch.as_tensor(np.asarray(value))

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        assert batch, "cannot collate an empty batch"
        seqs = [self._tensor(ex[self.tokens_key]).long() for ex in batch]
        if self.max_length is not None:
            seqs = [s[: self.max_length] for s in seqs]
        lengths = [len(s) for s in seqs]
        longest = max(lengths)
        tail = seqs[0].shape[1:]  # () flat, (F,) compound
        assert all(s.shape[1:] == tail for s in seqs), "examples mix flat and compound tokens"
        pad = torch.as_tensor(self.pad_id, dtype=torch.long)
        assert pad.shape in ((), tail), f"pad_id {self.pad_id} does not fit tokens of shape {tail}"
        ids = pad.expand(len(seqs), longest, *tail).clone()
        mask = torch.zeros(len(seqs), longest, dtype=torch.long)
        for i, (s, n) in enumerate(zip(seqs, lengths, strict=True)):
            lo = longest - n if self.pad_on_left else 0
            ids[i, lo : lo + n] = s
            mask[i, lo : lo + n] = 1
        out = {self.inputs_key: ids, "attention_mask": mask}
        if self.copy_inputs_as_labels:
            labels = ids.clone()
            labels[mask == 0] = self.labels_pad_id
            if self.shift_labels:
                out[self.inputs_key] = ids[:, :-1]
                out["attention_mask"] = mask[:, :-1]
                labels = labels[:, 1:]
            out["labels"] = labels
        return out
