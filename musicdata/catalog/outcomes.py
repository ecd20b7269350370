"""The one recorder of per-input outcomes: quarantine rows and stage_results done-markers.

Every stage reports each input as an `Outcome`; this turns a batch of them into rows in the
caller's transaction, so "what is done under this config" and "why was this file refused" are
written the same way by ingest, transcribe, tokenize, codec, train and publish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from musicdata.catalog import records
from musicdata.catalog.connection import now


@dataclass(frozen=True)
class Outcome:
    """What became of one input. status: ok | quarantined | skipped (skipped writes no row).
    `path`/`sha256` name the user's file in the quarantine row; `input_id` keys the done-marker."""

    input_id: str
    status: str
    output_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    path: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        assert self.status in ("ok", "quarantined", "skipped"), f"bad status {self.status!r}"
        assert self.status != "quarantined" or self.reason, "a quarantine needs a reason"

    @classmethod
    def quarantined(cls, input_id: str, reason: str, detail: str, **kw: Any) -> Outcome:
        return cls(input_id, "quarantined", reason=reason, detail=detail, **kw)


def record_outcomes(
    con: Any,
    stage: str,
    config_hash: str,
    run_id: str,
    outcomes: list[Outcome],
    *,
    mark_done: bool = True,
    detail_prefix: bool = False,
) -> None:
    """Quarantine rows for refused inputs and (if `mark_done`) stage_results rows for every
    recorded input. `detail_prefix`: prefix the detail with the input id (pieces, whose
    quarantine path is the source file's)."""
    t = now()
    quarantine = [
        {
            "path": o.path or o.input_id,
            "sha256": o.sha256,
            "stage": stage,
            "reason": o.reason,
            "detail": f"{o.input_id}: {o.detail}" if detail_prefix else o.detail,
            "config_hash": config_hash,
            "run_id": run_id,
            "created_at": t,
        }
        for o in outcomes
        if o.status == "quarantined"
    ]
    done = [
        {
            "stage": stage,
            "input_id": o.input_id,
            "config_hash": config_hash,
            "status": o.status,
            "output_id": o.output_id,
            "run_id": run_id,
            "created_at": t,
        }
        for o in outcomes
        if mark_done and o.status != "skipped"
    ]
    records.insert_rows(con, "quarantine", quarantine)
    records.insert_rows(con, "stage_results", done, on_conflict_nothing=True)
