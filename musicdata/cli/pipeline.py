"""Pipeline commands (ingest, tokenize, demo). Locally each calls its stage directly (no Prefect
start-up); with PREFECT_API_URL set the same work runs through its flow, tracked by the server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from musicdata import progress
from musicdata.cli.common import (
    JsonOpt,
    app,
    config_arg,
    did_you_mean,
    emit,
    err,
    fail,
    table_text,
    tracked,
    workspace,
)
from musicdata.workspace import Workspace

NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Refuse at once (exit 3) if another run holds this workspace, instead of waiting.",
    ),
]


@contextmanager
def run_guard(ws: Workspace, stage: str, no_wait: bool, as_json: bool) -> Iterator[None]:
    """Hold the workspace run lock for the command, and turn a busy workspace or a machine fault
    (full disk, read-only, I/O error) into one clear message (and one JSON error object with
    --json) instead of a traceback. Exit codes: 3 busy, 4 environment fault, 5 shards disagree
    with the catalog (`catalog verify`)."""
    from musicdata.catalog.verify import ShardsDisagree
    from musicdata.fsutil import WorkspaceWriteError, is_environment_error, workspace_write_error
    from musicdata.workspace import WorkspaceBusy

    code, reason, message, hint = 0, "", "", None
    try:
        with ws.run_lock(stage, wait=not no_wait):
            yield
    except WorkspaceBusy as exc:
        code, reason, message = 3, "busy", str(exc)
        hint = "wait for that run to finish, or run without --no-wait to wait for it"
    except WorkspaceWriteError as exc:
        code, reason, message = 4, "environment", str(exc)
    except ShardsDisagree as exc:
        code, reason, message = 5, "catalog_mismatch", str(exc)
        hint = "run `musicdata catalog verify` to list what disagrees"
    except Exception as exc:  # only the machine's faults are turned into a message; others re-raise
        if not is_environment_error(exc, ws.root):
            raise
        code, reason, message = 4, "environment", str(workspace_write_error(exc, ws.root))
    if code:
        # `message` repeats `detail` for scripts written against the first error shape
        fail(
            message,
            error=reason,
            hint=hint,
            code=code,
            extra={"message": message},
            as_json=as_json,
        )


def _run_id(stage: str) -> str:
    return f"{uuid.uuid4().hex[:12]}:{stage}"


def run_ingest(ws: Workspace, paths: list[Any], transcribe: bool | None) -> dict[str, Any]:
    """The ingest stage, through its flow when a Prefect server is configured."""
    if tracked():
        from musicdata.flows.ingest_tokenize import ingest_flow

        return ingest_flow([str(p) for p in paths], str(ws.root), config_arg(ws), transcribe)
    from musicdata.stages.ingest import ingest_paths

    return ingest_paths(ws, paths, run_id=_run_id("ingest"), transcribe=transcribe).to_dict()


def run_tokenize(ws: Workspace, names: list[str]) -> list[dict[str, Any]]:
    if tracked():
        from musicdata.flows.ingest_tokenize import tokenize_flow

        return tokenize_flow(names, str(ws.root), config_arg(ws))
    from musicdata.stages.tokenize import tokenize_encodings

    run_ids = {n: _run_id(f"tokenize:{n}") for n in names}
    return [s.to_dict() for s in tokenize_encodings(ws, names, run_ids=run_ids)]


CURVE_QUERY = (
    "SELECT step, value FROM train_metrics WHERE name = 'loss' AND split = 'train' ORDER BY step"
)
DEMO_MODEL = {"model": "nmt", "encoding": "nb-pf", "preset": "debug", "steps": 60}


def demo_train(ws: Workspace, as_json: bool) -> dict[str, Any]:
    """The demo's second half: train NMT on nb-pf, evaluate on the test split, sample 2 pieces."""
    from musicdata.models import api
    from musicdata.stages.evaluate import evaluate, generate
    from musicdata.stages.train import train

    if not as_json:
        err.print("training the Nested Music Transformer (debug preset) on nb-pf ...")
    t = train(ws, api, **DEMO_MODEL).to_dict()
    tid = t["train_run_id"]
    from musicdata.catalog.records import shard_splits

    with ws.catalog.read() as con:  # a tiny --limit corpus may have no test pieces
        have = shard_splits(con, DEMO_MODEL["encoding"])
    split = next(s for s in ("test", "validation", "train") if s in have)
    e = evaluate(ws, api, tid, split=split).to_dict()
    g = generate(ws, api, tid, n=2, max_new_tokens=128).to_dict()
    return {"train": t, "evaluate": e, "generate": g}


def demo_train_text(r: dict[str, Any], home: Path) -> list[str]:
    t, e, g = r["train"], r["evaluate"], r["generate"]
    return [
        f"\ntrain {t['train_run_id']}: {t['model']} on {t['encoding']}, {t['n_parameters']:,} "
        f"parameters, {t['steps']} steps; {e['split']} NLL {e['nll']:.3f} "
        f"({e['bits_per_token']:.2f} bits/token); {g['generated']} generated pieces in "
        f"{g['out_dir']}",
        f'  musicdata --home {home} catalog sql "{CURVE_QUERY}"',
        f"  musicdata --home {home} catalog lineage checkpoint:{t['checkpoint_id']} --upstream",
    ]


