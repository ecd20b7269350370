"""Audio commands: `musicdata transcribe`, and the codec side of `musicdata tokenize`."""

from __future__ import annotations

import time
from typing import Any

from musicdata import progress
from musicdata.cli.common import JsonOpt, app, config_arg, emit, fail, workspace
from musicdata.cli.pipeline import NoWaitOpt, run_guard
from musicdata.workspace import Workspace

CODEC_NAMES = ("encodec-24k", "encodec-32k")


@app.command()
def transcribe(as_json: JsonOpt = False, no_wait: NoWaitOpt = False) -> None:
    """Transcribe recordings to MIDI pieces (basic-pitch); catches up after --no-transcribe.

    Only recordings without a transcription under the current `transcribe` settings of
    musicdata.toml; each piece keeps its recording's split."""
    progress.enable(not as_json)
    ws = workspace()
    t0 = time.perf_counter()
    with run_guard(ws, "transcribe", no_wait, as_json):  # a busy workspace refuses before Prefect
        from musicdata.flows.audio import transcribe_flow

        summary = transcribe_flow(str(ws.root), config_arg(ws))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["home"] = str(ws.root)
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary["reasons"].items())) or "none"
    emit(
        summary,
        as_json,
        f"transcribe: {summary['transcribed']} recordings -> MIDI pieces, "
        f"{summary['no_notes']} with no notes, {summary['transcribe_failed']} failed ({reasons}); "
        f"{summary['audio_s']:.1f} s of audio in {summary['seconds']} s",
    )


def check_codecs(ws: Workspace, names: list[str], allow_untrained: bool) -> None:
    """Fail before any work (and before Prefect starts) when a codec has no weights."""
    from musicdata.audio.codec import CodecUnavailable, codec_settings

    for name in names:
        try:
            codec_settings(name, ws.config.codec, allow_untrained=allow_untrained)
        except (CodecUnavailable, ValueError) as exc:
            fail(str(exc), error="codec_unavailable")


def usable_codecs(
    ws: Workspace, names: list[str] | tuple[str, ...], allow_untrained: bool
) -> tuple[list[str], dict[str, str]]:
    """Split codec names into those with weights (or allowed untrained) and the others, with
    the reason: what `tokenize --all` runs and what it reports as skipped."""
    from musicdata.audio.codec import CodecUnavailable, codec_settings

    usable, skipped = [], {}
    for name in names:
        try:
            codec_settings(name, ws.config.codec, allow_untrained=allow_untrained)
            usable.append(name)
        except (CodecUnavailable, ValueError) as exc:
            skipped[name] = str(exc)
    return usable, skipped


def run_codec_tokenize(ws: Workspace, names: list[str], allow_untrained: bool) -> list[dict]:
    """`tokenize --encoding encodec-*`: check weights, then run the codec flow."""
    check_codecs(ws, names, allow_untrained)
    from musicdata.flows.audio import tokenize_codec_flow

    results: list[dict[str, Any]] = tokenize_codec_flow(
        names, str(ws.root), config_arg(ws), allow_untrained
    )
    for r in results:
        if not r["trained"]:
            r["warning"] = "untrained codec weights (--allow-untrained): codes are not meaningful"
    return results
