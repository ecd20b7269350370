"""Data-safety regressions in the stages (issue 11): tokenize and codec verify their encoding
config after reconcile, two writer ids never collide, adopted shards get their fidelity rows, a
full disk in any stage stops the run and quarantines nothing, the same bytes under an audio and a
MIDI name get two outcomes, and reconcile clears a killed run's debris."""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musicdata.catalog.verify import ShardsDisagree, verify
from musicdata.cli import app
from musicdata.fsutil import WorkspaceWriteError
from musicdata.isolate import IsolatedPool
from musicdata.stages.ingest import ingest_paths
from musicdata.stages.kit import environment_failure
from musicdata.stages.tokenize import Steps, tokenize_batch, tokenize_encoding
from musicdata.store import writer as store_writer
from musicdata.workspace import Workspace
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["chorale_4_4.mid", "folk_6_8.mid", "waltz_3_4.mid", "cut_time_2_2.mid"]


def _ingest(ws: Workspace, tmp_path: Path, names: list[str], tag: str) -> None:
    folder = tmp_path / f"in-{tag}"
    folder.mkdir()
    for name in names:
        shutil.copy(FIXTURES / name, folder / name)
    ingest_paths(ws, [folder], run_id=f"ingest-{tag}", transcribe=False)


def _rows(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    return ws.catalog.query(sql).to_pylist()


def _shard_files(ws: Workspace) -> list[Path]:
    return sorted(ws.shards_dir.rglob("*.parquet"))


def _fidelity(ws: Workspace) -> list[dict[str, Any]]:
    rows = _rows(ws, "SELECT * FROM core.fidelity ORDER BY piece_id")
    return [{k: v for k, v in r.items() if k not in ("run_id", "created_at")} for r in rows]


@pytest.fixture
def tokenized(ws: Workspace, tmp_path: Path) -> Workspace:
    _ingest(ws, tmp_path, GOOD, "a")
    tokenize_encoding(ws, "remi", run_id="tok-1")
    assert verify(ws) == [], verify(ws)
    return ws


# ---- item 1: verify after reconcile; two writer ids -------------------------------------------


def test_two_writer_ids_write_one_encoding_without_collision(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSICDATA_WRITER", "rank0")
    _ingest(ws, tmp_path, GOOD[:2], "a")
    tokenize_encoding(ws, "remi", run_id="tok-a")
    monkeypatch.setenv("MUSICDATA_WRITER", "rank1")
    _ingest(ws, tmp_path, GOOD[2:], "b")
    tokenize_encoding(ws, "remi", run_id="tok-b")
    names = sorted({p.name for p in _shard_files(ws)})
    assert {n.split("-")[1] for n in names} == {"rank0", "rank1"}, names
    assert verify(ws) == [], verify(ws)
    total = _rows(ws, "SELECT count(*) AS n, count(DISTINCT piece_id) AS d FROM tokens.remi")[0]
    stats = _rows(ws, "SELECT sum(pieces) AS p FROM token_stats WHERE encoding = 'remi'")[0]
    assert total["n"] == total["d"] == stats["p"] == len(GOOD), (total, stats)


def test_tokenize_refuses_to_write_on_a_replaced_shard(
    tokenized: Workspace, tmp_path: Path
) -> None:
    ws = tokenized
    victim = _shard_files(ws)[0]
    table = pq.read_table(victim)
    pq.write_table(table.slice(0, 1), victim)  # replaced behind the catalog's back
    rel = str(victim.relative_to(ws.root))
    _ingest(ws, tmp_path, ["multitrack_tempo_change.mid"], "b")
    before = _shard_files(ws)
    with pytest.raises(
        ShardsDisagree, match=rf"nothing was written: hash_mismatch {re.escape(rel)}"
    ):
        tokenize_encoding(ws, "remi", run_id="tok-2")
    assert _shard_files(ws) == before, "a stage wrote shards on top of a mismatch"
    status = _rows(ws, "SELECT status FROM runs WHERE run_id = 'tok-2'")
    assert status == [{"status": "failed"}], status
    res = CliRunner().invoke(app, ["--home", str(ws.root), "tokenize", "-e", "remi", "--json"])
    assert res.exit_code == 5, res.output
    out = json.loads(res.stdout)
    assert out["error"] == "catalog_mismatch" and rel in out["message"], out


def test_verify_can_be_narrowed_to_one_encoding_config(tokenized: Workspace) -> None:
    ws = tokenized
    stray = ws.shards_dir / "cp" / "feedbeef" / "train" / "part-w0-00000.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not ours")
    chash = _rows(ws, "SELECT config_hash FROM shards LIMIT 1")[0]["config_hash"]
    assert verify(ws, "remi", chash) == []
    assert verify(ws, "remi") == []
    assert [p.kind for p in verify(ws, "cp")] == ["orphan_file"]
    assert [p.kind for p in verify(ws)] == ["orphan_file"]


# ---- item 3: fidelity rows for adopted shards -------------------------------------------------


def test_kill_between_rename_and_commit_keeps_fidelity_rows(tokenized: Workspace) -> None:
    ws = tokenized
    clean = _fidelity(ws)
    assert len(clean) == len(GOOD), clean
    shard = _rows(ws, "SELECT shard_id, path FROM shards ORDER BY path LIMIT 1")[0]
    ids = [
        r["piece_id"]
        for r in _rows(
            ws, f"SELECT piece_id FROM core.shard_pieces WHERE shard_id = '{shard['shard_id']}'"
        )
    ]
    # The crash: the file was renamed into place, the transaction recording it never committed.
    with ws.catalog.write() as con:
        con.register("_gone", pa.table({"piece_id": ids}))
        con.execute("DELETE FROM core.fidelity WHERE piece_id IN (SELECT piece_id FROM _gone)")
        con.execute("DELETE FROM core.stage_results WHERE output_id = ?", [shard["shard_id"]])
        con.execute("DELETE FROM core.shard_pieces WHERE shard_id = ?", [shard["shard_id"]])
        con.execute(
            "DELETE FROM core.lineage_edges WHERE dst_id = ?", [f"shard:{shard['shard_id']}"]
        )
        con.execute("DELETE FROM core.shards WHERE shard_id = ?", [shard["shard_id"]])
        con.unregister("_gone")
    before = _shard_files(ws)
    s = tokenize_encoding(ws, "remi", run_id="tok-after-crash")
    assert (s.shards_adopted, s.tokenized, s.shards_written) == (1, 0, 0), s.to_dict()
    assert s.fidelity_measured == len(ids), s.to_dict()
    assert _shard_files(ws) == before, "measuring fidelity wrote a shard"
    assert _fidelity(ws) == clean, "an adopted shard's pieces lost their fidelity rows"
    assert verify(ws) == []
    again = tokenize_encoding(ws, "remi", run_id="tok-again")
    assert again.fidelity_measured == 0, again.to_dict()


# ---- item 5: environment errors stop every stage and quarantine nothing -----------------------


def _full_disk(job: Any) -> None:
    """A worker whose write into the workspace meets a full disk (runs in an isolated worker)."""
    raise OSError(errno.ENOSPC, "No space left on device", "objects/ab/abcdef")


def _full_disk_step(ident: Any) -> Any:
    def step(pool: IsolatedPool, jobs: list[Any]) -> list[dict[str, Any]]:
        with IsolatedPool(_full_disk, workers=1, timeout_s=60) as full:
            return full.map_records(jobs, lambda i: ident(jobs[i]))

    return step


def test_full_disk_in_tokenize_workers_quarantines_nothing(ws: Workspace, tmp_path: Path) -> None:
    _ingest(ws, tmp_path, GOOD[:2], "a")
    step = _full_disk_step(lambda j: {"piece_id": j.piece_id, "encoding": j.encoding})
    with pytest.raises(WorkspaceWriteError, match=r"No space left on device.*nothing was quar"):
        tokenize_encoding(ws, "remi", run_id="full", steps=Steps(tokenize=step))
    assert _rows(ws, "SELECT * FROM core.quarantine") == []
    assert _rows(ws, "SELECT * FROM core.stage_results WHERE stage LIKE 'tokenize%'") == []
    assert _rows(ws, "SELECT status FROM runs WHERE run_id = 'full'") == [{"status": "failed"}]
    s = tokenize_encoding(ws, "remi", run_id="freed", steps=Steps(tokenize=tokenize_batch))
    assert (s.tokenized, s.quarantined) == (2, 0), s.to_dict()


def test_full_disk_writing_a_shard_stops_tokenize(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(ws, tmp_path, GOOD[:2], "a")

    def full(table: Any, path: Path, cfg: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store_writer, "write_parquet", full)
    with pytest.raises(WorkspaceWriteError, match="No space left on device"):
        tokenize_encoding(ws, "remi", run_id="full")
    assert _rows(ws, "SELECT * FROM core.quarantine") == []
    assert _rows(ws, "SELECT status FROM runs WHERE run_id = 'full'") == [{"status": "failed"}]
    res = CliRunner().invoke(app, ["--home", str(ws.root), "tokenize", "-e", "remi", "--json"])
    assert res.exit_code == 4, res.output  # one message, not a traceback
    out = json.loads(res.stdout)
    assert out["error"] == "environment" and "free disk space" in out["message"], out


def test_full_disk_in_ingest_parse_workers_quarantines_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    from musicdata.stages.ingest import Steps as ISteps

    def parse(ws: Workspace, shas: list[str]) -> list[dict[str, Any]]:
        with IsolatedPool(_full_disk, workers=1, timeout_s=60) as full:
            return full.map_records(shas, lambda i: {"sha256": shas[i]})

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(FIXTURES / "waltz_3_4.mid", folder / "waltz.mid")
    with pytest.raises(WorkspaceWriteError, match="No space left on device"):
        ingest_paths(ws, [folder], run_id="full", steps=ISteps(parse=parse), transcribe=False)
    assert _rows(ws, "SELECT * FROM core.quarantine") == []
    assert _rows(ws, "SELECT * FROM sources") == []
    s = ingest_paths(ws, [folder], run_id="freed", transcribe=False)
    assert (s.ok, s.quarantined) == (1, 0), s.to_dict()


def test_full_disk_in_transcribe_recording_step_quarantines_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    from musicdata.stages.transcribe import Steps as TSteps
    from musicdata.stages.transcribe import transcribe_pending
    from musicdata.testing.audio import render_midi

    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "waltz.wav", render_midi(FIXTURES / "waltz_3_4.mid")[:22050], 22050)
    s = ingest_paths(ws, [folder], run_id="i", transcribe=False)
    assert s.recordings == 1, s.to_dict()
    step = _full_disk_step(
        lambda j: {"sha256": j.sha256, "n_notes": 0, "n_chunks": 0, "audio_s": 0.0, "seconds": 0.0}
    )
    with pytest.raises(WorkspaceWriteError, match="No space left on device"):
        transcribe_pending(ws, run_id="t", steps=TSteps(transcribe=step))
    assert _rows(ws, "SELECT * FROM core.quarantine") == []
    assert _rows(ws, "SELECT * FROM core.transcriptions") == []
    assert _rows(ws, "SELECT status FROM runs WHERE run_id = 't'") == [{"status": "failed"}]


def test_environment_failures_are_told_apart_from_input_failures(tmp_path: Path) -> None:
    root = tmp_path / "home"
    assert environment_failure("OSError: [Errno 28] No space left on device", root)
    assert environment_failure("OSError: [Errno 5] Input/output error: '/x/in.mid'", root)
    assert environment_failure(f"PermissionError: [Errno 13] Permission denied: '{root}/a'", root)
    assert environment_failure("ArrowIOError: No space left on device", root)
    assert not environment_failure("PermissionError: [Errno 13] Permission denied: '/x'", root)
    assert not environment_failure("KeyError: 'TimeSig_2/2'", root)
    assert not environment_failure("no result within 30 s", root)


# ---- item 7: the same bytes under an audio name and a MIDI name -------------------------------


def test_same_bytes_as_audio_and_midi_get_an_outcome_each(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "twins"
    folder.mkdir()
    shutil.copy(FIXTURES / "waltz_3_4.mid", folder / "a_waltz.mid")
    shutil.copy(FIXTURES / "waltz_3_4.mid", folder / "b_waltz.wav")  # MIDI bytes, audio name
    sf.write(folder / "c_tone.wav", np.sin(np.arange(22050) * 0.05).astype(np.float32), 22050)
    shutil.copy(folder / "c_tone.wav", folder / "d_tone.mid")  # audio bytes, MIDI name
    (folder / "e_empty.mid").write_bytes(b"")
    (folder / "f_empty.wav").write_bytes(b"")
    s = ingest_paths(ws, [folder], run_id="i", transcribe=False)
    q = {
        Path(r["path"]).name: (r["stage"], r["reason"])
        for r in _rows(ws, "SELECT path, stage, reason FROM core.quarantine")
    }
    assert set(q) == {"b_waltz.wav", "d_tone.mid", "e_empty.mid", "f_empty.wav"}, q
    assert q["b_waltz.wav"][0] == q["f_empty.wav"][0] == "ingest:audio", q
    assert q["d_tone.mid"][0] == q["e_empty.mid"][0] == "ingest", q
    assert all(reason for _, reason in q.values()), q
    recs = _rows(ws, "SELECT sha256 FROM core.recordings")
    pieces = _rows(ws, "SELECT sha256 FROM core.pieces")
    assert (len(recs), len(pieces)) == (1, 1), (recs, pieces)
    assert (s.ok, s.quarantined, s.duplicates) == (2, 4, 0), s.to_dict()


# ---- item 8: debris of a killed run -----------------------------------------------------------

_KILLED = textwrap.dedent(
    """
    import sys, time
    from musicdata.stages.kit import stage_run
    from musicdata.workspace import Workspace
    ws = Workspace.open(sys.argv[1])
    with stage_run(ws, "tokenize:remi", "killed-run"):
        print("running", flush=True)
        time.sleep(60)
    """
)


def test_reconcile_clears_a_killed_runs_debris(tokenized: Workspace) -> None:
    ws = tokenized
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(ws.root)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    base = next(ws.shards_dir.glob("remi/*"))
    torn = base / ".tokenizer.json.5e6f7a8b.tmp.d"  # _save_config's folder, killed mid-write
    torn.mkdir()
    (torn / "tokenizer.json").write_text("{")
    split_tmp = base / "train" / ".part-w0-00009.parquet.1a2b3c4d.tmp"
    split_tmp.write_bytes(b"half")
    (base / "train" / ".x.tmp.d").mkdir()
    (base / ".tokenizer.json.9f8e7d6c.tmp").write_text("{")
    assert {p.kind for p in verify(ws)} == {"temp_leftover"}
    tokenize_encoding(ws, "remi", run_id="tok-next")
    assert not torn.exists() and not split_tmp.exists(), "reconcile left temp debris"
    assert verify(ws) == [], verify(ws)
    runs = {r["run_id"]: r["status"] for r in _rows(ws, "SELECT run_id, status FROM runs")}
    assert runs["killed-run"] == "interrupted", runs
    assert runs["tok-next"] == "completed", runs
