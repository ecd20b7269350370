"""`musicdata encodings ...`: the registry, and the compression/fidelity report from the catalog."""

from __future__ import annotations

from typing import Any

import typer

from musicdata.cli.common import JsonOpt, app, emit, fail, table_text, workspace

encodings_app = typer.Typer(
    help="Encodings: the registry and how they compare on your corpus.", no_args_is_help=True
)
app.add_typer(encodings_app, name="encodings")

COMPARE_QUERY = """
SELECT c.encoding, c.kind, c.pieces,
       round(c.mean_length, 1) AS mean_len, c.median_length AS median_len,
       round(c.p95_length, 1) AS p95_len, c.vocab_size,
       round(c.length_vs_remi, 3) AS len_vs_remi, round(c.vocab_vs_remi, 3) AS vocab_vs_remi,
       round(f.fidelity, 4) AS fidelity, f.lossless
FROM compression c
LEFT JOIN fidelity f USING (encoding, config_hash)
ORDER BY c.length_vs_remi NULLS LAST, c.encoding
"""


@encodings_app.command("list")
def list_encodings(as_json: JsonOpt = False) -> None:
    """Registered encodings with their kind, paper and resolved defaults' hash."""
    from musicdata.encodings import REGISTRY

    rows: list[dict[str, Any]] = []
    for name, cls in sorted(REGISTRY.items()):
        enc = cls()
        rows.append(
            {
                "encoding": name,
                "kind": enc.kind,
                "lossless": enc.lossless,
                "config_hash": enc.config_hash,
                "paper": enc.paper,
            }
        )
    emit({"encodings": rows}, as_json, table_text(rows))


@encodings_app.command("compare")
def compare(as_json: JsonOpt = False) -> None:
    """Compression report: length and vocabulary vs `remi` on the same pieces, and round-trip
    fidelity (from the `compression` and `fidelity` views)."""
    from musicdata.catalog import CatalogError

    ws = workspace()
    try:
        rows = ws.catalog.query(COMPARE_QUERY).to_pylist()
    except CatalogError as exc:
        fail(str(exc))
    if not rows:
        fail("no shards yet: run `musicdata tokenize --all` first")
    emit(
        {"home": str(ws.root), "rows": rows},
        as_json,
        table_text(rows),
        "len_vs_remi: total sequence steps / REMI's on the same pieces (a compound token counts "
        "once); fidelity: share of notes recovered by decode(encode(x)).",
    )
