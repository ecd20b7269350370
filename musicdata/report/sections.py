"""Report sections over the corpus and its token shards: corpus, lengths, compression (with
round-trip fidelity), quarantine; the vocabulary section is in `vocab.py`. Each builder runs a
few short read-only queries (the analyst views) and draws."""

from __future__ import annotations

import logging

import numpy as np

from musicdata.report import plots
from musicdata.report.html import fmt_percent
from musicdata.report.model import Figure, Query, Section, Table
from musicdata.report.vocab import group_indices, labels

log = logging.getLogger(__name__)


def corpus(q: Query) -> Section:
    sec = Section("corpus", "Corpus")
    status = q("SELECT status, count(*) AS inputs FROM sources GROUP BY status ORDER BY status")
    splits = q(
        "SELECT split, count(*) AS pieces, round(sum(duration_s) / 3600, 3) AS hours, "
        "sum(n_notes)::BIGINT AS notes, count(near_duplicate_of) AS near_duplicates "
        "FROM pieces GROUP BY split ORDER BY CASE split WHEN 'train' THEN 0 "
        "WHEN 'validation' THEN 1 ELSE 2 END"
    )
    n = {r["status"]: r["inputs"] for r in status}
    hours = sum(r["hours"] or 0 for r in splits)
    sec.text.append(
        f"{sum(n.values())} inputs: {n.get('ok', 0)} ok, {n.get('quarantined', 0)} quarantined; "
        f"{sum(r['pieces'] for r in splits)} pieces, {hours:.2f} hours of music."
    )
    sec.tables += [Table("Inputs by status", status), Table("Pieces per split", splits)]
    return sec


def lengths(q: Query) -> Section:
    sec = Section("lengths", "Sequence lengths")
    stats = q(
        "SELECT encoding, config_hash, split, pieces, tokens, round(mean_length, 1) AS mean, "
        "p50_length AS p50, p90_length AS p90, p95_length AS p95, p99_length AS p99, "
        "max_length AS max FROM token_length_stats ORDER BY encoding, config_hash, "
        "CASE split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 ELSE 2 END"
    )
    if not stats:
        sec.text.append("No token shards yet: run `musicdata tokenize --encoding remi`.")
        return sec
    label_of = labels(stats)
    data: dict[str, dict[str, np.ndarray]] = {}
    table = q("SELECT encoding, config_hash, split, length FROM token_lengths", arrow=True)
    for (enc, chash, split), idx in group_indices(table, ("encoding", "config_hash", "split")):
        data.setdefault(label_of[(enc, chash)], {})[split] = table["length"].to_numpy()[idx]
    sec.text.append(
        "Tokens per piece, read in place from the Parquet shards (view `token_length_stats`; "
        "compound encodings count one step per compound token)."
    )
    sec.figures.append(
        Figure("lengths", plots.length_histograms(data), "Sequence lengths per encoding")
    )
    sec.tables.append(Table("Length percentiles per encoding and split", stats))
    return sec


def compression(q: Query) -> Section:
    sec = Section("compression", "Compression vs remi")
    per_enc = q(
        "SELECT encoding, config_hash, sum(pieces)::BIGINT AS pieces, "
        "round(sum(tokens) / sum(baseline_tokens), 3) AS length_ratio_vs_remi "
        "FROM length_vs_remi GROUP BY ALL ORDER BY length_ratio_vs_remi"
    )
    density = q(
        "SELECT encoding, config_hash, round(sum(length) / sum(n_notes), 2) AS tokens_per_note, "
        "round(median(tokens_per_second), 1) AS median_tokens_per_second "
        "FROM piece_lengths GROUP BY ALL ORDER BY tokens_per_note"
    )
    if not density:
        sec.text.append("No token shards yet.")
        return sec
    if per_enc:
        label_of = labels(per_enc)
        sec.figures.append(
            Figure(
                "compression",
                plots.bars(
                    [label_of[(r["encoding"], r["config_hash"])] for r in per_enc],
                    [r["length_ratio_vs_remi"] for r in per_enc],
                    xlabel="total tokens / remi tokens (same pieces)",
                    title="Sequence length relative to remi (lower is shorter)",
                    reference=1.0,
                ),
                "Length ratio vs remi",
            )
        )
        sec.tables.append(Table("Length relative to remi (all splits)", per_enc))
        by_split = q("SELECT * FROM length_vs_remi ORDER BY encoding, split")
        sec.tables.append(Table("Length relative to remi per split", by_split))
    else:
        sec.text.append("remi is not tokenized, so there is no baseline to compare against.")
    sec.tables.append(Table("Tokens per note and per second", density))
    has_fidelity = q(
        "SELECT count(*) AS n FROM duckdb_views() WHERE schema_name = 'main' "
        "AND view_name = 'fidelity'"
    )[0]["n"]
    if has_fidelity:
        _fidelity(sec, q)
    return sec