@app.command()
def ingest(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="MIDI/audio files, folders (recursive), zip/tar, Hub datasets "
            "(hf://ORG/NAME[:config][@revision] or a local folder in Hub layout)."
        ),
    ],
    as_json: JsonOpt = False,
    no_transcribe: Annotated[
        bool, typer.Option("--no-transcribe", help="Do not transcribe recordings now.")
    ] = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Bring MIDI and audio in (creates the workspace if needed).

    Hashes, parses in isolation, validates, dedups and splits every file; quarantines broken
    files with a reason; transcribes recordings to MIDI (basic-pitch) unless --no-transcribe."""
    from musicdata.ingest.hub import is_hub_source

    paths = [i if i.startswith("hf://") else Path(i) for i in inputs]
    if not any(is_hub_source(p) or Path(p).exists() for p in paths):
        fail(
            f"none of the inputs exist: {', '.join(inputs)}",
            error="no_inputs",
            hint="pass MIDI/audio files, folders, archives or hf://ORG/NAME",
        )
    progress.enable(not as_json)
    ws = workspace(create=True)
    t0 = time.perf_counter()
    with run_guard(ws, "ingest", no_wait, as_json):  # a busy workspace refuses before Prefect
        summary = run_ingest(ws, paths, False if no_transcribe else None)
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
        list[str] | None,
        typer.Option(
            "--encoding",
            "-e",
            metavar="NAME",
            help="Encoding name (see `musicdata encodings list`); repeatable.",
        ),
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
    no_wait: NoWaitOpt = False,
) -> None:
    """Turn every ingested piece into Parquet token shards, per encoding.

    Resumable: a rerun does only new work. Learned vocabularies (remi-bpe, ...) train on the
    train split first; encodec-32k / encodec-24k encode every recording into audio-code
    shards."""
    from musicdata.cli.audio import CODEC_NAMES, check_codecs, run_codec_tokenize, usable_codecs
    from musicdata.encodings import REGISTRY, available

    known = [*available(), *CODEC_NAMES]
    names = sorted(REGISTRY) if all_encodings else list(encoding or [])
    codecs = [n for n in names if n in CODEC_NAMES]
    names = [n for n in names if n not in CODEC_NAMES]
    if not names and not codecs:
        fail(
            "name an encoding with --encoding NAME (or --all)",
            error="no_encoding",
            hint="available: " + ", ".join(known),
        )
    unknown = [n for n in names if n not in available()]
    if unknown:
        hints = [did_you_mean(n, known) for n in unknown]
        fail(
            f"unknown encoding(s) {', '.join(unknown)}",
            error="unknown_encoding",
            hint="; ".join(h for h in hints if h) or "available: " + ", ".join(known),
        )
    progress.enable(not as_json)
    ws = workspace()
    skipped_codecs: dict[str, str] = {}
    if all_encodings:  # --all takes the codecs it can run and says why it left the others out
        codecs, skipped_codecs = usable_codecs(ws, CODEC_NAMES, allow_untrained)
    check_codecs(ws, codecs, allow_untrained)
    t0 = time.perf_counter()
    with run_guard(ws, "tokenize", no_wait, as_json):  # a busy workspace refuses before Prefect
        try:
            results = run_tokenize(ws, names) if names else []
        except ValueError as exc:  # e.g. a learned vocabulary with no train-split pieces
            fail(str(exc), error="tokenize", as_json=as_json)
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
    limit: Annotated[
        int | None, typer.Option(metavar="N", help="Use only the first N demo works.")
    ] = None,
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="Also train, evaluate and sample NMT.")
    ] = True,
    no_wait: NoWaitOpt = False,
) -> None:
    """Run the whole pipeline on real public-domain scores (creates the workspace).

    music21's scores -> ingest -> shards in every symbolic encoding (compression/fidelity
    table) -> train the Nested Music Transformer on nb-pf (debug preset) -> NLL on the test
    split -> generated MIDI."""
    from musicdata.cli.encodings import COMPARE_QUERY
    from musicdata.demo import build_demo_corpus
    from musicdata.encodings import REGISTRY

    progress.enable(not as_json)
    ws = workspace(create=True)
    t0 = time.perf_counter()
    corpus = ws.root / "demo-corpus"
    if not as_json:
        err.print(f"building the demo corpus from music21's public-domain scores in {corpus} ...")
    with run_guard(ws, "demo", no_wait, as_json):
        files = build_demo_corpus(corpus, limit=limit)
        names = sorted(REGISTRY)
        result = {
            "ingest": run_ingest(ws, [corpus], None),
            "tokenize": run_tokenize(ws, names),
        }
        result["train"] = demo_train(ws, as_json) if train else None
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
    shard_dirs = (
        f"{ws.root / 'shards'}/<encoding>/<config hash>/<split>/part-<writer>-NNNNN.parquet"
    )
    # Workspace.catalog.query opens read-only for one query and retries while a pipeline commits
    # (a bare duckdb.connect fails then, and a held connection blocks the pipeline).
    py_query = (
        f"from musicdata.workspace import Workspace; "
        f"print(Workspace.open('{ws.root}').catalog.query('{SPLIT_QUERY}'))"
    )
    emit(
        summary,
        as_json,
        _ingest_text({**result["ingest"], "seconds": summary["seconds"]}),
        f"catalog: {ws.catalog_path}\nshards:  {shard_dirs}\n\n"
        f"Encodings compared on the same pieces (musicdata encodings compare):",
        table_text(compare),
        *(demo_train_text(result["train"], ws.root) if result.get("train") else []),
        "Try:",
        f'  musicdata --home {ws.root} catalog sql "{EXAMPLE_QUERY}"',
        f'  musicdata --home {ws.root} catalog sql "{QUARANTINE_QUERY}"',
        f"  musicdata --home {ws.root} encodings compare",
        f"  musicdata --home {ws.root} catalog lineage {files[0]} --downstream",
        f"  musicdata --home {ws.root} report",
        f'  python -c "{py_query}"',
    )
