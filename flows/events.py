"""Prefect events the stages emit when they complete, for automations to react to.

Names are `musicdata.<stage>.completed`. The resource is what the stage produced, with labels an
automation matches on and passes to the deployment it runs:

| event | resource id |
|---|---|
| `musicdata.ingest.completed` | `musicdata.workspace.<workspace id>` |
| `musicdata.transcribe.completed` | `musicdata.workspace.<workspace id>` |
| `musicdata.tokenize.completed` | `musicdata.encoding.<encoding>.<config hash>` |
| `musicdata.train.completed` | `musicdata.train-run.<train run id>` |
| `musicdata.evaluate.completed` | `musicdata.eval.<eval id>` |

Every resource carries the labels `musicdata.workspace` (the workspace folder, the `home`
parameter of every flow) and `musicdata.chained`: "true" when the flow that ran the stage goes on
to the next stage itself (inside `ingest-and-train`), so the repo's automations (which match
"false") never start a second copy of work the main job is about to do. Events are sent only to
a configured server (PREFECT_API_URL), where automations run: without one (Prefect's ephemeral
mode) nothing would react, and emitting would start a temporary server just for the event.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prefect.events import emit_event
from prefect.settings import get_current_settings

PREFIX = "musicdata"


def workspace_id(home: str) -> str:
    """A short stable id of a workspace folder (resource ids must not contain slashes)."""
    return hashlib.sha256(home.encode()).hexdigest()[:12]


def resource_for(stage: str, summary: dict[str, Any], home: str) -> dict[str, str]:
    """The event's resource (id + labels) for a completed stage's summary."""
    if stage == "tokenize":
        rid = f"{PREFIX}.encoding.{summary['encoding']}.{summary.get('config_hash', '')}"
        labels = {"musicdata.encoding": summary["encoding"]}
        labels["musicdata.config_hash"] = summary.get("config_hash", "")
    elif stage == "train":
        rid = f"{PREFIX}.train-run.{summary['train_run_id']}"
        labels = {k: str(summary[k]) for k in ("train_run_id", "model", "encoding", "preset")}
        labels = {f"musicdata.{k}": v for k, v in labels.items()}
    elif stage == "evaluate":
        rid = f"{PREFIX}.eval.{summary['eval_id']}"
        labels = {
            "musicdata.train_run_id": summary["train_run_id"],
            "musicdata.checkpoint_id": summary["checkpoint_id"],
            "musicdata.split": str(summary.get("split", "")),
        }
    else:
        rid = f"{PREFIX}.workspace.{workspace_id(home)}"
        labels = {}
    return {
        "prefect.resource.id": rid,
        "prefect.resource.name": rid.split(".", 2)[-1],
        "musicdata.workspace": home,
        "musicdata.run_id": str(summary.get("run_id", "")),
        **labels,
    }


def _payload(summary: dict[str, Any]) -> dict[str, Any]:
    """Counters and facts only (an event is small): numbers, short strings, reasons."""
    keep = (int, float, str, bool)
    out = {k: v for k, v in summary.items() if isinstance(v, keep) and len(str(v)) <= 500}
    if summary.get("reasons"):
        out["reasons"] = dict(summary["reasons"])
    return out


def emit_completed(
    stage: str, summary: dict[str, Any], home: str, *, chained: bool = False
) -> dict[str, str]:
    """Emit `musicdata.<stage>.completed` for one stage result; returns the resource."""
    resource = resource_for(stage, summary, home)
    resource["musicdata.chained"] = "true" if chained else "false"
    if not get_current_settings().api.url:
        return resource
    ws_id = f"{PREFIX}.workspace.{workspace_id(home)}"
    related = []
    if resource["prefect.resource.id"] != ws_id:
        related.append({"prefect.resource.id": ws_id, "prefect.resource.role": "workspace"})
    emit_event(
        event=f"{PREFIX}.{stage}.completed",
        resource=resource,
        related=related,
        payload=_payload(summary),
    )
    return resource
