"""Upload a staged folder to a Hugging Face Hub dataset repo, and record it in the catalog.

The token comes from the caller, else `HF_TOKEN`, else the user's `hf auth login`; it is handed
to `HfApi` and nothing else: never printed, logged, written to a file or a catalog row, and
never part of an error message. `HF_HUB_OFFLINE=1` stops before any network call with a clear
message; the staged folder and its catalog row stay as they were, so the same call resumes.

huggingface_hub 2.x has no `upload_large_folder`; its `upload_folder` is the resumable one (with
`hf_xet`: streamed, committed in batches, re-running the call skips what is already uploaded).
An `HfApi` from older releases that still has `upload_large_folder` uses that.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata.catalog import Catalog
from musicdata.catalog import publishing as pubsql
from musicdata.fsutil import sha256_file
from musicdata.publish.card import UNKNOWN_LICENSE
from musicdata.publish.stage import StagedDataset

log = logging.getLogger(__name__)
DEFAULT_REVISION = "main"
_TRUE = {"1", "true", "yes", "on"}


class PublishError(RuntimeError):
    """The upload cannot proceed; the message says why and what to do (and holds no secret)."""


@dataclass(frozen=True)
class Uploaded:
    publish_id: str
    repo_id: str
    revision: str
    commit_sha: str | None
    commit_url: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def offline() -> bool:
    return any(
        os.environ.get(k, "").strip().lower() in _TRUE
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve_token(token: str | None = None) -> str:
    """The explicit token, else HF_TOKEN, else the saved login; an error names the fix."""
    if token:
        return token
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    from huggingface_hub import get_token

    saved = get_token()
    if saved:
        return saved
    msg = "no Hugging Face token: set HF_TOKEN or run `hf auth login`, then run the same command"
    raise PublishError(msg)


def verify_folder(staged: StagedDataset) -> None:
    """Refuse to upload a folder whose files changed since staging (the catalog row would lie)."""
    for f in staged.files:
        path = staged.out_dir / f["path"]
        if not path.is_file() or sha256_file(path) != f["sha256"]:
            msg = (
                f"{path}: changed or missing since it was staged (publish {staged.publish_id}); "
                "stage again (`musicdata publish --out ...`) before uploading"
            )
            raise PublishError(msg)


def upload(
    staged: StagedDataset,
    repo_id: str,
    *,
    private: bool,
    revision: str | None = None,
    token: str | None = None,
    allow_unknown_license: bool = False,
    api_factory: Callable[[str], Any] | None = None,
) -> Uploaded:
    """Create the dataset repo (and branch) if needed, upload the folder, record the commit.

    `api_factory(token)` returns an `HfApi`-like client (default `HfApi(token=token)`; tests
    pass a fake, so no test needs the network).
    """
    revision = revision or DEFAULT_REVISION
    if "/" not in repo_id or repo_id.count("/") != 1:
        msg = f"repo id {repo_id!r}: expected ORG/NAME"
        raise PublishError(msg)
    if staged.license == UNKNOWN_LICENSE and not allow_unknown_license:
        msg = (
            "the sources' licenses are unknown (the card says license: other); re-stage with "
            "--license <SPDX id> if you know them, or pass --allow-unknown-license to publish "
            "anyway"
        )
        raise PublishError(msg)
    verify_folder(staged)
    if offline():
        msg = (
            "HF_HUB_OFFLINE is set: nothing was uploaded. The staged folder "
            f"{staged.out_dir} and its catalog record ({staged.publish_id}) are kept; unset "
            "HF_HUB_OFFLINE and run the same command to upload (it resumes)"
        )
        raise PublishError(msg)
    api = (api_factory or _hf_api)(resolve_token(token))
    log.info("uploading %s to dataset repo %s@%s", staged.out_dir, repo_id, revision)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision != DEFAULT_REVISION:
        api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
    commit_sha, commit_url = _push(api, staged.out_dir, repo_id, revision, private)
    if commit_sha is None:
        info = api.repo_info(repo_id, repo_type="dataset", revision=revision)
        commit_sha = getattr(info, "sha", None)
    publish_id = record_upload(staged, repo_id, revision, private, commit_sha, commit_url)
    return Uploaded(publish_id, repo_id, revision, commit_sha, commit_url)


def _hf_api(token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _push(
    api: Any, folder: Path, repo_id: str, revision: str, private: bool
) -> tuple[str | None, str | None]:
    ignore = [".cache/**"]
    if hasattr(api, "upload_large_folder"):
        api.upload_large_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="dataset",
            revision=revision,
            private=private,
            ignore_patterns=ignore,
        )
        return None, None
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="dataset",
        revision=revision,
        commit_message=f"musicdata: publish {folder.name}",
        ignore_patterns=ignore,
    )
    return getattr(info, "oid", None), getattr(info, "commit_url", None)


def record_upload(
    staged: StagedDataset,
    repo_id: str,
    revision: str,
    private: bool,
    commit_sha: str | None,
    commit_url: str | None,
) -> str:
    """Mark the staged row uploaded, or (folder sent to a second repo or revision) add a row."""
    catalog = Catalog(staged.home / "catalog.duckdb")
    with catalog.write() as con:
        row = pubsql.get_publish(con, staged.publish_id)
        if row is None:
            msg = f"publish {staged.publish_id} is not in {catalog.path}; stage it again"
            raise PublishError(msg)
        same = row["repo_id"] in (None, repo_id) and row["revision"] in (None, revision)
        target = hashlib.sha256(f"{repo_id}@{revision}".encode()).hexdigest()[:8]
        new_id = None if same else f"{staged.publish_id}-{target}"
        return pubsql.record_uploaded(
            con,
            staged.publish_id,
            repo_id=repo_id,
            revision=revision,
            private=private,
            commit_sha=commit_sha,
            commit_url=commit_url,
            new_id=new_id,
        )