def _fidelity(sec: Section, q: Query) -> None:
    """Round-trip fidelity as percentages that never round a lossy encoding up to 100%, with
    the count of pieces that lost a note."""
    rows = q(
        "SELECT encoding, config_hash, lossless AS lossless_by_design, pieces, lossy_pieces, "
        "notes, recovered AS notes_recovered, fidelity, worst_piece, decode_errors "
        "FROM fidelity ORDER BY encoding, config_hash"
    )
    if not rows:
        return
    lossy = [r for r in rows if r["lossy_pieces"] or r["decode_errors"]]
    exact = [r["encoding"] for r in rows if r not in lossy]
    summary = (
        f"Round trip, decode(encode(piece)) against the piece: {len(exact)} of {len(rows)} "
        "encodings recover every note of every piece" + (f" ({', '.join(exact)})" if exact else "")
    )
    if lossy:
        worst = min(lossy, key=lambda r: r["fidelity"] or 0.0)
        summary += (
            f"; {len(lossy)} lose notes in some pieces (lossy_pieces below), most of all "
            f"{worst['encoding']}: {worst['lossy_pieces']} of {worst['pieces']} pieces, "
            f"{fmt_percent(worst['fidelity'] or 0.0)} of notes recovered"
        )
    sec.text.append(summary + ".")
    sec.tables.append(
        Table(
            "Round-trip fidelity (view fidelity)",
            rows,
            note=(
                "fidelity: notes recovered / notes, over all pieces; worst_piece: the lowest "
                "per-piece share; lossy_pieces: pieces with at least one note not recovered "
                "(strict, on each encoding's own time grid); lossless_by_design: whether the "
                "encoding can represent every note in principle."
            ),
            formats={"fidelity": "percent", "worst_piece": "percent"},
        )
    )


def quarantine(q: Query) -> Section:
    sec = Section("quarantine", "Quarantine")
    reasons = q(
        "SELECT stage, reason, count(*) AS files FROM quarantine GROUP BY ALL "
        "ORDER BY files DESC, stage, reason"
    )
    if not reasons:
        sec.text.append("Nothing was quarantined.")
        return sec
    total = sum(r["files"] for r in reasons)
    sec.text.append(
        f"{total} inputs were quarantined; each keeps its bytes in the workspace's objects/ store. "
        "`musicdata catalog lineage PATH` shows why for one file."
    )
    sec.figures.append(
        Figure(
            "quarantine",
            plots.bars(
                [f"{r['stage']}: {r['reason']}" for r in reasons],
                [r["files"] for r in reasons],
                xlabel="files",
                title="Quarantine reasons",
                fmt="{:.0f}",
            ),
            "Quarantine reasons",
        )
    )
    sec.tables.append(Table("Reasons", reasons))
    examples = q(
        "SELECT path, stage, reason, detail FROM quarantine ORDER BY stage, reason, path LIMIT 200"
    )
    sec.tables.append(Table("Quarantined files", examples, max_rows=25))
    return sec
