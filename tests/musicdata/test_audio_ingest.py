"""Audio ingest: real renders, hostile recordings and MIDI in one run; metadata, splits, dedup."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

from musicdata.audio.decode import AudioJob, _open_error, inspect_audio, load_mono
from musicdata.schemas.catalog import latest_version
from musicdata.schemas.config import Config
from musicdata.stages.ingest import ingest_paths
from musicdata.testing.audio import render_midi, write_hostile_files
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES, make_workspace


@pytest.fixture
def audio_dir(tmp_path: Path) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path / "audio"
    expected = write_hostile_files(folder)
    sf.write(folder / "waltz.flac", render_midi(FIXTURES / "waltz_3_4.mid"), 22050)
    expected["waltz.flac"] = None
    shutil.copy(FIXTURES / "folk_6_8.mid", folder / "folk_6_8.mid")
    return folder, expected


def test_mixed_folder_every_recording_ends_ok_or_quarantined(
    ws: Workspace, audio_dir: tuple[Path, dict[str, str | None]]
) -> None:
    folder, expected = audio_dir
    s = ingest_paths(ws, [folder], run_id="r1", transcribe=False)
    n_bad = sum(1 for r in expected.values() if r)
    assert (s.ok, s.quarantined, s.recordings) == (len(expected) - n_bad + 1, n_bad, 4)

    rows = ws.catalog.query("SELECT path, kind, status FROM sources").to_pylist()
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert status.pop("folk_6_8.mid") == "ok"
    assert status == {n: ("quarantined" if r else "ok") for n, r in expected.items()}
    q = ws.catalog.query("SELECT path, stage, reason, detail FROM quarantine").to_pylist()
    assert {Path(r["path"]).name: r["reason"] for r in q} == {
        n: r for n, r in expected.items() if r
    }
    assert all(r["stage"] == "ingest:audio" and r["detail"] for r in q)

    rec = {
        r["path"]: r
        for r in ws.catalog.query(
            "SELECT s.path, r.* FROM recordings r JOIN sources s USING (recording_id)"
        ).to_pylist()
    }
    meta = {Path(p).name: r for p, r in rec.items()}
    assert (meta["six_channels.wav"]["channels"], meta["six_channels.wav"]["sample_rate"]) == (
        6,
        16000,
    )
    assert meta["rate_8k.wav"]["sample_rate"] == 8000
    assert meta["rate_8k.wav"]["duration_s"] == pytest.approx(2.0)
    assert meta["silence.flac"]["is_silent"] and meta["silence.flac"]["rms_dbfs"] is None
    waltz = meta["waltz.flac"]
    assert waltz["format"] == "FLAC" and not waltz["is_silent"]
    assert -40 < waltz["rms_dbfs"] < 0 and waltz["peak_dbfs"] == pytest.approx(
        20 * np.log10(0.3), abs=0.1
    )
    assert all(r["split"] in ("train", "validation", "test") for r in rec.values())
    # lineage: the stored file -> the recording node the later stages hang off
    edges = ws.catalog.query("SELECT src_id, dst_id FROM lineage WHERE stage = 'ingest:audio'")
    assert edges.num_rows == 4

    again = ingest_paths(ws, [folder], run_id="r2", transcribe=False)
    assert (again.ok, again.quarantined, again.skipped) == (0, 0, len(expected) + 1)


def test_same_audio_in_another_container_is_a_near_duplicate(ws: Workspace, tmp_path: Path) -> None:
    # int16 samples written as they are (libsndfile's float->int16 rounding differs by format)
    x = np.rint(render_midi(FIXTURES / "folk_6_8.mid", 16000) * 32767).astype(np.int16)
    d = tmp_path / "dups"
    d.mkdir()
    sf.write(d / "a.wav", x, 16000, subtype="PCM_16")
    sf.write(d / "b.flac", x, 16000, subtype="PCM_16")  # same samples, other bytes
    shutil.copy(d / "a.wav", d / "c.wav")  # same bytes at another path
    s = ingest_paths(ws, [d], run_id="r1", transcribe=False)
    assert (s.ok, s.near_duplicates, s.duplicates) == (2, 1, 1)
    rows = ws.catalog.query(
        "SELECT recording_id, split, near_duplicate_of FROM recordings ORDER BY created_at"
    ).to_pylist()
    assert len({r["split"] for r in rows}) == 1
    assert sum(r["near_duplicate_of"] is not None for r in rows) == 1


def test_formats_and_archives(ws: Workspace, tmp_path: Path) -> None:
    """WAV, FLAC, OGG and MP3 (this libsndfile decodes MP3) from a folder and a tar archive."""
    x = render_midi(FIXTURES / "chorale_4_4.mid", 22050)[: 22050 * 3]
    d = tmp_path / "formats"
    d.mkdir()
    sf.write(d / "a.wav", x, 22050)
    sf.write(d / "b.ogg", x, 22050, format="OGG", subtype="VORBIS")
    sf.write(d / "c.mp3", x, 22050, format="MP3")
    sf.write(d / "noext", x * 0.5, 22050, format="WAV")  # named nothing: sniffed as WAV
    with tarfile.open(tmp_path / "rec.tar", "w") as tf:
        tf.add(d / "a.wav", arcname="in/archive.wav")
    s = ingest_paths(
        ws,
        [d / "a.wav", d / "b.ogg", d / "c.mp3", d / "noext", tmp_path / "rec.tar"],
        run_id="r1",
        transcribe=False,
    )
    assert (s.ok, s.quarantined, s.duplicates) == (4, 0, 1)
    fmts = ws.catalog.query("SELECT format, duration_s FROM recordings ORDER BY format").to_pylist()
    assert [r["format"] for r in fmts] == ["MP3", "OGG", "WAV", "WAV"]
    assert all(r["duration_s"] == pytest.approx(3.0, abs=0.06) for r in fmts)  # MP3 pads a little


def test_unsupported_format_names_the_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an older libsndfile without MP3 the reason names the format and the fix."""
    import soundfile

    path = tmp_path / "x.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200))
    formats = {k: v for k, v in soundfile.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(soundfile, "available_formats", lambda: formats)
    job = AudioJob("0" * 64, str(path), 0.1, 100.0, -80.0)
    out = _open_error(job, path, RuntimeError("Format not recognised"))
    assert out["reason"] == "unsupported_format"
    assert "MP3" in out["detail"] and "libsndfile" in out["detail"]


def test_inspect_and_load_mono_downmix_and_resample(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), -np.sin(2 * np.pi * 200 * t) * 0], axis=1)
    sf.write(tmp_path / "s.wav", (0.5 * stereo).astype(np.float32), 8000, subtype="FLOAT")
    rec = inspect_audio(AudioJob("x", str(tmp_path / "s.wav"), 0.1, 10.0, -80.0))
    assert rec["status"] == "ok" and rec["channels"] == 2 and rec["frames"] == 8000
    mono = load_mono(tmp_path / "s.wav", 32000)
    assert len(mono) == 32000 and np.abs(mono).max() == pytest.approx(0.25, abs=0.01)
    part = load_mono(tmp_path / "s.wav", 16000, 0.25, 0.5)
    assert len(part) == 4000


def test_old_catalog_is_migrated(tmp_path: Path) -> None:
    from musicdata.catalog.connection import migrate_to

    path = tmp_path / "home" / "catalog.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    migrate_to(con, 2)  # a catalog from before audio
    con.close()
    ws = make_workspace(tmp_path / "home")
    with ws.catalog.write() as c:
        version = c.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
        c.execute("SELECT count(*) FROM core.recordings").fetchall()
    assert version == latest_version()
    assert ws.catalog.query("SELECT * FROM transcriptions").num_rows == 0


def test_config_sections_reject_unknown_keys() -> None:
    cfg = Config.from_dict({"audio": {"min_duration_s": 0.5}, "transcribe": {"chunk_s": 10.0}})
    assert cfg.audio.min_duration_s == 0.5 and cfg.transcribe.chunk_s == 10.0
    with pytest.raises(ValueError, match="unknown key"):
        Config.from_dict({"codec": {"bandwith_24k": 6.0}})
