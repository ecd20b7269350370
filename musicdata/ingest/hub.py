"""Ingest from Hugging Face datasets whose rows hold MIDI bytes or audio.

Sources: `hf://ORG/NAME[:config][@revision]` (through `datasets.load_dataset`, so the Hub cache
and `HF_HUB_OFFLINE` apply), a local folder in the Hub's layout (README `configs`, Parquet), or a
folder written by `Dataset.save_to_disk`. Each row's bytes go into the content store as one
ingest candidate whose path names the dataset, revision, config, split and row index:

    hf://<ORG/NAME or /abs/folder>@<revision>/<config>/<split>#<row>

From there the ingest stage treats them like files: isolated parse, validation, quarantine,
dedup, split, lineage (file:<sha256> -> piece, with that path in `sources`). `discover_any` is
the ingest stage's default `Steps.discover`, so `ingest_paths` and `musicdata ingest` take Hub
sources too.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata.ingest.discover import (
    Candidate,
    Discovery,
    Rejected,
    _store,
    discover,
    sync_store,
)
from musicdata.workspace import Workspace

HF_PREFIX = "hf://"
_SPEC_RE = re.compile(
    r"^hf://(?P<name>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<rev>[\w./-]+))?$"
)
MEDIA_HINTS = ("midi", "mid", "audio", "bytes", "file", "content")
_MB = 1024 * 1024


@dataclass(frozen=True)
class HubSource:
    """One dataset to read: a Hub repo id, or a local folder in either layout."""

    name: str  # ORG/NAME, or the folder's absolute path
    config: str | None
    revision: str | None
    folder: Path | None = None
    saved: bool = False  # a `save_to_disk` folder (read with load_from_disk)


def is_hub_folder(path: Path) -> bool:
    """A folder `datasets` reads as a dataset (not a folder of MIDI files)."""
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return True
    readme = path / "README.md"
    return readme.exists() and "\nconfigs:" in readme.read_text(errors="replace")[:20_000]


def _folder_and_config(spec: str | Path) -> tuple[Path, str | None]:
    """'/path/folder' or '/path/folder:config' (when no file has that literal name)."""
    folder = Path(spec).expanduser().resolve()
    if ":" in folder.name and not folder.exists():
        base, config = str(folder).rsplit(":", 1)
        return Path(base), config
    return folder, None


class NoMediaColumn(ValueError):
    """The dataset has no (single) column of MIDI/audio bytes: e.g. a published token dataset."""


def is_hub_source(spec: str | Path) -> bool:
    return str(spec).startswith(HF_PREFIX) or is_hub_folder(_folder_and_config(spec)[0])


def parse_source(spec: str | Path) -> HubSource:
    text = str(spec)
    if text.startswith(HF_PREFIX):
        m = _SPEC_RE.match(text)
        if not m:
            msg = f"{text}: expected hf://ORG/NAME[:config][@revision]"
            raise ValueError(msg)
        return HubSource(m["name"], m["config"], m["rev"])
    folder, config = _folder_and_config(text)
    saved = (folder / "dataset_dict.json").exists() or (folder / "state.json").exists()
    return HubSource(str(folder), config, _folder_revision(folder), folder, saved)


def _folder_revision(folder: Path) -> str:
    """A content revision for a local copy: sha256 over its files' names and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_MB):
                h.update(chunk)
    return f"sha256-{h.hexdigest()[:16]}"


def _load(src: HubSource, cache: Path) -> dict[str, Any]:
    """split -> datasets.Dataset, media columns cast so rows give raw bytes (never decoded).
    A local folder's Arrow cache goes to `cache` (the workspace), not ~/.cache."""
    import datasets

    if src.saved:
        loaded = datasets.load_from_disk(str(src.folder))
    elif src.folder is not None:
        loaded = datasets.load_dataset(str(src.folder), src.config, cache_dir=str(cache))
    else:
        loaded = datasets.load_dataset(src.name, src.config, revision=src.revision)
    splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    out = {}
    for split, ds in splits.items():
        for col, feat in ds.features.items():
            if isinstance(feat, datasets.Audio):
                ds = ds.cast_column(col, datasets.Audio(decode=False))
        out[split] = ds
    return out


