"""Token strings by id for the catalog's `vocab` view (core.vocab), so an analyst can join the
ids in the shards and in `token_frequencies` to names without loading a tokenizer.

Rows are written once per encoding config: by the tokenize stage when it finishes, and by
`musicdata catalog views` for configs tokenized before the table existed (`backfill_vocab`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import duckdb
import pyarrow as pa

from musicdata.encodings import Encoding, get_encoding

log = logging.getLogger(__name__)

VOCAB_SCHEMA = pa.schema(
    [
        ("encoding", pa.string()),
        ("config_hash", pa.string()),
        ("field_index", pa.int32()),
        ("field", pa.string()),
        ("id", pa.int32()),
        ("token", pa.string()),
    ]
)


def field_vocabularies(enc: Encoding) -> list[tuple[int, str, list[str]]]:
    """(field_index, field, token strings by id) per field: field 0 'token' for a flat encoding,
    1.. with the sub-token names for a compound one (as in `token_frequencies`). A learned
    token (BPE, Unigram) is named by the base tokens it stands for, joined by spaces."""
    tok: Any = getattr(enc, "tokenizer", None)
    if getattr(enc, "learned", False):
        learned = tok._vocab_learned_bytes_to_tokens  # bytes -> base tokens, MidiTok's own map
        names = [""] * len(tok.vocab_model)
        for key, idx in tok.vocab_model.items():
            names[idx] = " ".join(learned.get(key, [key]))
        return [(0, "token", names)]
    if hasattr(enc, "vocabulary"):  # `performance`: its own event names
        return [(0, "token", list(enc.vocabulary()))]  # type: ignore[attr-defined]
    voc = tok.vocab
    fields = voc if isinstance(voc, list) else [voc]
    out = []
    sub = enc.sub_tokens if enc.kind == "compound" else None
    for i, field in enumerate(fields):
        names = [""] * len(field)
        for token, idx in field.items():
            names[idx] = token
        out.append((i + 1, sub[i], names) if sub else (0, "token", names))
    return out


def vocab_table(enc: Encoding) -> pa.Table:
    rows: dict[str, list[Any]] = {name: [] for name in VOCAB_SCHEMA.names}
    for index, field, names in field_vocabularies(enc):
        n = len(names)
        rows["encoding"] += [enc.name] * n
        rows["config_hash"] += [enc.config_hash] * n
        rows["field_index"] += [index] * n
        rows["field"] += [field] * n
        rows["id"] += list(range(n))
        rows["token"] += names
    return pa.table(rows, schema=VOCAB_SCHEMA)


def has_vocab(con: duckdb.DuckDBPyConnection, encoding: str, config_hash: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM core.vocab WHERE encoding = ? AND config_hash = ?",
        [encoding, config_hash],
    ).fetchall()
    return bool(rows[0][0])


def record_vocab(con: duckdb.DuckDBPyConnection, enc: Encoding) -> int:
    """Insert an encoding config's vocabulary once; returns the rows added (0 when present or
    for audio codecs, whose ids are codes, not names)."""
    if enc.kind == "codec" or has_vocab(con, enc.name, enc.config_hash):
        return 0
    table = vocab_table(enc)
    con.register("_vocab_rows", table)
    try:
        con.execute(
            "INSERT INTO core.vocab SELECT encoding, config_hash, field_index, field, id, token "
            "FROM _vocab_rows ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("_vocab_rows")
    return table.num_rows


def backfill_vocab(con: duckdb.DuckDBPyConnection) -> int:
    """Vocabulary rows for every registered symbolic config that has none (configs tokenized
    before core.vocab existed). A config whose tokenizer cannot be rebuilt here (a learned
    vocabulary whose file moved) is skipped and logged."""
    missing = con.execute(
        "SELECT e.encoding, e.config_hash, e.config_json FROM core.encodings e "
        "WHERE e.kind <> 'codec' AND NOT EXISTS (SELECT 1 FROM core.vocab v "
        "WHERE v.encoding = e.encoding AND v.config_hash = e.config_hash) ORDER BY ALL"
    ).fetchall()
    added = 0
    for encoding, chash, config_json in missing:
        try:
            enc = get_encoding(encoding, json.loads(config_json or "{}"))
            if enc.config_hash != chash:
                log.info("vocab: %s@%s does not rebuild from its config; skipped", encoding, chash)
                continue
            added += record_vocab(con, enc)
        except (ValueError, OSError, RuntimeError, KeyError) as exc:
            log.info("vocab: %s@%s skipped: %s", encoding, chash, exc)
    return added
