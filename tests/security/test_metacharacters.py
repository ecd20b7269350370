"""SQL metacharacters, quotes, HTML and newlines in file names, folder names, the workspace path
and MIDI metadata (track names, markers) are data, never code: ingest, tokenize, the catalog's
views, `catalog stats`/`sql` and the HTML report treat them as text, and every catalog table is
intact afterwards.

One workspace (its own path has a quote in it) is built once for the module; each test reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musicdata.schemas.config import Config, IngestConfig, TokenizeConfig
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.tokenize import tokenize_encodings
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES
from tests.musicdata.tokenized_ws import IN_PROCESS

HOSTILE = [
    "x'); DROP TABLE core.pieces; --",
    'quote"d; DELETE FROM core.sources',
    "percent%_under_score*glob?[ab]",
    "new\nline\r\nand\ttab",
    "<script>alert(1)</script>&amp;",
    "back\\slash $(touch pwned) `id`",
    "dollar $1 ? :name @x",
]


def _hostile_midi(src: Path, dest: Path, text: str, shift: int) -> None:
    """A real piece (transposed, so distinct) whose track names and markers carry `text`."""
    import symusic

    score = symusic.Score.from_file(str(src))
    score.shift_pitch(shift, inplace=True)
    for track in score.tracks:
        track.name = text
    score.markers.append(symusic.TextMeta(0, text))
    score.dump_midi(str(dest))


@pytest.fixture(scope="module")
def hostile_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path, list[Path]]:
    base = tmp_path_factory.mktemp("meta")
    corpus = base / 'in\'put; DROP TABLE x -- "dir"'
    corpus.mkdir()
    files = []
    for i, text in enumerate(HOSTILE):
        name = text.replace("/", "_") + ".mid"
        dest = corpus / name
        _hostile_midi(FIXTURES / "chorale_4_4.mid", dest, text, shift=i + 1)
        files.append(dest)
    shutil.copy(FIXTURES / "truncated.mid", corpus / "broken'; DROP TABLE core.quarantine; --.mid")
    root = base / 'o\'brien "home"; --'
    root.mkdir()
    cfg = Config(ingest=IngestConfig(workers=2, timeout_s=20), tokenize=TokenizeConfig(workers=2))
    ws = Workspace(root=root.resolve(), config=cfg)
    ingest_paths(ws, [corpus], run_id="ingest-'; DROP TABLE core.runs; --", transcribe=False)
    tokenize_encodings(
        ws, ["remi", "nb-pf"], run_ids={"remi": "t'1", "nb-pf": 't"2'}, steps=IN_PROCESS
    )
    return ws, corpus, files


def test_every_hostile_name_is_ingested_and_tokenized(hostile_ws: tuple) -> None:
    ws, _, files = hostile_ws
    rows = ws.catalog.query("SELECT path, piece_id FROM sources ORDER BY path").to_pylist()
    paths = {r["path"] for r in rows}
    for f in files:  # each name is stored exactly, byte for byte, with its piece
        assert str(f) in paths, f
    n_pieces = ws.catalog.query("SELECT count(*) AS n FROM pieces").to_pylist()[0]["n"]
    assert n_pieces == len(HOSTILE)
    (q,) = ws.catalog.query("SELECT path, reason FROM quarantine").to_pylist()
    assert q["path"].endswith("broken'; DROP TABLE core.quarantine; --.mid")
    for enc in ("remi", "nb-pf"):
        got = ws.catalog.query(
            "SELECT sum(pieces) AS n FROM token_stats WHERE encoding = ?", [enc]
        ).to_pylist()
        assert got[0]["n"] == len(HOSTILE), (enc, got)


def test_catalog_tables_and_views_are_intact(hostile_ws: tuple) -> None:
    ws, _, _ = hostile_ws
    with ws.catalog.read() as con:
        tables = [
            (s, t)
            for s, t in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        ]
        for schema, table in tables:  # every table and view still reads
            con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()
        names = {t for _, t in tables}
        for view in ("sources", "pieces", "quarantine", "token_stats", "runs", "shards"):
            assert view in names, view
        runs = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
    assert "ingest-'; DROP TABLE core.runs; --" in runs and 't"2' in runs


def test_shard_views_work_from_a_quoted_workspace_path(hostile_ws: tuple) -> None:
    """The in-place views read Parquet under the workspace path, which holds a quote here."""
    ws, _, _ = hostile_ws
    for view in ("token_frequencies", "token_length_stats", "piece_lengths"):
        n = ws.catalog.query(f"SELECT count(*) AS n FROM {view}").to_pylist()[0]["n"]
        assert n > 0, view


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "musicdata"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [str(exe), "--home", str(ws.root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_cli_stats_sql_and_report_treat_names_as_text(hostile_ws: tuple, tmp_path: Path) -> None:
    ws, _, files = hostile_ws
    stats = _cli(ws, "catalog", "stats", "--json")
    assert stats.returncode == 0, stats.stderr[-2000:]
    json.loads(stats.stdout.strip().splitlines()[-1])
    q = _cli(ws, "catalog", "sql", "SELECT path FROM sources ORDER BY path", "--json")
    assert q.returncode == 0, q.stderr[-2000:]
    assert all(str(f) in q.stdout or json.dumps(str(f))[1:-1] in q.stdout for f in files)
    out = tmp_path / "report"
    rep = _cli(ws, "report", "--out", str(out), "--no-token-names", "--json")
    assert rep.returncode == 0, rep.stderr[-2000:]
    html = "\n".join(p.read_text() for p in out.rglob("*.html"))
    assert "<script>alert(1)</script>" not in html  # escaped wherever a name is shown
    n = ws.catalog.query("SELECT count(*) AS n FROM pieces").to_pylist()[0]["n"]
    assert n == len(HOSTILE)  # nothing the CLI did changed the catalog
