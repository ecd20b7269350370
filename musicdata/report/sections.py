"""Report sections over the corpus and its token shards: corpus, lengths, compression, vocabulary,
quarantine. Each builder runs a few short read-only queries (the analyst views) and draws."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from musicdata.report import plots
from musicdata.report.model import Figure, Query, Rows, Section, Table

log = logging.getLogger(__name__)
UNUSED_SHOWN = 24  # unused token ids listed per vocabulary


def _labels(rows: Rows) -> dict[tuple[str, str], str]:
    """(encoding, config_hash) -> 'remi', or 'remi@1a2b3c4d' when an encoding has two configs."""
    configs: dict[str, set[str]] = {}
    for r in rows:
        configs.setdefault(r["encoding"], set()).add(r["config_hash"])
    return {(e, h): e if len(hs) == 1 else f"{e}@{h[:8]}" for e, hs in configs.items() for h in hs}


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
    labels = _labels(stats)
    data: dict[str, dict[str, np.ndarray]] = {}
    table = q("SELECT encoding, config_hash, split, length FROM token_lengths", arrow=True)
    for (enc, chash, split), idx in _group_indices(table, ("encoding", "config_hash", "split")):
        data.setdefault(labels[(enc, chash)], {})[split] = table["length"].to_numpy()[idx]
    sec.text.append(
        "Tokens per piece, read in place from the Parquet shards (view `token_length_stats`; "
        "compound encodings count one step per compound token)."
    )
    sec.figures.append(
        Figure("lengths", plots.length_histograms(data), "Sequence lengths per encoding")
    )
    sec.tables.append(Table("Length percentiles per encoding and split", stats))
    return sec


def _group_indices(table: Any, keys: tuple[str, ...]) -> list[tuple[tuple, np.ndarray]]:
    cols = [table[k].to_pylist() for k in keys]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*cols, strict=True)):
        groups.setdefault(key, []).append(i)
    return [(k, np.asarray(v)) for k, v in sorted(groups.items())]


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
        labels = _labels(per_enc)
        sec.figures.append(
            Figure(
                "compression",
                plots.bars(
                    [labels[(r["encoding"], r["config_hash"])] for r in per_enc],
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
        fidelity = q("SELECT * FROM fidelity ORDER BY encoding, config_hash")
        if fidelity:
            sec.tables.append(Table("Round-trip fidelity (view fidelity)", fidelity))
    return sec


def vocabulary(q: Query, *, token_names: bool = True) -> Section:
    sec = Section("vocabulary", "Vocabulary usage")
    cov = q(
        "SELECT encoding, config_hash, field, vocab_size, seen, never_seen, "
        "round(coverage, 3) AS coverage FROM vocab_coverage "
        "ORDER BY encoding, config_hash, field_index"
    )
    if not cov:
        sec.text.append("No token shards yet.")
        return sec
    labels = _labels(cov)

    def label(r: dict[str, Any]) -> str:
        base = labels[(r["encoding"], r["config_hash"])]
        return base if r["field"] == "token" else f"{base}/{r['field']}"

    known = [dict(r, label=label(r)) for r in cov if r["vocab_size"] is not None]
    if known:
        sec.figures.append(Figure("vocabulary", plots.coverage(known), "Vocabulary usage"))
    freq = q(
        "SELECT encoding, config_hash, field, token, sum(count)::BIGINT AS n "
        "FROM token_frequencies GROUP BY ALL",
        arrow=True,
    )
    series = {}
    for (enc, chash, field), idx in _group_indices(freq, ("encoding", "config_hash", "field")):
        row = {"encoding": enc, "config_hash": chash, "field": field}
        series[label(row)] = freq["n"].to_numpy()[idx]
    # One line per flat vocabulary (dozens of compound fields make an unreadable plot; their
    # usage is in the coverage chart); a corpus with compound encodings only shows the first.
    flat = {k: v for k, v in series.items() if "/" not in k}
    if not flat and series:
        first = sorted(series)[0].split("/")[0]
        flat = {k: v for k, v in series.items() if k.startswith(first + "/")}
    if flat:
        png = plots.rank_frequency(flat)
        sec.figures.append(Figure("token-frequency", png, "Token frequency by rank"))
    sec.tables.append(Table("Vocabulary coverage (view vocab_coverage)", cov))
    sec.tables.append(Table("Token ids never seen (view unused_tokens)", _unused(q, token_names)))
    return sec


def _unused(q: Query, token_names: bool) -> Rows:
    rows = q(
        "SELECT u.encoding, u.config_hash, u.field_index, u.field, count(*) AS never_seen, "
        "list(u.token ORDER BY u.token)[1:?] AS ids, any_value(e.config_json) AS cfg, "
        "any_value(e.vocab_size) AS vocab_size "
        "FROM unused_tokens u JOIN encodings e USING (encoding, config_hash) "
        "GROUP BY ALL ORDER BY u.encoding, u.config_hash, u.field_index",
        [UNUSED_SHOWN],
    )
    out = []
    for r in rows:
        names = None
        if token_names:
            names = _token_names(r["encoding"], r["config_hash"], r["cfg"], r["vocab_size"])
        ids = r["ids"]
        field_names = names.get(r["field_index"]) if names else None
        if field_names:
            shown = ", ".join(f"{i} {field_names.get(i, '?')}" for i in ids)
        else:
            shown = ", ".join(map(str, ids))
        more = r["never_seen"] - len(ids)
        out.append(
            {
                "encoding": r["encoding"],
                "config_hash": r["config_hash"],
                "field": r["field"],
                "never_seen": r["never_seen"],
                "tokens": shown + (f" … (+{more})" if more > 0 else ""),
            }
        )
    return out


_NAME_CACHE: dict[tuple[str, str], dict[int, dict[int, str]] | None] = {}


def _token_names(
    encoding: str, config_hash: str, config_json: str, vocab_size: int
) -> dict[int, dict[int, str]] | None:
    """field_index (0 flat, 1..F compound) -> id -> token name, from the encoding's own MidiTok
    vocabulary rebuilt from the recorded config; None when the encoding is not registered here or
    its vocabulary no longer has the recorded size (the config hash also covers code changes)."""
    key = (encoding, config_hash)
    if key in _NAME_CACHE:
        return _NAME_CACHE[key]
    names = None
    try:
        from musicdata.encodings import get_encoding

        enc = get_encoding(encoding, json.loads(config_json))
        if enc.vocab_size == vocab_size:
            vocab = getattr(getattr(enc, "tokenizer", None), "vocab", None)
            if isinstance(vocab, dict):
                names = {0: {int(i): str(n) for n, i in vocab.items()}}
            elif isinstance(vocab, list) and all(isinstance(v, dict) for v in vocab):
                names = {f + 1: {int(i): str(n) for n, i in v.items()} for f, v in enumerate(vocab)}
    except (ImportError, KeyError, ValueError, TypeError, AttributeError) as exc:  # a nicety
        log.info("no token names for %s@%s: %s", encoding, config_hash, exc)
    _NAME_CACHE[key] = names
    return names


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
