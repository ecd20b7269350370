"""Archives are read safely: no path escapes, no links, bombs stop at their caps."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from musicdata.ingest.discover import _unsafe_name
from musicdata.stages.ingest import ingest_paths
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES, make_workspace

GOOD = (FIXTURES / "folk_6_8.mid").read_bytes()


def _quarantine(ws: Workspace) -> dict[str, str]:
    rows = ws.catalog.query("SELECT path, stage, reason FROM quarantine").to_pylist()
    return {r["path"].split("!", 1)[1]: r["reason"] for r in rows if "!" in r["path"]}


def test_zip_with_hostile_members(ws: Workspace, tmp_path: Path) -> None:
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("songs/good.mid", GOOD)
        zf.writestr("songs/chorale.mid", (FIXTURES / "chorale_4_4.mid").read_bytes())
        zf.writestr("../escape.mid", GOOD)
        zf.writestr("/abs/olute.mid", GOOD)
        zf.writestr("songs/broken.mid", b"MThd garbage")
        zf.writestr("inner.zip", b"PK")
        zf.writestr("notes.txt", "ignored")
        link = zipfile.ZipInfo("link.mid")
        link.external_attr = 0o120777 << 16  # a symbolic link entry
        zf.writestr(link, "/etc/passwd")
    s = ingest_paths(ws, [archive], run_id="r1")
    assert s.ok == 2 and s.ignored == 1
    q = _quarantine(ws)
    assert q == {
        "../escape.mid": "unsafe_member",
        "/abs/olute.mid": "unsafe_member",
        "link.mid": "unsafe_member",
        "inner.zip": "nested_archive",
        "songs/broken.mid": "unparseable",
    }
    assert not (tmp_path / "escape.mid").exists() and not Path("/abs/olute.mid").exists()
    paths = ws.catalog.query("SELECT path FROM sources WHERE status = 'ok' ORDER BY path")
    assert [p.split("!")[1] for p in paths.column("path").to_pylist()] == [
        "songs/chorale.mid",
        "songs/good.mid",
    ]
    again = ingest_paths(ws, [archive], run_id="r2")
    assert again.ok == 0 and again.quarantined == 0 and again.skipped == 7


def test_zip_bomb_stops_at_caps(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "h")
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.mid", b"MThd" + b"\0" * (20 * 1024 * 1024))  # ratio ~1000:1
        zf.writestr("ok.mid", GOOD)
    s = ingest_paths(ws, [archive], run_id="r1")
    assert _quarantine(ws) == {"bomb.mid": "compression_bomb"}
    assert s.ok == 1


def test_tar_with_links_and_escapes(ws: Workspace, tmp_path: Path) -> None:
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in [("a/good.mid", GOOD), ("a/../../up.mid", GOOD)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        sym = tarfile.TarInfo("a/sym.mid")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(sym)
        hard = tarfile.TarInfo("a/hard.mid")
        hard.type, hard.linkname = tarfile.LNKTYPE, "a/good.mid"
        tf.addfile(hard)
    s = ingest_paths(ws, [archive], run_id="r1")
    assert s.ok == 1
    assert _quarantine(ws) == {
        "a/../../up.mid": "unsafe_member",
        "a/sym.mid": "unsafe_member",
        "a/hard.mid": "unsafe_member",
    }


def test_corrupt_archive_is_quarantined(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    s = ingest_paths(ws, [bad], run_id="r1")
    rows = ws.catalog.query("SELECT path, reason FROM quarantine").to_pylist()
    assert s.quarantined == 1 and rows == [{"path": str(bad), "reason": "bad_archive"}]


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "x.mid"]), min_size=1, max_size=6))
def test_member_names_with_dotdot_are_always_refused(parts: list[str]) -> None:
    name = "/".join(parts)
    assert (_unsafe_name(name) is not None) == (".." in parts)
    assert _unsafe_name("/" + name) is not None
