"""Ingest from datasets whose rows hold MIDI bytes: a `save_to_disk` folder and a local folder in
the Hub's layout, through the same validation and quarantine, with the row as the source."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musicdata.ingest.hub import is_hub_source, media_column, parse_source
from musicdata.stages.ingest import ingest_paths
from musicdata.workspace import Workspace
from tests.conftest import BROKEN, FIXTURES, REAL

NAMES = [*REAL, *BROKEN]


def _rows() -> dict[str, list]:
    return {
        "title": NAMES,
        "midi": [(FIXTURES / n).read_bytes() for n in NAMES],
    }


def test_save_to_disk_folder_ingests_like_files(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict(_rows()).save_to_disk(str(folder))
    assert is_hub_source(folder) and not is_hub_source(FIXTURES)
    s = ingest_paths(ws, [folder], run_id="hub-1", transcribe=False)
    assert (s.ok, s.quarantined) == (len(REAL), len(BROKEN))
    assert dict(s.reasons) == {r: list(BROKEN.values()).count(r) for r in set(BROKEN.values())}
    rows = ws.catalog.query("SELECT path, status FROM sources ORDER BY path").to_pylist()
    rev = parse_source(folder).revision
    expected = {f"hf://{folder.resolve()}@{rev}/default/train#{i}" for i in range(len(NAMES))}
    assert {r["path"] for r in rows} == expected
    bad = {f"hf://{folder.resolve()}@{rev}/default/train#{NAMES.index(n)}" for n in BROKEN}
    assert {r["path"] for r in rows if r["status"] == "quarantined"} == bad
    q = ws.catalog.query("SELECT path, reason FROM quarantine").to_pylist()
    assert {r["path"] for r in q} == bad
    again = ingest_paths(ws, [folder], run_id="hub-2", transcribe=False)
    assert (again.ok, again.quarantined, again.skipped) == (0, 0, len(NAMES))


def test_hub_layout_folder_with_config(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    table = pa.table({"name": REAL, "file": [(FIXTURES / n).read_bytes() for n in REAL]})
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: songs\n  data_files:\n  - split: train\n"
        "    path: data/train-*.parquet\n---\n# songs\n"
    )
    src = parse_source(f"{folder}:songs")
    assert (src.config, src.folder) == ("songs", folder.resolve())
    s = ingest_paths(ws, [f"{folder}:songs"], run_id="hub-1", transcribe=False)
    assert (s.ok, s.quarantined) == (len(REAL), 0)
    paths = ws.catalog.query("SELECT path FROM sources").column("path").to_pylist()
    assert all(p.startswith(f"hf://{folder.resolve()}@{src.revision}/songs/train#") for p in paths)
    # the pieces are ordinary pieces: same split rule, lineage from their file node
    n = ws.catalog.query(
        "SELECT count(*) AS n FROM lineage WHERE src_id LIKE 'file:%' AND dst_id LIKE 'piece:%'"
    ).to_pylist()[0]["n"]
    assert n == len(REAL)


def test_media_column_must_be_unambiguous() -> None:
    feats = datasets.Features(
        {
            "a": datasets.Value("binary"),
            "b": datasets.Value("binary"),
            "t": datasets.Value("string"),
        }
    )
    with pytest.raises(ValueError, match="cannot tell which column"):
        media_column(feats)
    assert media_column(feats, "b") == "b"
    named = datasets.Features(
        {"midi_bytes": datasets.Value("binary"), "x": datasets.Value("binary")}
    )
    assert media_column(named) == "midi_bytes"
    with pytest.raises(ValueError, match="expected hf://ORG/NAME"):
        parse_source("hf://not a repo")


def test_a_token_dataset_is_quarantined_and_the_rest_goes_on(ws: Workspace, tmp_path: Path) -> None:
    """A dataset with no MIDI/audio column (e.g. one `musicdata publish` wrote: token ids) is the
    input's fault: quarantined with the reason, not a traceback, and the other inputs ingest."""
    tokens = tmp_path / "tokens"
    datasets.Dataset.from_dict(
        {"piece_id": ["a", "b"], "tokens": [[1, 2, 3], [4, 5]]}
    ).save_to_disk(str(tokens))
    s = ingest_paths(ws, [tokens, FIXTURES / REAL[0]], run_id="hub-tok", transcribe=False)
    assert (s.ok, s.quarantined) == (1, 1), s.to_dict()
    (q,) = ws.catalog.query("SELECT path, reason, detail FROM quarantine").to_pylist()
    assert q["reason"] == "unsupported_format" and Path(q["path"]) == tokens, q
    assert "not a MIDI/audio dataset" in q["detail"] and "tokens" in q["detail"], q
