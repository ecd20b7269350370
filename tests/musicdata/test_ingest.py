"""Ingest on real MIDI mixed with broken files: outcomes, dedup, splits, idempotence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from musicdata.catalog import records
from musicdata.stages.ingest import ingest_paths
from musicdata.workspace import Workspace
from tests.conftest import BROKEN, FIXTURES, REAL, make_workspace


def _counts(ws: Workspace) -> dict[str, int]:
    with ws.catalog.read() as con:
        counts = records.table_counts(con)
    counts.pop("runs")
    return counts


def test_mixed_folder_every_file_ends_ok_or_quarantined(ws: Workspace, corpus: Path) -> None:
    s = ingest_paths(ws, [corpus], run_id="r1")
    assert (s.ok, s.quarantined, s.duplicates, s.skipped) == (len(REAL), len(BROKEN), 0, 0)
    assert s.near_duplicates == 1

    sources = ws.catalog.query("SELECT path, status FROM sources").to_pylist()
    status = {Path(r["path"]).name: r["status"] for r in sources}
    assert status == {**{n: "ok" for n in REAL}, **{n: "quarantined" for n in BROKEN}}

    q = ws.catalog.query("SELECT path, stage, reason, detail FROM quarantine").to_pylist()
    reasons = {Path(r["path"]).name: r["reason"] for r in q}
    assert reasons == BROKEN
    assert all(r["stage"] == "ingest" and r["detail"] for r in q)
    # the stored copy of a quarantined file is kept: nothing is lost
    assert len(list((ws.root / "objects").rglob("*"))) >= len(REAL) + len(BROKEN)


def test_metadata_of_real_files(ws: Workspace, corpus: Path) -> None:
    ingest_paths(ws, [corpus], run_id="r1")
    rows = ws.catalog.query(
        "SELECT s.path, p.* FROM pieces p JOIN sources s USING (piece_id)"
    ).to_pylist()
    meta = {Path(r["path"]).name: r for r in rows}
    chorale = meta["chorale_4_4.mid"]
    assert chorale["n_tracks"] == 4 and chorale["n_notes"] == 84
    assert chorale["time_signatures"] == ["4/4"] and chorale["tempo_bpm"] == 96
    multi = meta["multitrack_tempo_change.mid"]
    assert multi["programs"] == [40, 41, 42] and multi["n_tempo_changes"] == 1
    assert multi["time_signatures"] == ["3/4", "4/4"]
    assert meta["cut_time_2_2.mid"]["time_signatures"] == ["2/2"]
    assert meta["folk_6_8.mid"]["time_signatures"] == ["6/8"]
    assert all(0 < r["duration_s"] < 600 and r["pitch_min"] <= r["pitch_max"] for r in rows)
    # a name with quotes and SQL in it is just a name
    assert meta['it\'s "odd"; name.mid']["n_notes"] == 30


def test_near_duplicate_is_flagged_and_shares_the_split(ws: Workspace, corpus: Path) -> None:
    ingest_paths(ws, [corpus], run_id="r1")
    rows = ws.catalog.query(
        "SELECT s.path, p.piece_id, p.split, p.content_hash, p.near_duplicate_of "
        "FROM pieces p JOIN sources s USING (piece_id)"
    ).to_pylist()
    by = {Path(r["path"]).name: r for r in rows}
    orig, dup = by["chorale_4_4.mid"], by["chorale_near_dup.mid"]
    assert dup["content_hash"] == orig["content_hash"]
    assert dup["near_duplicate_of"] == orig["piece_id"] and orig["near_duplicate_of"] is None
    assert dup["split"] == orig["split"]
    # no content hash appears in two splits
    leaks = ws.catalog.query(
        "SELECT content_hash FROM pieces GROUP BY content_hash HAVING count(DISTINCT split) > 1"
    )
    assert leaks.num_rows == 0


def test_exact_duplicates_across_paths(ws: Workspace, corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(corpus / "folk_6_8.mid", other / "copy.mid")
    shutil.copy(corpus / "empty.mid", other / "also_empty.mid")
    s = ingest_paths(ws, [corpus, other], run_id="r1")
    assert s.duplicates == 2 and s.ok == len(REAL)
    q = ws.catalog.query("SELECT path, reason FROM quarantine").to_pylist()
    assert {"path": str(other / "also_empty.mid"), "reason": "unparseable"} in q
    dup = ws.catalog.query(
        "SELECT exact_duplicate_of FROM sources WHERE path = ?", [str(other / "copy.mid")]
    ).to_pylist()
    assert dup == [{"exact_duplicate_of": str(corpus / "folk_6_8.mid")}]


def test_second_run_does_no_work_and_changes_nothing(ws: Workspace, corpus: Path) -> None:
    ingest_paths(ws, [corpus], run_id="r1")
    before = _counts(ws)
    s = ingest_paths(ws, [corpus], run_id="r2")
    assert (s.ok, s.quarantined, s.duplicates) == (0, 0, 0)
    assert s.skipped == len(REAL) + len(BROKEN)
    assert _counts(ws) == before


def test_changing_one_input_reprocesses_only_it(ws: Workspace, corpus: Path) -> None:
    ingest_paths(ws, [corpus], run_id="r1")
    shutil.copy(FIXTURES / "waltz_3_4.mid", corpus / "empty.mid")  # the broken file gets fixed
    s = ingest_paths(ws, [corpus], run_id="r2")
    assert s.skipped == len(REAL) + len(BROKEN) - 1
    assert s.duplicates == 1 and s.ok == 0  # its new bytes equal the waltz already ingested


def test_splits_are_deterministic_across_workspaces(tmp_path: Path, corpus: Path) -> None:
    a, b = make_workspace(tmp_path / "a"), make_workspace(tmp_path / "b")
    ingest_paths(a, [corpus], run_id="r1")
    for name in sorted(REAL, reverse=True):  # other order, one file at a time
        ingest_paths(b, [corpus / name], run_id=f"r-{name}")
    q = "SELECT piece_id, split, near_duplicate_of FROM pieces ORDER BY piece_id"
    assert a.catalog.query(q).to_pylist()[0]["split"] in {"train", "validation", "test"}
    rows_a = {r["piece_id"]: r["split"] for r in a.catalog.query(q).to_pylist()}
    rows_b = {r["piece_id"]: r["split"] for r in b.catalog.query(q).to_pylist()}
    assert rows_a == rows_b


def test_caps_quarantine_with_the_setting_to_change(tmp_path: Path, corpus: Path) -> None:
    ws = make_workspace(tmp_path / "h", max_notes=50, max_file_mb=0.001)
    s = ingest_paths(ws, [corpus], run_id="r1")
    q = {Path(r["path"]).name: r for r in ws.catalog.query("SELECT * FROM quarantine").to_pylist()}
    assert q["waltz_3_4.mid"]["reason"] == "too_large"
    assert "ingest.max_file_mb" in q["waltz_3_4.mid"]["detail"]
    assert q["chorale_4_4.mid"]["reason"] == "too_many_notes"
    assert s.ok + s.quarantined == len(REAL) + len(BROKEN)


def test_only_missing_inputs_fail_the_run(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="none of the inputs exist"):
        ingest_paths(ws, [tmp_path / "unmounted"], run_id="r1")


def test_missing_and_unsupported_inputs(ws: Workspace, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not music")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("ignored in folders")
    s = ingest_paths(ws, [tmp_path / "missing.mid", text, folder], run_id="r1")
    assert s.quarantined == 2 and s.ignored == 1
    reasons = {r["reason"] for r in ws.catalog.query("SELECT reason FROM quarantine").to_pylist()}
    assert reasons == {"not_found", "unsupported_format"}
    again = ingest_paths(ws, [tmp_path / "missing.mid", text, folder], run_id="r2")
    assert again.quarantined == 0 and again.skipped == 2
