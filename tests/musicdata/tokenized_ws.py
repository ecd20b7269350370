"""A tokenized workspace from the real fixture MIDI files, built once per test module and copied
per test (ingest + tokenize in isolated workers cost seconds; copying costs milliseconds)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from musicdata.encodings.worker import TokenizeJob, tokenize_piece
from musicdata.isolate import IsolatedPool
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import Steps, tokenize_encodings
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES, make_workspace

ENCODINGS = ["remi", "cp"]


def _in_process(pool: IsolatedPool, jobs: Sequence[TokenizeJob]) -> list[dict[str, Any]]:
    """Tokenize in the test process: the fixtures are trusted here, and a fresh worker process
    per run re-imports MidiTok (seconds). Isolation itself is tested in test_tokenize.py."""
    del pool
    return sorted((tokenize_piece(j) for j in jobs), key=lambda r: (r["piece_id"], r["encoding"]))


IN_PROCESS = Steps(tokenize=_in_process)


def build(root: Path, encodings: list[str] = ENCODINGS) -> Workspace:
    ws = make_workspace(root)
    ingest_paths(ws, [FIXTURES], run_id="ingest-1", transcribe=False)
    tokenize_encodings(ws, encodings, run_ids={e: f"tok-{e}" for e in encodings}, steps=IN_PROCESS)
    return ws


_BUILT: dict[str, Workspace] = {}


def shared(factory: pytest.TempPathFactory) -> Workspace:
    """One tokenized workspace per test session (both test modules reuse it): treat it as
    read-only, `copy` it before writing."""
    if "ws" not in _BUILT:
        _BUILT["ws"] = build(factory.mktemp("tokenized") / "home")
    return _BUILT["ws"]


def copy(ws: Workspace, root: Path) -> Workspace:
    shutil.copytree(ws.root, root)
    return dataclasses.replace(ws, root=root.resolve())


def with_overrides(ws: Workspace, **encodings: dict) -> Workspace:
    """The same workspace under another encoding config (a second vocabulary)."""
    return dataclasses.replace(ws, config=dataclasses.replace(ws.config, encodings=encodings))
