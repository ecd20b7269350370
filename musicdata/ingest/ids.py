"""Ids and config hashes of ingested inputs: MIDI pieces and audio recordings.

Pure functions shared by the ingest and transcribe stages (a transcribed piece is keyed exactly
like an ingested one), kept apart from both so neither stage imports the other's module.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from musicdata.schemas.config import config_hash

STAGE = "ingest"
# bump when parsing or validation changes what a file's outcome is; 2: note quality flags
INGEST_VERSION = 2
AUDIO_STAGE = "ingest:audio"
AUDIO_INGEST_VERSION = 1  # bump when decoding or validation changes a file's outcome


def ingest_config_hash(ws: Any) -> str:
    # `normalize` is applied when tokenizing and hashed there (each encoding's config hash); it
    # changes no ingest outcome, so switching it must not re-ingest anything.
    cfg = {k: v for k, v in asdict(ws.config.ingest).items() if k != "normalize"}
    return config_hash(cfg, {"stage": STAGE, "version": INGEST_VERSION})


def audio_config_hash(ws: Any) -> str:
    return config_hash(ws.config.audio, {"stage": AUDIO_STAGE, "version": AUDIO_INGEST_VERSION})


def piece_id_for(sha256: str) -> str:
    return "p" + sha256[:20]


def recording_id_for(sha256: str) -> str:
    return "r" + sha256[:20]
