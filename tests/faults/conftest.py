"""Shared workspaces of the fault suite: the fixture MIDI ingested, and a clean tokenize of it
(the reference every killed-and-rerun workspace must equal)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES
from tests.musicdata.tokenized_ws import IN_PROCESS

ENCODINGS = ["remi", "cp"]
# Small shards, so a run writes several per split through both of the writer's paths (a full
# buffer recorded at once, the rest at close).
TOML = "[shards]\nrows_per_shard = 2\n\n[ingest]\nworkers = 2\n\n[tokenize]\nworkers = 2\n"


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture MIDI ingested (no shards yet), with the small-shard config."""
    home = tmp_path_factory.mktemp("faults") / "ingested"
    home.mkdir()
    (home / "musicdata.toml").write_text(TOML)
    ingest_paths(Workspace.open(home), [FIXTURES], run_id="ingest", transcribe=False)
    return home


@pytest.fixture(scope="session")
def clean(ingested: Path) -> Path:
    """A clean, uninterrupted tokenize of `ingested`: the reference."""
    home = ingested.parent / "clean"
    shutil.copytree(ingested, home)
    ws = Workspace.open(home)
    tokenize_encodings(
        ws, ENCODINGS, run_ids={e: f"clean-{e}" for e in ENCODINGS}, steps=IN_PROCESS
    )
    return home
