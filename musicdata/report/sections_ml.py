"""Report sections that depend on later stages: audio/transcription, training and evaluation.

They are data-driven: a section says so when there is nothing to show yet.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from musicdata.metrics.plots import in_suite_order
from musicdata.report import plots
from musicdata.report.model import Figure, Query, Section, Table

log = logging.getLogger(__name__)
MAX_CURVES = 8
MAX_EVALS = 3  # set-level evaluations drawn (latest by id); all are in the catalog
SET_STATS = ("oa", "kld", "intra_ref_mean", "inter_mean")


def audio(q: Query) -> Section:
    sec = Section("audio", "Audio and transcription")
    transcribed = q(
        "SELECT split, count(*) AS pieces, sum(duration_s) / 3600 AS hours, "
        "sum(n_notes)::BIGINT AS notes FROM pieces p WHERE EXISTS (SELECT 1 FROM lineage e "
        "WHERE e.dst_id = 'piece:' || p.piece_id AND (e.src_id LIKE 'audio:%' "
        "OR e.src_id LIKE 'transcription:%')) GROUP BY split ORDER BY split"
    )
    recorded = q(
        "SELECT split, count(*) AS recordings, sum(duration_s) / 3600 AS hours, "
        "count(*) FILTER (is_silent) AS silent, count(near_duplicate_of) AS near_duplicates "
        "FROM core.recordings GROUP BY split ORDER BY split"
    )
    if recorded:
        sec.tables.append(Table("Recordings per split", recorded))
    runs = q(
        "SELECT model_id, status, count(*) AS recordings, "
        "sum(audio_s) / 3600 AS audio_hours, sum(n_notes)::BIGINT AS notes, "
        "round(sum(seconds), 1) AS transcribe_s, "
        "round(sum(audio_s) / nullif(sum(seconds), 0), 1) AS audio_s_per_transcribe_s "
        "FROM core.transcriptions GROUP BY ALL ORDER BY model_id, status"
    )
    if runs:
        sec.tables.append(
            Table(
                "Transcriptions (basic-pitch)",
                runs,
                note=(
                    "transcribe_s: wall-clock seconds spent transcribing; "
                    "audio_s_per_transcribe_s: seconds of audio transcribed per second of that "
                    "time (speed relative to real time: 20 means a minute of audio took 3 s)."
                ),
            )
        )
    if not (recorded or transcribed):
        sec.text.append("No audio sources in this catalog yet.")
    if transcribed:
        hours = sum(r["hours"] or 0 for r in transcribed)
        sec.text.append(f"{_duration(hours)} of music in the corpus were transcribed from audio.")
        sec.tables.append(Table("Pieces transcribed from audio, per split", transcribed))
    if recorded or transcribed:
        by_split: dict[str, dict[str, float]] = {}
        for r in recorded:
            by_split.setdefault(r["split"], {})["recorded"] = r["hours"] or 0
        for r in transcribed:
            by_split.setdefault(r["split"], {})["transcribed"] = r["hours"] or 0
        labels, values = [], []
        for split in sorted(by_split):
            for what in ("recorded", "transcribed"):
                if what in by_split[split]:
                    labels.append(f"{split}: {what}")
                    values.append(by_split[split][what])
        unit, scale = ("hours", 1.0) if max(values) >= 1 else ("minutes", 60.0)
        sec.figures.append(
            Figure(
                "hours",
                plots.bars(
                    labels,
                    [v * scale for v in values],
                    xlabel=unit,
                    title=f"Audio {unit}",
                    fmt="{:.2f}",
                ),
                f"Audio recorded and transcribed, per split, in {unit}",
            )
        )
    return sec


def _duration(hours: float) -> str:
    """'2.40 hours', '12.5 minutes' or '8.8 seconds': readable at any corpus size."""
    if hours >= 1:
        return f"{hours:.2f} hours"
    if hours * 60 >= 1:
        return f"{hours * 60:.1f} minutes"
    return f"{hours * 3600:.1f} seconds"


def training(q: Query) -> Section:
    sec = Section("training", "Training and evaluation")
    runs = q(
        "SELECT t.train_run_id, t.model, t.encoding, t.device, t.status, t.started_at, "
        "count(c.checkpoint_id) AS checkpoints, max(c.step) AS last_step "
        "FROM train_runs t LEFT JOIN checkpoints c USING (train_run_id) "
        "GROUP BY ALL ORDER BY t.started_at"
    )
    results = q(
        "SELECT r.eval_id, r.metric, r.split, r.value, r.detail_json, r.checkpoint_id, c.step, "
        "c.train_run_id FROM eval_results r LEFT JOIN checkpoints c USING (checkpoint_id) "
        "ORDER BY r.metric, c.step"
    )
    if not runs and not results:
        sec.text.append("No training runs or evaluations recorded yet.")
        return sec
    if runs:
        sec.tables.append(Table("Training runs", runs))
    _loss_curves(sec, q)
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in results:
        if r["step"] is not None:
            series = curves.setdefault(r["metric"], {})
            series.setdefault(f"{r['train_run_id']} {r['split'] or ''}".strip(), []).append(
                (r["step"], r["value"])
            )
    for metric in sorted(curves)[:MAX_CURVES]:
        if max(len(v) for v in curves[metric].values()) < 2:
            continue
        png = plots.curves(curves[metric], xlabel="step", title=metric)
        sec.figures.append(Figure(f"curve-{_slug(metric)}", png, f"{metric} over training"))
    _set_level(sec, results)
    scalar = [
        {k: v for k, v in r.items() if k != "detail_json"}
        for r in results
        if r["metric"].split(".")[-1] not in SET_STATS
    ]
    if scalar:
        sec.tables.append(Table("Evaluation results", scalar))
    return sec


def _loss_curves(sec: Section, q: Query) -> None:
    """Training loss and validation NLL per run, from the per-step metrics the train stage
    records (`train_metrics`)."""
    rows = q(
        "SELECT train_run_id, split, name, step, value FROM train_metrics "
        "WHERE (split = 'train' AND name = 'loss') OR (split = 'validation' AND name = 'nll') "
        "ORDER BY train_run_id, split, step"
    )
    for split, name, title in (
        ("train", "loss", "training loss"),
        ("validation", "nll", "validation NLL"),
    ):
        series: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if (r["split"], r["name"]) == (split, name):
                series.setdefault(r["train_run_id"], []).append((r["step"], r["value"]))
        series = dict(list(series.items())[-MAX_CURVES:])
        if series and max(len(v) for v in series.values()) >= 2:
            png = plots.curves(series, xlabel="step", title=title)
            sec.figures.append(Figure(f"curve-{split}-{name}", png, f"{title} per training run"))


def _set_level(sec: Section, results: list[dict[str, Any]]) -> None:
    """Set-level metrics (`<feature>.<stat>`, plot data in the `.oa` row's detail_json): a table
    per evaluation and one figure of density panels, for the latest MAX_EVALS evaluations."""
    by_eval: dict[str, dict[str, dict[str, Any]]] = {}
    details: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        feature, _, stat = r["metric"].rpartition(".")
        if stat not in SET_STATS:
            continue
        by_eval.setdefault(r["eval_id"], {}).setdefault(feature, {"feature": feature})[stat] = r[
            "value"
        ]
        if stat == "oa" and r["detail_json"]:
            try:
                detail = json.loads(r["detail_json"])
            except json.JSONDecodeError:
                log.warning("eval %s %s: detail_json is not JSON", r["eval_id"], r["metric"])
                continue
            if {"grid", "intra_ref_pdf", "inter_pdf"} <= set(detail):
                details.setdefault(r["eval_id"], []).append({"feature": feature, **detail})
    for eval_id in sorted(by_eval)[-MAX_EVALS:]:
        rows = in_suite_order(
            [
                {"feature": f, **{s: v.get(s) for s in SET_STATS}}
                for f, v in by_eval[eval_id].items()
            ]
        )
        sec.tables.append(
            Table(
                f"Set-level metrics, evaluation {eval_id}",
                rows,
                note=(
                    "Features in the mgeval / PerceiverS order. oa: overlap area of the intra-ref "
                    "and inter distance densities (1 = generated set as varied as the reference); "
                    "kld: KL(intra-ref || inter), 0 is best; *_mean: mean euclidean distance."
                ),
            )
        )
        panels = in_suite_order(details.get(eval_id, []))
        if panels:
            sec.figures.append(
                Figure(
                    f"set-metrics-{_slug(eval_id)}",
                    plots.metric_panels(panels),
                    f"Set-level metrics ({eval_id}) in the mgeval order: "
                    + ", ".join(d["feature"] for d in panels)
                    + ". Densities of euclidean distances (non-negative: curves start at 0).",
                )
            )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
