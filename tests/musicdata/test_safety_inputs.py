"""Data-safety regressions for inputs (issue 11): a full disk blames no input, every input has a
verdict in `sources`, archive listing is capped and isolated, fifos are not read."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
import typer

from musicdata.fsutil import WorkspaceWriteError, is_environment_error
from musicdata.ingest import discover as discover_mod
from musicdata.ingest.archives import read_archive
from musicdata.ingest.discover import Discovery
from musicdata.schemas.config import ArchiveConfig, Config, IngestConfig
from musicdata.workspace import Workspace

# ---- 5. a full disk stops the run and blames no input -----------------------------------------


def test_full_disk_quarantines_nothing(
    ws: Workspace, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(discover_mod, "copy_hashing", full)
    with pytest.raises(WorkspaceWriteError, match=r"No space left on device.*nothing was quar"):
        discover_mod.discover(ws, [corpus / "waltz_3_4.mid"])


def test_full_disk_during_ingest_then_a_rerun_after_freeing_space(
    ws: Workspace, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musicdata.stages.ingest import ingest_paths

    real = discover_mod.copy_hashing

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    inputs = [corpus / "waltz_3_4.mid"]  # one file: one parser process (each costs seconds)
    monkeypatch.setattr(discover_mod, "copy_hashing", full)
    with pytest.raises(WorkspaceWriteError):
        ingest_paths(ws, inputs, run_id="full")
    monkeypatch.setattr(discover_mod, "copy_hashing", real)
    s = ingest_paths(ws, inputs, run_id="freed")
    assert (s.ok, s.quarantined) == (1, 0), s
    q = ws.catalog.query("SELECT * FROM core.quarantine").to_pylist()
    assert q == [], f"a full disk was blamed on an input: {q}"


def test_every_input_has_a_verdict_and_a_later_success_clears_it(
    ws: Workspace, corpus: Path, tmp_path: Path
) -> None:
    from musicdata.stages.ingest import ingest_paths

    later = tmp_path / "later.mid"
    text = tmp_path / "notes.txt"
    text.write_text("not music")
    ingest_paths(ws, [later, text, corpus / "waltz_3_4.mid"], run_id="r1")
    rows = ws.catalog.query("SELECT path, status FROM sources").to_pylist()
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert status == {"later.mid": "quarantined", "notes.txt": "quarantined", "waltz_3_4.mid": "ok"}
    later.write_bytes((corpus / "folk_6_8.mid").read_bytes())  # the missing file appears
    ingest_paths(ws, [later], run_id="r2")
    rows = ws.catalog.query("SELECT path, status FROM sources").to_pylist()
    assert {Path(r["path"]).name: r["status"] for r in rows}["later.mid"] == "ok", rows
    shown = ws.catalog.query("SELECT path FROM quarantine").column(0).to_pylist()
    assert [Path(p).name for p in shown] == ["notes.txt"], shown
    kept = ws.catalog.query("SELECT count(*) FROM core.quarantine").column(0)[0].as_py()
    assert kept == 2, "the history of the earlier verdict is kept in core.quarantine"


def test_environment_errors_are_told_apart_from_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "home"
    assert is_environment_error(OSError(errno.ENOSPC, "x"))
    assert is_environment_error(OSError("IOError: No space left on device"))  # pyarrow's text
    assert is_environment_error(PermissionError(13, "denied", str(root / "objects" / "a")), root)
    assert not is_environment_error(PermissionError(13, "denied", "/elsewhere/in.mid"), root)
    assert not is_environment_error(FileNotFoundError(2, "gone", "/elsewhere/in.mid"), root)


def test_run_guard_turns_a_full_disk_into_one_json_error(
    ws: Workspace, capsys: pytest.CaptureFixture
) -> None:
    from musicdata.cli.pipeline import run_guard

    with pytest.raises(typer.Exit) as info, run_guard(ws, "tokenize", False, True):
        raise OSError(errno.ENOSPC, "No space left on device", str(ws.root / "shards" / "x"))
    assert info.value.exit_code == 4
    summary = json.loads(capsys.readouterr().out)
    assert summary["error"] == "environment" and "free disk space" in summary["message"]


# ---- 6. archive listing is capped in time and memory, and runs in an isolated worker ----------


def _capped_ws(tmp_path: Path, **archive: float) -> Workspace:
    root = tmp_path / "capped"
    root.mkdir()
    return Workspace(root=root.resolve(), config=Config(archive=ArchiveConfig(**archive)))


def _read_inline(ws: Workspace, archive: Path) -> tuple[Discovery, float]:
    """The worker's body in this process, timed (the worker adds its own start-up)."""
    out = Discovery()
    t0 = time.monotonic()
    read_archive(ws, archive, out)
    return out, time.monotonic() - t0


