"""Transcription: recordings -> basic-pitch -> MIDI pieces with lineage, splits and idempotence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic

from musicdata.audio.transcribe import params_hash, transcription_params
from musicdata.metrics.transcription import score_midi_pair
from musicdata.schemas.config import TranscribeConfig
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from musicdata.stages.transcribe import transcribe_pending
from musicdata.testing.audio import render_midi
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES


def test_ingest_then_transcribe_catch_up(ws: Workspace, tmp_path: Path) -> None:
    """--no-transcribe, then the transcribe stage: a real render becomes a MIDI piece that scores
    against its source, silence becomes "no notes", and the piece flows into REMI shards."""
    d = tmp_path / "rec"
    d.mkdir()
    sf.write(d / "waltz.flac", render_midi(FIXTURES / "waltz_3_4.mid"), 22050)
    sf.write(d / "silence.wav", np.zeros(22050, np.float32), 22050)
    s = ingest_paths(ws, [d], run_id="r1", transcribe=False)
    assert (s.recordings, s.transcribed) == (2, 0)
    assert ws.catalog.query("SELECT * FROM transcriptions").num_rows == 0

    t = transcribe_pending(ws, run_id="t1")
    assert (t.transcribed, t.no_notes, t.transcribe_failed) == (1, 1, 0)
    rows = ws.catalog.query(
        "SELECT t.status, t.piece_id, t.split, t.model_id, t.params_hash, s.path "
        "FROM transcriptions t JOIN sources s ON s.sha256 = t.recording_sha256"
    ).to_pylist()
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["silence.wav"]["status"] == "no_notes"
    assert by_name["silence.wav"]["piece_id"] is None
    waltz = by_name["waltz.flac"]
    assert waltz["status"] == "ok" and waltz["model_id"].startswith("basic-pitch-0.4.0/")
    assert waltz["params_hash"] == params_hash(ws.config.transcribe)

    piece = ws.catalog.query(
        "SELECT * FROM pieces WHERE piece_id = ?", [waltz["piece_id"]]
    ).to_pylist()[0]
    assert piece["split"] == waltz["split"]  # a derived piece inherits its recording's split
    assert piece["n_notes"] > 20
    # the piece is a real MIDI file in the content store; it scores against the source MIDI
    est = symusic.Score.from_midi(ws.abspath(piece["blob_path"]).read_bytes())
    scores = score_midi_pair(symusic.Score(str(FIXTURES / "waltz_3_4.mid")), est)
    assert scores["f1"] > 0.6, scores
    # lineage: audio -> piece, carrying the transcription params hash
    edge = ws.catalog.query(
        "SELECT src_id, config_hash FROM lineage WHERE dst_id = ? AND stage = 'transcribe'",
        [f"piece:{waltz['piece_id']}"],
    ).to_pylist()
    assert {e["config_hash"] for e in edge} == {waltz["params_hash"]}
    assert sorted(e["src_id"].split(":")[0] for e in edge) == ["audio", "model"]
    assert f"model:{waltz['model_id']}" in {e["src_id"] for e in edge}
    # sources shows the audio file ok with its transcribed piece; the derived MIDI is not a source
    src = ws.catalog.query("SELECT path, kind, status, piece_id FROM sources").to_pylist()
    assert {r["kind"] for r in src} == {"audio"}
    assert {r["piece_id"] for r in src} == {waltz["piece_id"], None}

    # re-running never fails because the output exists, and does nothing
    assert transcribe_pending(ws, run_id="t2").transcribed == 0
    again = ingest_paths(ws, [d], run_id="r2")
    assert (again.transcribed, again.skipped) == (0, 2)

    remi = tokenize_encoding(ws, "remi", run_id="k1")
    assert remi.tokenized == 1 and remi.quarantined == 0


def test_params_hash_covers_what_decides_the_notes() -> None:
    base = TranscribeConfig()
    assert params_hash(base) == params_hash(dataclasses.replace(base, workers=4, timeout_s=1))
    for change in (
        {"onset_threshold": 0.6},
        {"frame_threshold": 0.2},
        {"minimum_note_length_ms": 50.0},
        {"maximum_frequency_hz": 2000.0},
        {"chunk_s": 10.0},
    ):
        assert params_hash(dataclasses.replace(base, **change)) != params_hash(base), change
    p = transcription_params(base)
    assert p["model"] == "basic-pitch-0.4.0/icassp_2022" and p["onset_threshold"] == 0.5


@pytest.mark.slow
def test_chunked_transcription_matches_whole_file(tmp_path: Path) -> None:
    """One chunk gives exactly basic-pitch's predict() notes; 10 s chunks nearly the same."""
    import contextlib
    import io

    from basic_pitch.inference import predict

    from musicdata.audio.transcribe import _model, model_path, transcribe_events

    x = np.concatenate([render_midi(FIXTURES / n) for n in ("chorale_4_4.mid", "folk_6_8.mid")])
    sf.write(tmp_path / "long.wav", x, 22050)
    cfg = TranscribeConfig()
    model = _model(model_path(cfg))
    whole, n1, _ = transcribe_events(
        model, str(tmp_path / "long.wav"), dataclasses.replace(cfg, chunk_s=60.0)
    )
    parts, n2, _ = transcribe_events(
        model, str(tmp_path / "long.wav"), dataclasses.replace(cfg, chunk_s=10.0)
    )
    assert n1 == 1 and n2 == 3  # 33 s of audio
    with contextlib.redirect_stdout(io.StringIO()):
        _, _, raw = predict(str(tmp_path / "long.wav"), model)
    key = lambda e: (round(e[0], 6), round(e[1], 6), e[2])  # noqa: E731
    assert sorted(map(key, raw)) == sorted(map(key, whole))
    from musicdata.metrics.transcription import note_scores

    iv = lambda ev: np.array([[e[0], e[1]] for e in ev])  # noqa: E731
    pitch = lambda ev: np.array([e[2] for e in ev])  # noqa: E731
    agree = note_scores(iv(whole), pitch(whole), iv(parts), pitch(parts), onset_tolerance=0.02)
    assert agree["f1"] > 0.97, agree


