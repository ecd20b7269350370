"""The report's vocabulary section: coverage per vocabulary, token frequency by rank (flat
encodings per token, compound encodings per whole compound token) and the ids never used.

Special tokens (PAD, BOS, EOS, MASK, Ignore and the config's own `special_tokens`) are left out of
the "never used" list: a stored piece holds none of them by design, so listing them hides the
tokens that tell something about the corpus.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import numpy as np

from musicdata.report import plots
from musicdata.report.model import Figure, Query, Rows, Section, Table

log = logging.getLogger(__name__)
UNUSED_SHOWN = 24  # unused token ids listed per vocabulary
SPECIAL_TYPES = frozenset({"PAD", "BOS", "EOS", "MASK", "SOS", "SEP", "Ignore"})
_VIEW_RE = re.compile(r"^tokens\.([a-z0-9_]+)$")  # names made by catalog.shard_views.view_name


def labels(rows: Rows) -> dict[tuple[str, str], str]:
    """(encoding, config_hash) -> 'remi', or 'remi@1a2b3c4d' when an encoding has two configs."""
    configs: dict[str, set[str]] = {}
    for r in rows:
        configs.setdefault(r["encoding"], set()).add(r["config_hash"])
    return {(e, h): e if len(hs) == 1 else f"{e}@{h[:8]}" for e, hs in configs.items() for h in hs}


def group_indices(table: Any, keys: tuple[str, ...]) -> list[tuple[tuple, np.ndarray]]:
    """Row indices of an Arrow table per distinct key tuple, sorted by key."""
    cols = [table[k].to_pylist() for k in keys]
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*cols, strict=True)):
        groups.setdefault(key, []).append(i)
    return [(k, np.asarray(v)) for k, v in sorted(groups.items())]


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
    names = labels(cov)

    def label(r: dict[str, Any]) -> str:
        base = names[(r["encoding"], r["config_hash"])]
        return base if r["field"] == "token" else f"{base}/{r['field']}"

    known = [dict(r, label=label(r)) for r in cov if r["vocab_size"] is not None]
    if known:
        sec.figures.append(Figure("vocabulary", plots.coverage(known), "Vocabulary usage"))
    flat = q(
        "SELECT encoding, config_hash, token, sum(count)::BIGINT AS n "
        "FROM token_frequencies WHERE field_index = 0 GROUP BY ALL",
        arrow=True,
    )
    series: dict[str, np.ndarray] = {}
    for (enc, chash), idx in group_indices(flat, ("encoding", "config_hash")):
        series[names[(enc, chash)]] = flat["n"].to_numpy()[idx]
    compound = {f"{names[k]} (compound)": v for k, v in compound_counts(q).items() if k in names}
    if series or compound:
        sec.figures.append(
            Figure(
                "token-frequency",
                plots.rank_frequency(series, compound),
                "Token frequency by rank. Flat encodings (solid) rank their tokens; compound "
                "encodings (dashed) rank whole compound tokens (one step, all its sub-tokens "
                "together), so every line counts what a model predicts per step.",
            )
        )
    sec.tables.append(Table("Vocabulary coverage (view vocab_coverage)", cov))
    sec.tables.append(
        Table(
            "Token ids never seen (view unused_tokens)",
            unused(q, token_names),
            note=(
                "Special tokens (PAD, BOS, EOS, MASK, Ignore and the encoding's own special "
                "tokens) are left out: no stored piece holds them; specials_left_out counts them."
            ),
        )
    )
    return sec


def compound_counts(q: Query) -> dict[tuple[str, str], np.ndarray]:
    """(encoding, config_hash) -> occurrences of each distinct compound token (the whole
    sub-token tuple of one step), read in place from the shards of each compound view."""
    views = q(
        "SELECT view_name, encoding FROM shard_views WHERE kind = 'compound' ORDER BY view_name"
    )
    out: dict[tuple[str, str], np.ndarray] = {}
    for v in views:
        m = _VIEW_RE.match(v["view_name"] or "")
        if not m:
            log.info("skipping shard view %r: not a name this report can quote", v["view_name"])
            continue
        # the identifier is checked against _VIEW_RE above; no value is interpolated
        view = f'tokens."{m.group(1)}"'
        sql = (
            "SELECT config_hash, count(*)::BIGINT AS n FROM (SELECT config_hash, "  # noqa: S608
            f"unnest(tokens) AS step FROM {view}) GROUP BY config_hash, step"
        )
        counts = q(sql, arrow=True)
        for (chash,), idx in group_indices(counts, ("config_hash",)):
            out[(v["encoding"], chash)] = counts["n"].to_numpy()[idx]
    return out


def unused(q: Query, token_names: bool) -> Rows:
    """Ids never seen per vocabulary, special tokens left out, the first UNUSED_SHOWN listed
    (with their names when the encoding's vocabulary can be rebuilt here)."""
    rows = q(
        "SELECT u.encoding, u.config_hash, u.field_index, u.field, "
        "list(u.token ORDER BY u.token) AS ids, any_value(e.config_json) AS cfg, "
        "any_value(e.vocab_size) AS vocab_size "
        "FROM unused_tokens u JOIN encodings e USING (encoding, config_hash) "
        "GROUP BY ALL ORDER BY u.encoding, u.config_hash, u.field_index"
    )
    out = []
    for r in rows:
        names = None
        if token_names:
            names = token_name_map(r["encoding"], r["config_hash"], r["cfg"], r["vocab_size"])
        field_names = names.get(r["field_index"]) if names else None
        special = special_ids(field_names, r["cfg"])
        ids = [i for i in r["ids"] if i not in special]
        shown = ids[:UNUSED_SHOWN]
        if field_names:
            text = ", ".join(f"{i} {field_names.get(i, '?')}" for i in shown)
        else:
            text = ", ".join(map(str, shown))
        more = len(ids) - len(shown)
        out.append(
            {
                "encoding": r["encoding"],
                "config_hash": r["config_hash"],
                "field": r["field"],
                "never_seen": len(ids),
                "specials_left_out": len(r["ids"]) - len(ids),
                "tokens": text + (f" … (+{more})" if more > 0 else ""),
            }
        )
    return out


def special_ids(field_names: dict[int, str] | None, config_json: str | None) -> set[int]:
    """Ids of the special tokens of one vocabulary: by name when the names are known, else the
    first len(special_tokens) ids of the config (where MidiTok puts them, in every field)."""
    try:
        cfg = json.loads(config_json or "{}")
    except json.JSONDecodeError:
        cfg = {}
    declared = cfg.get("special_tokens") if isinstance(cfg, dict) else None
    declared = [str(t) for t in declared] if isinstance(declared, list) else []
    if field_names:
        kinds = SPECIAL_TYPES | {t.split("_")[0] for t in declared}
        return {i for i, n in field_names.items() if n.split("_")[0] in kinds}
    return set(range(len(declared)))


_NAME_CACHE: dict[tuple[str, str], dict[int, dict[int, str]] | None] = {}


def token_name_map(
    encoding: str, config_hash: str, config_json: str, vocab_size: int
) -> dict[int, dict[int, str]] | None:
    """field_index (0 flat, 1..F compound) -> id -> token name, from the encoding's own
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
            vocabulary = getattr(enc, "vocabulary", None)  # own vocabularies (performance)
            vocab = vocabulary() if callable(vocabulary) else None
            if vocab is None:
                vocab = getattr(getattr(enc, "tokenizer", None), "vocab", None)
            if isinstance(vocab, list) and all(isinstance(v, str) for v in vocab):
                names = {0: dict(enumerate(vocab))}
            elif isinstance(vocab, dict):
                names = {0: {int(i): str(n) for n, i in vocab.items()}}
            elif isinstance(vocab, list) and all(isinstance(v, dict) for v in vocab):
                names = {f + 1: {int(i): str(n) for n, i in v.items()} for f, v in enumerate(vocab)}
    except (ImportError, KeyError, ValueError, TypeError, AttributeError) as exc:  # a nicety
        log.info("no token names for %s@%s: %s", encoding, config_hash, exc)
    _NAME_CACHE[key] = names
    return names