def _bz2_tar(path: Path, head: tarfile.TarInfo, chunks: int) -> None:
    """A tar.bz2 whose first header declares `head.size` bytes, really there as zeros (bz2
    streams of 16 MiB of zeros, concatenated: a few KB on disk)."""
    chunk = 16 << 20
    first = bz2.compress(head.tobuf(format=tarfile.USTAR_FORMAT) + b"\0" * (chunk - 512))
    path.write_bytes(first + bz2.compress(b"\0" * chunk) * chunks)


def test_bz2_tar_declaring_a_huge_member_is_not_decompressed(tmp_path: Path) -> None:
    head = tarfile.TarInfo("huge.mid")
    head.size = 1 << 30  # 1 GiB declared
    archive = tmp_path / "bomb.tar.bz2"
    _bz2_tar(archive, head, 64)
    ws = _capped_ws(tmp_path, max_member_mb=1.0)
    found, took = _read_inline(ws, archive)
    # before: 11 s (decompressing 1 GiB to reach the next header); now 0.02 s on an idle machine
    assert took < 3.0, f"listing took {took:.1f} s: it decompressed the declared member"
    first = found.rejected[0]
    assert (first.path, first.reason) == (f"{archive}!huge.mid", "too_large"), found.rejected
    assert not found.candidates
    found = discover_mod.discover(ws, [archive])  # the same through the isolated worker
    assert [r.reason for r in found.rejected] == ["too_large", "too_large"], found.rejected


def test_tar_extended_header_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    head = tarfile.TarInfo("././@PaxHeader")
    head.type = tarfile.XHDTYPE
    head.size = 256 << 20  # tarfile would read all 256 MB into memory to parse it
    archive = tmp_path / "pax.tar.bz2"
    _bz2_tar(archive, head, 16)
    found, took = _read_inline(_capped_ws(tmp_path), archive)
    # before: 300 MB of memory and 26 s (under load) just to open it
    assert took < 3.0, f"took {took:.1f} s"
    assert [r.reason for r in found.rejected] == ["bad_archive"], found.rejected
    assert "extended header" in found.rejected[0].detail, found.rejected


def test_tar_with_a_million_members_stops_at_the_member_cap(tmp_path: Path) -> None:
    block = b"".join(tarfile.TarInfo(f"m{i}.mid").tobuf() for i in range(1000))
    member = gzip.compress(block)
    archive = tmp_path / "many.tar.gz"
    with archive.open("wb") as fh:  # 1,000 gzip members of 1,000 empty tar members each
        for _ in range(1000):
            fh.write(member)
    found, took = _read_inline(_capped_ws(tmp_path, max_members=500), archive)
    # before: 177 s and 870 MB; now 0.1 s on an idle machine
    assert took < 5.0, f"listing took {took:.1f} s: it read past the member cap"
    assert [r.reason for r in found.rejected] == ["too_many_members"], found.rejected
    assert "more than 500 members" in found.rejected[0].detail, found.rejected
    # Uncapped listing in the worker is stopped by the worker's own time limit.
    ws = Workspace(
        root=(tmp_path / "slow").resolve(),
        config=Config(
            ingest=IngestConfig(timeout_s=1000.0),
            archive=ArchiveConfig(max_members=10**7, max_seconds=1.0),
        ),
    )
    ws.root.mkdir()
    found = discover_mod.discover(ws, [archive])
    assert [(r.path, r.reason) for r in found.rejected] == [(str(archive), "timeout")], found


def test_zip_with_too_many_members_is_refused_before_its_directory_is_parsed(
    tmp_path: Path,
) -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(600):
            zf.writestr(f"m{i}.mid", b"")
    archive = tmp_path / "many.zip"
    archive.write_bytes(buf.getvalue())
    found, _ = _read_inline(_capped_ws(tmp_path, max_members=500), archive)
    assert [r.reason for r in found.rejected] == ["too_many_members"], found.rejected


def test_a_fifo_among_the_inputs_is_refused_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "blocks.mid")  # reading it would wait forever
    os.mkfifo(folder / "blocks.tar")
    found = discover_mod.discover(_capped_ws(tmp_path), [folder])
    assert sorted((Path(r.path).name, r.reason) for r in found.rejected) == [
        ("blocks.mid", "unsupported_format"),
        ("blocks.tar", "unsupported_format"),
    ]
