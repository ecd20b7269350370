"""Read the Parquet token shards of a ShardManifest one row group at a time.

A corpus can be larger than RAM, so nothing here loads a whole split: opening a split reads only
the `length` column (memory-mapped) to index pieces, and a piece's tokens come from its row group,
decoded on demand and kept in a small LRU cache. Each file's sha256 is checked once per process
before its first use, so a checkpoint's manifest hash really names the bytes that were trained on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from musicdata.schemas.manifest import ShardFile, ShardManifest

__all__ = ["ShardIntegrityError", "SplitReader", "verify_file"]

_VERIFIED: set[tuple[str, str, int, int]] = set()  # (path, sha256, size, mtime_ns) checked once
_CHUNK = 1 << 20


class ShardIntegrityError(RuntimeError):
    """A shard file is missing or its bytes differ from the manifest's sha256."""


def verify_file(path: Path, sha256: str) -> None:
    """Hash `path` once per process (and again if its size or mtime change); raise naming it."""
    if not path.is_file():
        msg = (
            f"shard {path} listed in the manifest does not exist; re-export the manifest from "
            "the catalog or restore the file"
        )
        raise ShardIntegrityError(msg)
    st = path.stat()
    key = (str(path.resolve()), sha256, st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    if h.hexdigest() != sha256:
        msg = (
            f"shard {path} has sha256 {h.hexdigest()} but the manifest says {sha256}: the file "
            "changed after the manifest was made; re-tokenize or re-export the manifest"
        )
        raise ShardIntegrityError(msg)
    _VERIFIED.add(key)


@dataclass(frozen=True)
class _Loc:
    file: int
    row_group: int
    row: int


class SplitReader:
    """Random access to the pieces of one split: `lengths[i]` and `piece(i)` ([T] or [T, F]).

    Piece order is the manifest's file order, then row order inside each file (rows are sorted by
    piece id when written), so indices are stable across processes and resumes.
    """

    def __init__(self, manifest: ShardManifest, split: str, *, cache_row_groups: int = 4) -> None:
        self.manifest = manifest
        self.split = split
        self.files: list[ShardFile] = manifest.split(split)
        if not self.files:
            have = sorted({f.split for f in manifest.files})
            msg = f"manifest {manifest.encoding}/{manifest.config_hash} has no '{split}' shards "
            msg += f"(splits present: {have}); tokenize that split first"
            raise ValueError(msg)
        self.n_fields = manifest.n_fields if manifest.kind != "flat" else 1
        self._parquet: list[pq.ParquetFile] = []
        lengths: list[np.ndarray] = []
        locs: list[tuple[int, int, int]] = []
        for fi, f in enumerate(self.files):
            path = manifest.abspath(f)
            verify_file(path, f.sha256)
            pf = pq.ParquetFile(path, memory_map=True)
            self._check_schema(pf, path)
            self._parquet.append(pf)
            for rg in range(pf.metadata.num_row_groups):
                col = pf.read_row_group(rg, columns=["length"]).column("length")
                n = len(col)
                lengths.append(col.to_numpy().astype(np.int64))
                locs.extend((fi, rg, r) for r in range(n))
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        self._locs = np.asarray(locs, dtype=np.int64).reshape(-1, 3)
        self._cache: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, cache_row_groups)

    def _check_schema(self, pf: pq.ParquetFile, path: Path) -> None:
        typ = pf.schema_arrow.field("tokens").type
        item = typ.value_type
        if self.manifest.kind == "flat":
            ok = pa.types.is_integer(item)
        else:
            ok = pa.types.is_fixed_size_list(item) and item.list_size == self.n_fields
        if not ok:
            msg = (
                f"shard {path}: tokens column {typ} does not fit a {self.manifest.kind!r} manifest "
                f"with {self.n_fields} field(s); the manifest and shard disagree, re-export it"
            )
            raise ShardIntegrityError(msg)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def _row_group(self, fi: int, rg: int) -> tuple[np.ndarray, np.ndarray]:
        """(offsets [R+1], values [N] or [N, F]) of one row group, LRU-cached."""
        key = (fi, rg)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        col = self._parquet[fi].read_row_group(rg, columns=["tokens"]).column("tokens")
        arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        offsets = arr.offsets.to_numpy().astype(np.int64)
        values = arr.values
        if self.manifest.kind != "flat":
            values = values.values  # fixed_size_list<int16, F> -> int16, F per token
            vals = values.to_numpy(zero_copy_only=False).reshape(-1, self.n_fields)
        else:
            vals = values.to_numpy(zero_copy_only=False)
        self._cache[key] = (offsets, vals)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return offsets, vals

    def piece(self, i: int) -> np.ndarray:
        """Tokens of piece i: int64 [T] (flat) or [T, F] (compound/codec); a copy, safe to edit."""
        assert 0 <= i < len(self), f"piece {i} out of range 0..{len(self) - 1} in '{self.split}'"
        fi, rg, row = (int(v) for v in self._locs[i])
        offsets, vals = self._row_group(fi, rg)
        out = vals[offsets[row] : offsets[row + 1]].astype(np.int64)
        assert len(out) == self.lengths[i], (
            f"{self.manifest.abspath(self.files[fi])}: row {row} of row group {rg} holds "
            f"{len(out)} tokens but its length column says {self.lengths[i]}"
        )
        return out

    def window(self, i: int, start: int, end: int) -> np.ndarray:
        """tokens[start:end] of piece i."""
        return self.piece(i)[start:end]
