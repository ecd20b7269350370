"""Pipeline commands (ingest, tokenize, demo); each runs as a Prefect flow."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from musicdata import progress
from musicdata.cli.common import (
    JsonOpt,
    app,
    config_arg,
    emit,
    err,
    fail,
    table_text,
    workspace,
)


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="MIDI/audio files, folders (recursive), zip/tar.")
    ],
    as_json: JsonOpt = False,
    no_transcribe: Annotated[
        bool, typer.Option("--no-transcribe", help="Do not transcribe recordings now.")
    ] = False,
) -> None:
    """Ingest MIDI and audio: hash, parse in isolation, validate, dedup, split; quarantine broken
    files; transcribe recordings to MIDI (basic-pitch) unless --no-transcribe."""
    from flows.ingest_tokenize import ingest_flow

    if not any(p.exists() for p in paths):  # fail before paying for Prefect's start-up
        fail(f"none of the inputs exist: {', '.join(map(str, paths))}")
    progress.enable(not as_json)
    ws = workspace()
    t0 = time.perf_counter()
    summary = ingest_flow(
        [str(p) for p in paths], str(ws.root), config_arg(ws), False if no_transcribe else None
    )
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["home"] = str(ws.root)
    emit(summary, as_json, _ingest_text(summary))


def _ingest_text(s: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["reasons"].items())) or "none"
    return (
        f"ingest: [green]{s['ok']} ok[/green] ({s['near_duplicates']} near-duplicates), "
        f"[red]{s['quarantined']} quarantined[/red] ({reasons}), {s['duplicates']} exact "
        f"duplicates, {s['skipped']} skipped (already done), {s['ignored']} ignored "
        f"(not MIDI or audio) in {s['seconds']} s"
        + (
            f"; {s.get('recordings', 0)} recordings: {s.get('transcribed', 0)} transcribed, "
            f"{s.get('no_notes', 0)} no notes, {s.get('transcribe_failed', 0)} failed"
            if s.get("recordings") or s.get("transcribed")
            else ""
        )
    )


@app.command()
def tokenize(
    encoding: Annotated[
        list[str] | None, typer.Option("--encoding", "-e", help="Encoding name; repeatable.")
    ] = None,
    all_encodings: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every paper encoding, plus the codecs that have weights (or --allow-untrained).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    allow_untrained: Annotated[
        bool,
        typer.Option(
            "--allow-untrained",
            help="encodec-*: use random weights when none are available (recorded as untrained).",
        ),
    ] = False,
) -> None:
    """Tokenize every ingested piece into Parquet shards (resumable; reruns do only new work);
    encodec-32k / encodec-24k encode every recording into audio-code shards."""
    from musicdata.cli.audio import CODEC_NAMES, check_codecs, run_codec_tokenize, usable_codecs
    from musicdata.encodings import REGISTRY, available

    known = [*available(), *CODEC_NAMES]
    names = sorted(REGISTRY) if all_encodings else list(encoding or [])
    codecs = [n for n in names if n in CODEC_NAMES]
    names = [n for n in names if n not in CODEC_NAMES]
    if not names and not codecs:
        fail("name an encoding with --encoding NAME (or --all); available: " + ", ".join(known))
    unknown = [n for n in names if n not in available()]
    if unknown:
        fail(f"unknown encoding(s) {unknown}; available: {', '.join(known)}")
    from flows.ingest_tokenize import tokenize_flow

    progress.enable(not as_json)
    ws = workspace()
    skipped_codecs: dict[str, str] = {}
    if all_encodings:  # --all takes the codecs it can run and says why it left the others out
        codecs, skipped_codecs = usable_codecs(ws, CODEC_NAMES, allow_untrained)
    check_codecs(ws, codecs, allow_untrained)
    t0 = time.perf_counter()
    results = tokenize_flow(names, str(ws.root), config_arg(ws)) if names else []
    results += run_codec_tokenize(ws, codecs, allow_untrained) if codecs else []
    summary = {
        "encodings": results,
        "skipped_codecs": skipped_codecs,
        "seconds": round(time.perf_counter() - t0, 2),
        "home": str(ws.root),
    }
    lines = [f"skipped {n}: {why}" for n, why in skipped_codecs.items()] + [
        f"tokenize {r['encoding']}: {r['tokenized']} pieces -> {r['shards_written']} shards "
        f"({r['tokens']} tokens), {r['quarantined']} quarantined, {r['skipped']} skipped; "
        f"shards in {r['shard_dir']}"
        for r in results
    ]
    emit(summary, as_json, *lines)


SPLIT_QUERY = "SELECT split, count(*) AS pieces FROM pieces GROUP BY split"
QUARANTINE_QUERY = "SELECT path, stage, reason FROM quarantine"
EXAMPLE_QUERY = (
    "SELECT encoding, split, pieces, tokens, vocab_size, round(mean_length) AS mean_len "
    "FROM token_stats ORDER BY encoding, split"
)


@app.command()
def demo(
    as_json: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(help="Use only the first N demo works.")] = None,
) -> None:
    """The main job on the embedded default: real public-domain scores -> ingest -> shards in
    every symbolic encoding, with the compression/fidelity report."""
    from flows.ingest_tokenize import ingest_and_tokenize
    from musicdata.cli.encodings import COMPARE_QUERY
    from musicdata.demo import build_demo_corpus
    from musicdata.encodings import REGISTRY

    progress.enable(not as_json)
    ws = workspace()
    t0 = time.perf_counter()
    corpus = ws.root / "demo-corpus"
    if not as_json:
        err.print(f"building the demo corpus from music21's public-domain scores in {corpus} ...")
    files = build_demo_corpus(corpus, limit=limit)
    names = sorted(REGISTRY)
    result = ingest_and_tokenize([str(corpus)], str(ws.root), names, config_arg(ws))
    stats = ws.catalog.query(EXAMPLE_QUERY).to_pylist()
    compare = ws.catalog.query(COMPARE_QUERY).to_pylist()
    summary = {
        "home": str(ws.root),
        "corpus": str(corpus),
        "files": len(files),
        "catalog": str(ws.catalog_path),
        **result,
        "token_stats": stats,
        "compression": compare,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    shard_dirs = f"{ws.root / 'shards'}/<encoding>/<config hash>/<split>/part-NNNNN.parquet"
    py_query = (
        f"import duckdb; print(duckdb.connect('{ws.catalog_path}', read_only=True)"
        f".sql('{SPLIT_QUERY}'))"
    )
    emit(
        summary,
        as_json,
        _ingest_text({**result["ingest"], "seconds": summary["seconds"]}),
        f"catalog: {ws.catalog_path}\nshards:  {shard_dirs}\n\n"
        f"Encodings compared on the same pieces (musicdata encodings compare):",
        table_text(compare),
        "Try:",
        f'  musicdata --home {ws.root} catalog sql "{EXAMPLE_QUERY}"',
        f'  musicdata --home {ws.root} catalog sql "{QUARANTINE_QUERY}"',
        f"  musicdata --home {ws.root} encodings compare",
        f"  musicdata --home {ws.root} catalog lineage {files[0]} --downstream",
        f"  musicdata --home {ws.root} report",
        f'  python -c "{py_query}"',
    )
