"""Publish token shards as a Hugging Face Hub dataset: stage a folder in the Hub's layout (one
config per encoding, Parquet per split, tokenizer configs, dataset card), then upload it.

`stage` works offline and is what a dry run (`musicdata publish --out DIR`) does; `upload` is the
only network step. Both are recorded in the catalog (`publishes`, `publish_files`, lineage
shard -> publish). The HF token never reaches a log, file or catalog row.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicdata import __version__
from musicdata.catalog import publishing as pubsql
from musicdata.catalog.connection import now
from musicdata.publish.card import UNKNOWN_LICENSE
from musicdata.publish.stage import (
    DEFAULT_TARGET_FILE_MB,
    StagedConfig,
    StagedDataset,
    build_folder,
)
from musicdata.publish.upload import PublishError, Uploaded, resolve_token, upload
from musicdata.workspace import Workspace

__all__ = [
    "PublishError",
    "StagedConfig",
    "StagedDataset",
    "Uploaded",
    "publish",
    "resolve_token",
    "stage",
    "upload",
]


def stage(
    ws: Workspace,
    out_dir: Path | str,
    encodings: list[str] | None = None,
    splits: list[str] | None = None,
    *,
    license: str | None = None,
    repo_id: str | None = None,
    pretty_name: str | None = None,
    target_file_mb: float = DEFAULT_TARGET_FILE_MB,
    run_id: str | None = None,
) -> StagedDataset:
    """Build the staging folder for `encodings` (names, or 'name@hash'; default: every encoding
    with shards, each pinned to its one config) and record it in the catalog."""
    from musicdata.stages.kit import stage_run

    license_id = license or UNKNOWN_LICENSE
    run_id = run_id or f"publish-{uuid.uuid4().hex[:12]}"
    out = Path(out_dir).expanduser().resolve()
    with stage_run(
        ws, "publish", run_id, keys=("configs", "files"), info={"out_dir": str(out)}
    ) as run:
        staged, files, digest = build_folder(
            ws,
            out,
            encodings,
            splits,
            license_id=license_id,
            target_file_mb=target_file_mb,
            pretty_name=pretty_name,
            repo_id=repo_id,
        )
        t = now()
        with ws.catalog.write() as con:
            pending = pubsql.pending_publish(con, digest, str(out))
        # the staging folder is part of the id: two stagings of the same files within one second
        # (into two folders) are two records
        where = hashlib.sha256(str(out).encode()).hexdigest()[:6]
        publish_id = pending or f"pub-{t:%Y%m%dT%H%M%S}-{digest[:12]}-{where}"
        row = {
            "publish_id": publish_id,
            "manifest_sha256": digest,
            "repo_id": None,
            "revision": None,
            "private": None,
            "encodings": [c.encoding for c in staged],
            "config_hashes": [c.config_hash for c in staged],
            "splits": sorted({s for c in staged for s in c.splits}),
            "license": license_id,
            "out_dir": str(out),
            "n_files": len(files),
            "size_bytes": sum(f["size_bytes"] for f in files),
            "code_version": __version__,
            "run_id": run_id,
            "staged_at": t,
        }
        if pending is None:
            with ws.catalog.write() as con:
                pubsql.record_staged(con, row, files, [s for c in staged for s in c.shard_ids])
        run.add("configs", len(staged))
        run.add("files", len(files))
        run.info["publish_id"] = publish_id
    return StagedDataset(out, ws.root, publish_id, digest, license_id, staged, files)


def publish(
    ws: Workspace,
    repo_id: str | None = None,
    out_dir: Path | str | None = None,
    encodings: list[str] | None = None,
    splits: list[str] | None = None,
    *,
    private: bool = False,
    revision: str | None = None,
    license: str | None = None,
    allow_unknown_license: bool = False,
    token: str | None = None,
    api_factory: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Stage, then (with a repo id) upload. Without `repo_id` it stops after staging (dry run).
    Returns a JSON-ready summary (never the token)."""
    if repo_id is None and out_dir is None:
        msg = "nothing to do: give a repo id to upload, or an output folder for a dry run"
        raise PublishError(msg)
    default = (repo_id or "staged").replace("/", "__")
    out = Path(out_dir) if out_dir is not None else ws.root / "publish" / default
    staged = stage(ws, out, encodings, splits, license=license, repo_id=repo_id)
    summary: dict[str, Any] = {
        "publish_id": staged.publish_id,
        "out_dir": str(staged.out_dir),
        "manifest_sha256": staged.manifest_sha256,
        "license": staged.license,
        "configs": {
            c.encoding: {
                "config_hash": c.config_hash,
                "splits": {
                    s: {"rows": v["rows"], "tokens": v["tokens"]} for s, v in c.splits.items()
                },
            }
            for c in staged.configs
        },
        "files": len(staged.files),
        "size_bytes": staged.size_bytes,
        "dry_run": repo_id is None,
    }
    if repo_id is not None:
        done = upload(
            staged,
            repo_id,
            private=private,
            revision=revision,
            token=token,
            allow_unknown_license=allow_unknown_license,
            api_factory=api_factory,
        )
        summary.update(done.to_dict())
    return summary
