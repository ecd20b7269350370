"""`musicdata publish`: stage the workspace's shards as a Hub dataset folder and upload it.

`--out DIR` without `--repo-id` stops after staging (a dry run that needs no network or token).
The token comes from HF_TOKEN or `hf auth login`; there is deliberately no --token option (a
token on the command line lands in shell history and process listings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from musicdata.cli.common import JsonOpt, app, emit, fail, table_text, workspace


@app.command()
def publish(
    repo_id: Annotated[
        str | None, typer.Option("--repo-id", help="Hub dataset repo ORG/NAME to upload to.")
    ] = None,
    encoding: Annotated[
        list[str] | None,
        typer.Option(
            "--encoding",
            "--encodings",
            "-e",
            help="Encoding (or NAME@CONFIG_HASH); repeatable. Default: every one with shards.",
        ),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", "--splits", help="Split to publish; repeatable.")
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Branch to commit to (default main).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Staging folder (default <home>/publish/<repo>)."),
    ] = None,
    license_id: Annotated[
        str | None,
        typer.Option("--license", help="SPDX id of the sources' license (default: other)."),
    ] = None,
    allow_unknown_license: Annotated[
        bool,
        typer.Option(
            "--allow-unknown-license", help="Upload even though the sources' license is unknown."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish shards as a Hugging Face Hub dataset (with --out alone: a dry run).

    One config per encoding, Parquet per split, tokenizer configs and a dataset card. With
    --out and no --repo-id it stops after staging the folder (no network, no token)."""
    from musicdata.datasets import ConfigChoiceError
    from musicdata.publish import PublishError
    from musicdata.publish import publish as run_publish

    if repo_id is None and out is None:
        fail(
            "nothing to publish to",
            error="usage",
            hint="give --repo-id ORG/NAME to upload, or --out DIR alone for a dry run",
        )
    ws = workspace()
    try:
        summary = run_publish(
            ws,
            repo_id,
            out,
            encoding or None,
            split or None,
            private=private,
            revision=revision,
            license=license_id,
            allow_unknown_license=allow_unknown_license,
        )
    except (PublishError, ConfigChoiceError, FileExistsError, FileNotFoundError) as exc:
        fail(str(exc), error="publish")
    emit(summary, as_json, *_text(summary))


def _text(s: dict[str, Any]) -> list[Any]:
    rows = [
        {"config": name, "config_hash": c["config_hash"], "split": split, **v}
        for name, c in s["configs"].items()
        for split, v in c["splits"].items()
    ]
    head = (
        f"staged {s['files']} files ({s['size_bytes']:,} bytes) in {s['out_dir']} "
        f"as publish {s['publish_id']}, license {s['license']}"
    )
    tail = (
        "dry run: nothing uploaded; load it with datasets.load_dataset(<folder>, <config>)"
        if s["dry_run"]
        else f"uploaded to {s['repo_id']}@{s['revision']}, commit {s.get('commit_sha')}"
    )
    return [head, table_text(rows), tail]
