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
    """List every name `tokenize --encoding` accepts, with its kind and paper.

    group `paper` (what --all runs), `learned` (opt-in; trained on each workspace's train split,
    so its config hash is known only after training) and `codec` (audio; needs weights or
    --allow-untrained)."""
    from musicdata.audio.codec import ARCHITECTURES
    from musicdata.encodings import LEARNED, REGISTRY

    rows: list[dict[str, Any]] = []
    for group, registry in (("paper", REGISTRY), ("learned", LEARNED)):
        for name, cls in sorted(registry.items()):
            enc = cls()
            rows.append(
                {
                    "encoding": name,
                    "group": group,
                    "kind": enc.kind,
                    "lossless": enc.lossless,
                    "config_hash": enc.config_hash if group == "paper" else None,
                    "paper": enc.paper,
                }
            )
    for name, arch in sorted(ARCHITECTURES.items()):
        rows.append(
            {
                "encoding": name,
                "group": "codec",
                "kind": "codec",
                "lossless": False,
                "config_hash": None,  # depends on the weights found (see [codec] in the config)
                "paper": CODEC_PAPERS.get(name, "EnCodec (arXiv 2210.13438)")
                + f"; {arch['sampling_rate'] // 1000} kHz, codebooks of {arch['codebook_size']}",
            }
        )
    human = [{**r, "config_hash": r["config_hash"] or "-"} for r in rows]
    emit(
        {"encodings": rows},
        as_json,
        table_text(human),
        "paper: `tokenize --all` runs them; learned: opt-in by name, trained on the train split "
        "(config hash set then); codec: audio recordings, needs weights or --allow-untrained.",
    )


CODEC_PAPERS = {
    "encodec-32k": "MusicGen's EnCodec (arXiv 2306.05284)",
    "encodec-24k": "EnCodec (arXiv 2210.13438)",
}


@encodings_app.command("compare")
def compare(as_json: JsonOpt = False) -> None:
    """Compare encodings on your pieces: length and vocabulary vs remi, round-trip fidelity.

    From the `compression` and `fidelity` views."""
    from musicdata.catalog import CatalogError

    ws = workspace()
    try:
        rows = ws.catalog.query(COMPARE_QUERY).to_pylist()
    except CatalogError as exc:
        fail(str(exc), error="catalog")
    if not rows:
        fail("no shards yet", error="no_shards", hint="run `musicdata tokenize --all` first")
    emit(
        {"home": str(ws.root), "rows": rows},
        as_json,
        table_text(rows),
        "len_vs_remi: total sequence steps / REMI's on the same pieces (a compound token counts "
        "once); fidelity: share of notes recovered by decode(encode(x)).",
    )