@pytest.mark.slow
def test_done_when_mixed_folder_end_to_end(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real renders, hostile audio and MIDI in one ingest run: every recording ends ok or
    quarantined, good ones become transcribed pieces in REMI shards and codec shards, and
    lineage links audio -> piece -> shard and audio -> codec shard."""
    from musicdata.schemas.config import CodecConfig
    from musicdata.stages.codec import tokenize_codec
    from musicdata.testing.audio import write_hostile_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # untrained codec, never a download
    codec = CodecConfig(model_32k="nobody/no-such-encodec-32k")
    ws = dataclasses.replace(ws, config=dataclasses.replace(ws.config, codec=codec))

    d = tmp_path / "mixed"
    expected = write_hostile_files(d)
    for name in ("waltz_3_4.mid", "folk_6_8.mid"):
        sf.write(d / f"{name}.flac", render_midi(FIXTURES / name), 22050)
        (d / name).write_bytes((FIXTURES / name).read_bytes())
    s = ingest_paths(ws, [d], run_id="r1")
    n_bad = sum(1 for r in expected.values() if r)
    assert s.quarantined == n_bad and s.recordings == len(expected) - n_bad + 2
    assert s.transcribed + s.no_notes == s.recordings and s.no_notes >= 1
    src = ws.catalog.query("SELECT status, count(*) AS n FROM sources GROUP BY status")
    assert dict(zip(*src.to_pydict().values(), strict=True)) == {
        "ok": len(expected) - n_bad + 4,
        "quarantined": n_bad,
    }
    remi = tokenize_encoding(ws, "remi", run_id="k1")
    assert remi.tokenized == 2 + s.transcribed and remi.quarantined == 0
    codec = tokenize_codec(ws, "encodec-32k", run_id="c1", allow_untrained=True)
    assert codec.tokenized == s.recordings and codec.quarantined == 0
    chain = ws.catalog.query(
        "SELECT a.src_id, b.dst_id FROM lineage a JOIN lineage b ON b.src_id = a.dst_id "
        "WHERE a.stage = 'transcribe' AND b.stage = 'tokenize:remi' AND a.src_id LIKE 'audio:%'"
    )
    assert chain.num_rows == s.transcribed


@pytest.mark.slow
def test_cli_no_transcribe_then_transcribe(tmp_path: Path) -> None:
    """`ingest --no-transcribe` then `transcribe`, both as Prefect flows, with --json (run as the
    real command, in its own process)."""
    import json
    import subprocess
    import sys

    d = tmp_path / "rec"
    d.mkdir()
    sf.write(d / "folk.wav", render_midi(FIXTURES / "folk_6_8.mid")[: 22050 * 4], 22050)
    cli = [sys.executable, "-m", "musicdata.cli", "--home", str(tmp_path / "home")]

    def run(*args: str) -> dict:
        res = subprocess.run([*cli, *args, "--json"], capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout.strip().splitlines()[-1])

    out = run("ingest", str(d), "--no-transcribe")
    assert (out["recordings"], out["transcribed"]) == (1, 0)
    out = run("transcribe")
    assert (out["transcribed"], out["no_notes"], out["transcribe_failed"]) == (1, 0, 0)
