"""Stage a Hub dataset folder from a workspace: one config per encoding, Parquet per split.

Layout (what `datasets.load_dataset(<folder or repo>, <encoding>)` reads, README configs first):

    README.md                                   dataset card (YAML configs + statistics)
    data/<encoding>/<split>-00000-of-00002.parquet
    tokenizers/<encoding>/tokenizer.json        MidiTok: `<Class>.from_pretrained(<that folder>)`
    musicdata_manifest.json                     configs and every file's sha256 (no secrets)

Parquet files hold the dataset layout of `musicdata.datasets` (named sub-token fields), rows
sorted by piece id, re-chunked to about `target_file_mb` of Arrow data each and written with the
workspace's shard compression, so the same catalog state gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicdata.catalog import publishing as pubsql
from musicdata.datasets import EncodingConfig, config_splits, pick_config, read_config_split
from musicdata.fsutil import sha256_file
from musicdata.schemas.faults import fault
from musicdata.workspace import Workspace

MANIFEST = "musicdata_manifest.json"
DEFAULT_TARGET_FILE_MB = 256.0  # Arrow bytes per Parquet file; the Hub advises files < ~500 MB
MAX_ROW_GROUP_ROWS = 1_024  # small row groups keep the Hub's dataset viewer responsive


@dataclass(frozen=True)
class StagedConfig:
    """One encoding config as staged: its splits' rows, tokens and files."""

    encoding: str
    config_hash: str
    kind: str
    vocab_size: int
    sub_tokens: list[str] | None
    sub_vocab_sizes: list[int] | None
    paper: str | None
    tokenizer_dir: str  # relative to the staging folder
    tokenizer_class: str | None  # MidiTok class that loads it, if any
    splits: dict[str, dict[str, Any]]  # split -> {rows, tokens, files: [relpath]}
    shard_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StagedDataset:
    """A staging folder ready to upload, and its record in the catalog."""

    out_dir: Path
    home: Path
    publish_id: str
    manifest_sha256: str
    license: str
    configs: list[StagedConfig]
    files: list[dict[str, Any]]  # path, sha256, size_bytes, n_rows

    @property
    def size_bytes(self) -> int:
        return sum(f["size_bytes"] for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"], d["home"] = str(self.out_dir), str(self.home)
        d["size_bytes"] = self.size_bytes
        return d


def parse_encoding_spec(spec: str) -> tuple[str, str | None]:
    """'remi' or 'remi@<config hash or prefix>'."""
    name, _, chash = spec.partition("@")
    return name, chash or None


def resolve_configs(con: Any, encodings: list[str] | None, where: str) -> list[EncodingConfig]:
    """The pinned config of each encoding named (default: every encoding with shards)."""
    if not encodings:
        encodings = pubsql.encodings_with_shards(con)
        if not encodings:
            msg = f"{where}: no shards to publish; run `musicdata tokenize` first"
            raise ValueError(msg)
    out = [pick_config(con, *parse_encoding_spec(e), where=where) for e in encodings]
    names = [c.encoding for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        msg = f"one config per encoding in a publication; {dup} named more than once"
        raise ValueError(msg)
    return out


def chunk_rows(table: pa.Table, target_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) slices of about `target_bytes` of Arrow data each (at least one row)."""
    if table.num_rows == 0:
        return [(0, 0)]
    per_row = max(1, table.nbytes // table.num_rows)
    rows = max(1, target_bytes // per_row)
    return [(i, min(rows, table.num_rows - i)) for i in range(0, table.num_rows, rows)]


def _write_parquet(table: pa.Table, path: Path, ws: Workspace) -> None:
    cfg = ws.config.shards
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        compression=cfg.compression,
        compression_level=cfg.compression_level,
        row_group_size=min(cfg.row_group_rows, MAX_ROW_GROUP_ROWS),
        write_statistics=True,
    )


def _tokenizer_class(path: Path) -> str | None:
    """The MidiTok class named in a saved tokenizer config (None: not a MidiTok config)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    name = doc.get("tokenization") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else None


def _stage_config(
    ws: Workspace, tmp: Path, cfg: EncodingConfig, shards: list[dict[str, Any]], target: int
) -> StagedConfig:
    """Write one config's Parquet files and tokenizer folder; `shards`: the chosen splits'."""
    chosen = config_splits(shards, None)
    staged_splits: dict[str, dict[str, Any]] = {}
    for split in chosen:
        table = read_config_split(ws.root, cfg, shards, split)
        chunks = chunk_rows(table, target)
        files = []
        for i, (off, n) in enumerate(chunks):
            rel = f"data/{cfg.encoding}/{split}-{i:05d}-of-{len(chunks):05d}.parquet"
            _write_parquet(table.slice(off, n), tmp / rel, ws)
            fault("publish.mid_stage")  # some of the staging folder written
            files.append(rel)
        staged_splits[split] = {
            "rows": table.num_rows,
            "tokens": int(pc.sum(table.column("length")).as_py() or 0),
            "files": files,
        }
    src = ws.abspath(cfg.config_path)
    if not src.exists():
        msg = (
            f"{src}: tokenizer config of {cfg.encoding}@{cfg.config_hash} is missing; "
            "re-run `musicdata tokenize` to write it again"
        )
        raise FileNotFoundError(msg)
    tok_dir = f"tokenizers/{cfg.encoding}"
    # MidiTok's from_pretrained(<folder>) reads <folder>/tokenizer.json; codecs keep their name
    name = src.name if cfg.kind == "codec" else "tokenizer.json"
    dest = tmp / tok_dir / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return StagedConfig(
        encoding=cfg.encoding,
        config_hash=cfg.config_hash,
        kind=cfg.kind,
        vocab_size=cfg.vocab_size,
        sub_tokens=cfg.sub_tokens,
        sub_vocab_sizes=cfg.sub_vocab_sizes,
        paper=cfg.paper,
        tokenizer_dir=tok_dir,
        tokenizer_class=_tokenizer_class(dest),
        splits=staged_splits,
        shard_ids=sorted(s["shard_id"] for s in shards),
    )


def _file_rows(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        n_rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else None
        rows.append(
            {
                "path": rel,
                "sha256": sha256_file(path),
                "size_bytes": path.stat().st_size,
                "n_rows": n_rows,
            }
        )
    return rows


def _replace_folder(tmp: Path, out_dir: Path) -> None:
    """Swap the built folder into place; only an earlier staging folder may be replaced."""
    if out_dir.exists():
        if not (out_dir / MANIFEST).exists():
            msg = (
                f"{out_dir} exists and is not a musicdata staging folder (no {MANIFEST}); pick an "
                "empty or new --out folder"
            )
            if any(out_dir.iterdir()):
                raise FileExistsError(msg)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        fault("publish.swap")  # the old folder moved aside, the new one not yet in place
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)


def _remove_killed_builds(out_dir: Path) -> None:
    """Delete the half-built (`.<name>.tmp-<pid>`) and set-aside (`.<name>.old-<pid>`) folders a
    killed publish left beside `out_dir`; a live process's are left alone (issue 18)."""
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, pid = path.name[len(out_dir.name) + 2 :].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def build_folder(
    ws: Workspace,
    out_dir: Path,
    encodings: list[str] | None,
    splits: list[str] | None,
    *,
    license_id: str,
    target_file_mb: float = DEFAULT_TARGET_FILE_MB,
    pretty_name: str | None = None,
    repo_id: str | None = None,
) -> tuple[list[StagedConfig], list[dict[str, Any]], str]:
    """Write the staging folder (built beside it, then swapped in): returns the staged configs,
    every file with its sha256, and the manifest hash that names this exact content. The
    catalog is read once, up front (each DuckDB open costs ~0.1 s)."""
    from musicdata.publish.card import card_facts, render_card

    with ws.catalog.read() as con:
        configs = resolve_configs(con, encodings, str(ws.catalog_path))
        shards = {}
        for c in configs:
            rows = pubsql.config_shards(con, c.encoding, c.config_hash)
            chosen = config_splits(rows, splits)
            shards[c.encoding] = [r for r in rows if r["split"] in chosen]
        facts = card_facts(con, configs, [r["shard_id"] for v in shards.values() for r in v])
    out_dir = out_dir.expanduser().resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_killed_builds(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        target = int(target_file_mb * 1024 * 1024)
        staged = [_stage_config(ws, tmp, c, shards[c.encoding], target) for c in configs]
        card = render_card(
            staged, facts, license_id=license_id, pretty_name=pretty_name, repo_id=repo_id
        )
        (tmp / "README.md").write_text(card)
        files = _file_rows(tmp)
        manifest = {
            "format": 1,
            "configs": [{k: v for k, v in asdict(c).items() if k != "shard_ids"} for c in staged],
            "license": license_id,
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _replace_folder(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    digest = hashlib.sha256(pubsql.files_json(files).encode()).hexdigest()
    return staged, files, digest
