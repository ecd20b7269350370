"""Shared fixtures: real MIDI files (tests/fixtures/midi), fresh workspaces, an isolated Prefect."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# One BLAS/OpenMP thread per test process (and the subprocesses tests start): the suite runs
# several processes at once on 2 cores, where torch's default of one thread per core made small
# training steps ~40x slower from oversubscription. Set before torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Prefect (flows run in its ephemeral mode in tests): no telemetry, a quiet ephemeral server, and
# time for its first SQLite migration on busy cores. Set before prefect is first imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from musicdata.schemas.config import Config, IngestConfig, TokenizeConfig
from musicdata.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "midi"
REAL = [
    "chorale_4_4.mid",
    "chorale_near_dup.mid",
    "cut_time_2_2.mid",
    "folk_6_8.mid",
    'it\'s "odd"; name.mid',
    "multitrack_tempo_change.mid",
    "waltz_3_4.mid",
]
BROKEN = {
    "empty.mid": "unparseable",
    "truncated.mid": "unparseable",
    "random_bytes.mid": "unparseable",
    "zero_notes.mid": "no_notes",
    "header_only.mid": "no_notes",
}


@pytest.fixture(scope="session", autouse=True)
def _prefect_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Prefect state of the test session lives in a temp folder, never in ~/.prefect."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the fixture folder (tests may add, change or break files in it)."""
    dest = tmp_path / "corpus"
    shutil.copytree(FIXTURES, dest)
    return dest


def make_workspace(root: Path, **ingest: object) -> Workspace:
    cfg = Config(
        ingest=IngestConfig(workers=2, timeout_s=20, **ingest),  # type: ignore[arg-type]
        tokenize=TokenizeConfig(workers=2),
    )
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root=root.resolve(), config=cfg)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "home")
