"""A clean terminal (issue 19): library warnings (basic-pitch's root-logger warnings, TensorFlow,
`pkg_resources`, MidiTok's "clipped to 256 bars") go to the log, shown only with --verbose; the
worker processes that raise most of them follow the CLI's choice. Checked on stderr of real
processes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "musicdata"


def noisy_item(x: int) -> int:
    """What basic-pitch, resampy and MidiTok do inside a worker."""
    logging.warning("Coremltools is not installed.")  # basic-pitch, on the root logger
    warnings.warn("pkg_resources is deprecated as an API.", UserWarning, stacklevel=1)
    warnings.warn("It is therefore clipped to 256 bars.", UserWarning, stacklevel=1)
    logging.getLogger("musicdata.test").warning("a warning written for the user")
    return x + 1


SCRIPT = textwrap.dedent(
    """
    import sys
    from musicdata import logs
    verbose = sys.argv[1] == "1"
    logs.set_environment(verbose)
    logs.configure(verbose)
    from musicdata.isolate import IsolatedPool
    from tests.cli.test_noise import noisy_item
    with IsolatedPool(noisy_item, workers=1) as pool:
        print(sorted(r for _, r in pool.map_unordered([1, 2])))
    noisy_item(0)  # and in the main process
    """
)


def _run(verbose: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MUSICDATA_VERBOSE", "PYTHONWARNINGS")}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, "1" if verbose else "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )


def test_library_warnings_go_to_the_log_not_the_terminal() -> None:
    quiet = _run(verbose=False)
    assert quiet.stdout.strip() == "[2, 3]"
    lines = [ln for ln in quiet.stderr.splitlines() if ln.strip()]
    # only musicdata's own warning, once per process (2 workers' items run in one worker)
    assert lines and all("a warning written for the user" in ln for ln in lines), quiet.stderr
    for noise in ("Coremltools", "pkg_resources", "clipped to 256 bars", "WARNING:root"):
        assert noise not in quiet.stderr
    loud = _run(verbose=True)
    for noise in ("Coremltools", "pkg_resources", "clipped to 256 bars"):
        assert noise in loud.stderr, loud.stderr


def _long_piece(path: Path, bars: int = 300) -> Path:
    import symusic

    score = symusic.Score(480)
    track = symusic.Track(program=0)
    for bar in range(bars):
        for beat in range(4):
            pitch = 60 + (bar * 4 + beat) % 12
            track.notes.append(symusic.Note(bar * 1920 + beat * 480, 480, pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


@pytest.mark.slow
def test_tokenizing_a_long_piece_leaves_stderr_clean(tmp_path: Path) -> None:
    """MidiTok warns that Octuple clips a piece of more than 256 bars (musicdata segments it)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _long_piece(corpus / "long.mid")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "MUSICDATA_VERBOSE"}
    ingest = subprocess.run(
        [str(EXE), "--home", str(home), "ingest", str(corpus)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stderr.strip() == "", ingest.stderr
    tok = subprocess.run(
        [str(EXE), "--home", str(home), "tokenize", "-e", "octuple", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert tok.returncode == 0, tok.stderr
    assert "clipped" not in tok.stderr and "UserWarning" not in tok.stderr, tok.stderr
    assert tok.stderr.strip() == "", tok.stderr
    assert len(tok.stdout.strip().splitlines()) == 1


@pytest.mark.slow
def test_transcribing_a_recording_leaves_stderr_clean(tmp_path: Path) -> None:
    """basic-pitch + TensorFlow + resampy's pkg_resources import, for real (about a minute)."""
    import soundfile as sf

    from musicdata.testing.audio import render_midi
    from tests.conftest import FIXTURES

    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "chorale.wav", render_midi(FIXTURES / "chorale_4_4.mid"), 22050)
    env = {k: v for k, v in os.environ.items() if k != "MUSICDATA_VERBOSE"}
    run = subprocess.run(
        [str(EXE), "--home", str(tmp_path / "home"), "ingest", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "1 transcribed" in run.stdout
    for noise in ("Coremltools", "tflite", "onnxruntime", "pkg_resources", "tensorflow"):
        assert noise not in run.stderr, run.stderr
    assert run.stderr.strip() == "", run.stderr
