"""The events stages emit and the automations in infra/prefect.yaml agree: a tokenize of a
configured encoding outside the main job starts training with that encoding and workspace, an
evaluation starts the report, and work the main job chains itself starts nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from prefect.events import DeploymentEventTrigger
from prefect.events.schemas.events import Event, Resource

from musicdata.flows.events import emit_completed, resource_for

REPO = Path(__file__).resolve().parents[2]
TOKENIZED = {"stage": "tokenize:nb-pf", "run_id": "r1:tokenize:nb-pf", "encoding": "nb-pf"}
TOKENIZED |= {"config_hash": "5f0c2a9e1b7d", "tokenized": 6, "reasons": {}}
EVALUATED = {"stage": "evaluate", "run_id": "evaluate:eval-1", "eval_id": "eval-1"}
EVALUATED |= {"train_run_id": "train-nmt-nb-pf-1", "checkpoint_id": "c:step-6", "split": "test"}


def triggers(deployment: str) -> list[DeploymentEventTrigger]:
    spec = yaml.safe_load((REPO / "infra" / "prefect.yaml").read_text())
    (dep,) = [d for d in spec["deployments"] if d["name"] == deployment]
    return [DeploymentEventTrigger(**t) for t in dep["triggers"]]


def event(stage: str, summary: dict[str, Any], chained: bool) -> Event:
    resource = resource_for(stage.split(":")[0], summary, "/data/ws one")
    resource["musicdata.chained"] = "true" if chained else "false"
    return Event(event=f"musicdata.{stage.split(':')[0]}.completed", resource=Resource(resource))


def fires(trigger: DeploymentEventTrigger, ev: Event) -> bool:
    return ev.event in trigger.expect and trigger.match.matches(ev.resource)


def rendered(trigger: DeploymentEventTrigger, ev: Event) -> dict[str, str]:
    env = jinja2.Environment(autoescape=False)  # noqa: S701 - parameters, not HTML
    return {k: env.from_string(v).render(event=ev) for k, v in trigger.parameters.items()}


def test_tokenize_event_starts_training_for_configured_encodings() -> None:
    (trigger,) = triggers("on-tokenized")
    ev = event("tokenize", TOKENIZED, chained=False)
    assert ev.resource.id == "musicdata.encoding.nb-pf.5f0c2a9e1b7d"
    assert fires(trigger, ev)
    assert rendered(trigger, ev) == {"home": "/data/ws one", "encoding": "nb-pf"}
    remi = event("tokenize", {**TOKENIZED, "encoding": "remi"}, chained=False)
    assert not fires(trigger, remi)  # nmt does not train on remi: not a configured encoding
    assert not fires(trigger, event("tokenize", TOKENIZED, chained=True))  # the main job trains


def test_evaluate_event_starts_the_report() -> None:
    (trigger,) = triggers("on-evaluated")
    ev = event("evaluate", EVALUATED, chained=False)
    assert fires(trigger, ev)
    assert rendered(trigger, ev) == {"home": "/data/ws one"}
    assert not fires(trigger, event("evaluate", EVALUATED, chained=True))
    assert not fires(trigger, event("tokenize", TOKENIZED, chained=False))


@pytest.mark.parametrize(
    ("stage", "summary", "resource_id"),
    [
        ("train", {"train_run_id": "t1", "model": "nmt", "encoding": "nb-pf", "preset": "debug"},
         "musicdata.train-run.t1"),
        ("ingest", {"ok": 3, "reasons": {"unparseable": 2}}, "musicdata.workspace."),
    ],
)  # fmt: skip
def test_resources_name_what_the_stage_produced(
    stage: str, summary: dict[str, Any], resource_id: str
) -> None:
    res = resource_for(stage, summary, "/ws")
    assert res["prefect.resource.id"].startswith(resource_id)
    assert res["musicdata.workspace"] == "/ws"
    assert all(isinstance(v, str) for v in res.values())  # Prefect labels are strings


def test_emit_without_a_server_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    res = emit_completed("tokenize", TOKENIZED, "/ws", chained=True)
    assert res["musicdata.chained"] == "true"
