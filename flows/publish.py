"""Flows `publish` (shards -> a Hub dataset folder, uploaded when a repo is named) and `metrics`
(a generated set against a reference set, recorded in the catalog).

Thin wrappers: the library does the work (musicdata.publish, musicdata.stages.metrics); these add
the Prefect task (retries for transient I/O only), the artifacts and the completion event. The
HF token comes from the worker's environment (HF_TOKEN), never from a parameter: parameters are
stored on the server and shown in the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from musicdata.flows.events import emit_completed
from musicdata.flows.policy import stage_task
from musicdata.workspace import Workspace


def _publish(ws: Workspace, **kwargs: Any) -> dict[str, Any]:
    from musicdata.publish import publish

    return publish(ws, **kwargs)


def _metrics(ws: Workspace, ref_dir: str, gen_dir: str, record: bool) -> dict[str, Any]:
    from musicdata.stages.metrics import evaluate_folders, record_evaluation

    ev = evaluate_folders(Path(ref_dir), Path(gen_dir))
    summary = ev.summary()
    summary["rows_new"] = record_evaluation(ws.catalog, ev) if record else 0
    return summary


# Uploading retries transient network/I/O errors; a refused upload (license, token) is not.
# No `catalog-writer` tag: they would hold its slot for minutes (an upload); it is for short
# record steps, and the workspace run lock orders these against other stages.
_publish_task = stage_task(_publish, "publish-dataset")
_metrics_task = stage_task(_metrics, "set-level-metrics")


@flow(name="publish")
def publish_flow(
    home: str | None = None,
    config: str | None = None,
    repo_id: str | None = None,
    out: str | None = None,
    encodings: list[str] | None = None,
    splits: list[str] | None = None,
    private: bool = False,
    revision: str | None = None,
    license: str | None = None,
    allow_unknown_license: bool = False,
) -> dict[str, Any]:
    """Stage the shards as a Hub dataset folder (`out`; default <home>/publish/<repo>, or
    <home>/publish/staged for a dry run) and, with `repo_id`, upload it (HF_TOKEN from the
    worker's environment)."""
    ws = Workspace.open(home, Path(config) if config else None)
    if out is None and repo_id is None:  # a dry run into the workspace
        out = str(ws.root / "publish" / "staged")
    s = _publish_task(
        ws,
        repo_id=repo_id,
        out_dir=out,
        encodings=encodings,
        splits=splits,
        private=private,
        revision=revision,
        license=license,
        allow_unknown_license=allow_unknown_license,
    )
    rows = [
        {"config": name, "config_hash": c["config_hash"], "split": split, **v}
        for name, c in s["configs"].items()
        for split, v in c["splits"].items()
    ]
    facts = [{"what": k, "value": v} for k, v in s.items() if not isinstance(v, dict | list)]
    create_table_artifact(key="publish-summary", table=facts, description=s["publish_id"])
    create_table_artifact(key="publish-configs", table=rows, description=s["publish_id"])
    get_run_logger().info("publish: %s", s)
    emit_completed("publish", s, str(ws.root))
    return s


@flow(name="metrics")
def metrics_flow(
    ref_dir: str,
    gen_dir: str,
    home: str | None = None,
    config: str | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Compare a generated MIDI folder to a reference folder (per-feature KL divergence and
    overlap area) and record the result in the catalog."""
    ws = Workspace.open(home, Path(config) if config else None)
    s = _metrics_task(ws, ref_dir, gen_dir, record)
    rows = [{"feature": k, **v} for k, v in s["features"].items()]
    create_table_artifact(key="metrics-features", table=rows, description=s["eval_id"])
    emit_completed("metrics", s, str(ws.root))
    return s