def media_column(features: Any, wanted: str | None = None) -> str:
    """The column that holds the MIDI or audio bytes: `wanted`, else the only bytes-like one
    (or the one whose name says midi/audio)."""
    import datasets

    def bytes_like(f: Any) -> bool:
        if isinstance(f, datasets.Audio):
            return True
        if isinstance(f, datasets.Value):
            return f.dtype in ("binary", "large_binary")
        return isinstance(f, dict) and "bytes" in f

    found = [c for c, f in features.items() if bytes_like(f)]
    if wanted is not None:
        if wanted not in found:
            msg = f"column {wanted!r} does not hold bytes; bytes-like columns: {found or 'none'}"
            raise ValueError(msg)
        return wanted
    if len(found) > 1:
        named = [c for c in found if any(h in c.lower() for h in MEDIA_HINTS)]
        found = named if len(named) == 1 else found
    if len(found) != 1:
        msg = (
            f"cannot tell which column holds the MIDI/audio bytes (bytes-like: {found or 'none'}; "
            f"all: {list(features)}); name it with column=..."
        )
        raise NoMediaColumn(msg)
    return found[0]


def _row_bytes(value: Any) -> bytes | None:
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path") and Path(value["path"]).is_file():
            return Path(value["path"]).read_bytes()
        return data
    return value if isinstance(value, bytes | bytearray) else None


def _kind(head: bytes) -> str:
    from musicdata.audio.decode import sniff_format

    return "audio" if sniff_format(head) else "midi"


def iter_rows(
    src: HubSource, cache: Path, column: str | None = None
) -> Iterator[tuple[str, str, bytes | None]]:
    """(candidate path, split, bytes or None) for every row, in split then row order."""
    splits = _load(src, cache)
    for split in sorted(splits):
        ds = splits[split]
        col = media_column(ds.features, column)
        config = src.config or ds.info.config_name or "default"
        base = f"{HF_PREFIX}{src.name}@{src.revision or 'main'}/{config}/{split}"
        for i, value in enumerate(ds.select_columns([col])):
            yield f"{base}#{i}", split, _row_bytes(value[col])


def discover_hub(ws: Workspace, sources: list[str | Path], column: str | None = None) -> Discovery:
    """Store every row's bytes in the content store and list them as ingest candidates."""
    out = Discovery()
    for spec in sources:
        src = parse_source(spec)
        try:
            _add_rows(ws, src, column, out)
        except NoMediaColumn as exc:  # a dataset of tokens or text, not of media: the source's
            # fault, so it is quarantined like a bad file and the other inputs go on
            detail = f"not a MIDI/audio dataset: {exc}"
            out.rejected.append(Rejected(str(spec), "unsupported_format", detail, stage="ingest"))
    sync_store()
    out.candidates.sort(key=lambda c: c.path)
    return out


def _add_rows(ws: Workspace, src: HubSource, column: str | None, out: Discovery) -> None:
    """Store one source's rows (each row a candidate, or rejected with a reason)."""
    for path, _, data in iter_rows(src, ws.tmp_dir / "hf-datasets", column):
        if data is None:
            detail = "the row's media column is empty (no bytes, no readable path)"
            out.rejected.append(Rejected(path, "no_bytes", detail, stage="ingest"))
            continue
        kind = _kind(data[:16])  # anything not audio goes to the MIDI parser to be judged
        section = ws.config.audio if kind == "audio" else ws.config.ingest
        cap = int(section.max_file_mb * _MB)
        if len(data) > cap:
            detail = f"{len(data)} bytes > cap {cap}"
            out.rejected.append(Rejected(path, "too_large", detail, stage="ingest"))
            continue
        sha, size = _store(ws, io.BytesIO(data), cap)
        out.candidates.append(Candidate(path, sha, size, kind=kind))


def discover_any(ws: Workspace, inputs: list[Any]) -> Discovery:
    """The ingest stage's discover step, extended: Hub sources here, files and folders as ever."""
    hub = [i for i in inputs if is_hub_source(i)]
    files = [Path(i) for i in inputs if not is_hub_source(i)]
    found = discover(ws, files) if files else Discovery()
    if hub:
        extra = discover_hub(ws, hub)
        found.candidates = sorted(found.candidates + extra.candidates, key=lambda c: c.path)
        found.rejected += extra.rejected
    return found
