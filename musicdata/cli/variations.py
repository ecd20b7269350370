"""`musicdata variations`: Cadenza variations of a MIDI file (or, with --prior, ideas from the
prior) from a Composer run and a Performer run, written as MIDI and recorded with lineage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from musicdata.cli.common import JsonOpt, app, emit, fail, workspace
from musicdata.cli.pipeline import NoWaitOpt, run_guard


@app.command()
def variations(
    run: Annotated[str, typer.Option("--run", help="A `cadenza` (Composer) train run id.")],
    performer_run: Annotated[
        str, typer.Option("--performer-run", help="A `cadenza-performer` train run id.")
    ],
    input_midi: Annotated[
        Path | None,
        typer.Option("--input", help="The MIDI file to vary (not with --prior).", dir_okay=False),
    ] = None,
    prior: Annotated[
        bool, typer.Option("--prior", help="Unconditional ideas from the prior, no input.")
    ] = False,
    n: Annotated[int, typer.Option("--n", min=1, help="How many pieces.")] = 8,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 1.0,
    spread: Annotated[
        float,
        typer.Option(
            "--spread", min=0.0, help="Latent spread around the input: 0 its mean, 1 a sample."
        ),
    ] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", min=1, help="Composition length (default: the input's)."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Held-out split for the model figures.")
    ] = "test",
    no_eval: Annotated[
        bool, typer.Option("--no-eval", help="Skip the held-out model figures.")
    ] = False,
    as_json: JsonOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Vary a MIDI file with a Cadenza Composer + Performer (with similarity figures)."""
    if prior == (input_midi is not None):
        fail("pass either --input FILE.mid (variations) or --prior (unconditional), not both")
    ws = workspace()
    t0 = time.perf_counter()
    common: dict[str, Any] = dict(
        temperature=temperature,
        seed=seed,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        split=split,
        evaluate=not no_eval,
    )
    with run_guard(ws, "variations", no_wait, as_json):
        try:
            from musicdata.models import api
            from musicdata.stages import variations as stage

            if input_midi is None:
                s = stage.prior(ws, api, run, performer_run, n, **common).to_dict()
            else:
                s = stage.variations(
                    ws, api, run, performer_run, input_midi, n, spread=spread, **common
                ).to_dict()
        except ValueError as exc:
            fail(str(exc))
    s.update(seconds=round(time.perf_counter() - t0, 2), home=str(ws.root))
    figures = [
        f"{k} {s[k]:.3f}"
        for k in (
            "pc_similarity",
            "onset_overlap",
            "novelty",
            "reconstruction_accuracy",
            "kl_total",
            "active_units",
            "performer_kl_velocity",
            "performer_kl_microtiming",
        )
        if k in s
    ]
    emit(
        s,
        as_json,
        f"variations: {s['generated']} pieces in {s['out_dir']} ({s['undecodable']} did not "
        f"decode) in {s['seconds']} s",
        *(["figures: " + ", ".join(figures)] if figures else []),
        f"compare with the test split: musicdata metrics <test MIDI folder> {s['out_dir']}",
    )
