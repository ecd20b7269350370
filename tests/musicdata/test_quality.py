"""Note quality flags at ingest and the workspace's opt-in normalization (`[ingest] normalize`).

The re-struck file is derived from a real fixture (Beethoven op. 59 no. 3, bars 22-41): the cello's
ties never end (every note held to the end of the piece, the failure music21 conversions show on
whole quartet movements) and its first note is doubled, as real exports do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic

from musicdata.encodings import get_encoding, workspace_encoding
from musicdata.encodings.normalize import normalization_params, note_flags
from musicdata.encodings.worker import TokenizeJob, tokenize_piece
from musicdata.schemas.config import Config, IngestConfig
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encoding
from tests.conftest import FIXTURES, make_workspace

QUARTET = FIXTURES / "multitrack_tempo_change.mid"


def restruck_copy(dest: Path) -> tuple[Path, int]:
    """Write the real quartet excerpt with never-ending cello notes and one doubled note; returns
    the path and how many cello notes now overlap their pitch's next onset."""
    score = symusic.Score(str(QUARTET))
    end = score.end()
    cello = max(score.tracks, key=lambda t: t.program)  # program 42
    notes = sorted(cello.notes, key=lambda n: n.time)
    overlaps = 0
    for i, n in enumerate(notes):
        if any(m.pitch == n.pitch for m in notes[i + 1 :]):
            overlaps += 1
        n.duration = end - n.time
    first = notes[0]
    cello.notes = [*notes, symusic.Note(first.time, first.duration // 2, first.pitch, 60)]
    out = dest / "quartet_restruck.mid"
    score.dump_midi(str(out))
    return out, overlaps


def test_flags_count_what_normalization_changes(tmp_path: Path) -> None:
    path, overlaps = restruck_copy(tmp_path)
    flags = note_flags(symusic.Score(str(path)), max_quarters=32.0)
    assert flags.duplicates == 1 and flags.restruck == overlaps > 0
    assert note_flags(symusic.Score(str(QUARTET))).to_dict() == {
        "notes": 99,
        "duplicates": 0,
        "restruck": 0,
        "capped": 0,
    }
    assert note_flags(symusic.Score(str(path)), max_quarters=2.0).capped > 0


def test_normalize_setting_is_validated_and_hashed() -> None:
    with pytest.raises(ValueError, match="trim-overlap"):
        IngestConfig(normalize="trim")
    with pytest.raises(ValueError, match="max_duration_quarters"):
        IngestConfig(max_duration_quarters=0)
    plain = workspace_encoding(Config(), "remi")
    assert plain.config_hash == get_encoding("remi").config_hash  # "none" changes no hash
    trimmed = Config(ingest=IngestConfig(normalize="trim-overlaps"))
    capped = Config(ingest=IngestConfig(normalize="trim-overlaps", max_duration_quarters=16))
    hashes = {workspace_encoding(c, "remi").config_hash for c in (Config(), trimmed, capped)}
    assert len(hashes) == 3
    # the recorded params rebuild the same encoding (reports and manifests rebuild from them)
    enc = workspace_encoding(trimmed, "nb-pf")
    assert get_encoding("nb-pf", enc.params).config_hash == enc.config_hash
    assert normalization_params("none", 32.0) == {}


def test_ingest_records_quality_flags_per_piece(tmp_path: Path) -> None:
    restruck, overlaps = restruck_copy(tmp_path)
    ws = make_workspace(tmp_path / "raw")
    ingest_paths(ws, [restruck, QUARTET], run_id="i1")
    rows = ws.catalog.query(
        "SELECT duplicate_notes, overlapping_notes, long_notes, longest_note_quarters "
        "FROM pieces ORDER BY overlapping_notes"
    ).to_pylist()
    assert [r["overlapping_notes"] for r in rows] == [0, overlaps]
    clean, bad = rows
    assert clean["duplicate_notes"] == 0 and clean["long_notes"] == 0
    assert bad["duplicate_notes"] == 1
    assert bad["longest_note_quarters"] > clean["longest_note_quarters"]


def test_worker_tokenizes_the_normalized_notes(tmp_path: Path) -> None:
    """The tokenize worker applies the workspace's normalization (carried in the params) and
    measures fidelity against the normalized notes: every one comes back."""
    restruck, _ = restruck_copy(tmp_path)
    cfg = Config(ingest=IngestConfig(normalize="trim-overlaps"))
    results = {}
    for name, config in (("raw", Config()), ("norm", cfg)):
        enc = workspace_encoding(config, "midilike")
        job = TokenizeJob("p1", str(restruck), "midilike", enc.params)
        results[name] = tokenize_piece(job)
    norm = results["norm"]["fidelity"]
    assert norm.notes == norm.recovered == 99  # the doubled note dropped, none lost
    assert results["raw"]["fidelity"].notes == 100


@pytest.mark.slow
def test_normalized_workspace_writes_separate_shards(tmp_path: Path) -> None:
    restruck, _ = restruck_copy(tmp_path)
    hashes = []
    for name, normalize in (("raw", "none"), ("norm", "trim-overlaps")):
        ws = make_workspace(tmp_path / name, normalize=normalize)
        ingest_paths(ws, [restruck], run_id="i1")
        s = tokenize_encoding(ws, "midilike", run_id="t1")
        assert s.tokenized == 1
        assert (ws.root / "shards" / "midilike" / s.config_hash).is_dir()
        hashes.append(s.config_hash)
    assert hashes[0] != hashes[1]
