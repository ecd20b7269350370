"""Publish: a staged Hub folder loads offline with `datasets` for every config and split, the
card is complete, MidiTok loads the tokenizer folders, the catalog records the publication,
and the upload (through a fake HfApi: no network in tests) never leaks the token."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import tokenized_ws
import yaml
from typer.testing import CliRunner

from musicdata.cli import app
from musicdata.datasets import load_dataset
from musicdata.encodings import get_encoding
from musicdata.publish import PublishError, publish, stage, upload
from musicdata.workspace import Workspace

SENTINEL = "hf_SENTINEL_do_not_leak_0123456789abcdef"


@pytest.fixture
def ws(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Workspace:
    return tokenized_ws.copy(tokenized_ws.shared(tmp_path_factory), tmp_path / "home")


def _card(folder: Path) -> tuple[dict[str, Any], str]:
    text = (folder / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_staged_folder_loads_offline_for_every_config(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "staged"
    staged = stage(ws, out)
    assert [c.encoding for c in staged.configs] == ["cp", "remi"]
    stats = ws.catalog.query("SELECT encoding, split, pieces, tokens FROM token_stats").to_pylist()
    cache = tmp_path / "hf-cache"
    for cfg in staged.configs:
        hub = datasets.load_dataset(str(out), cfg.encoding, cache_dir=str(cache))
        ours = load_dataset(ws.root, cfg.encoding)
        want = {r["split"]: r for r in stats if r["encoding"] == cfg.encoding}
        assert set(hub) == set(want) == set(cfg.splits)
        for split, ds in hub.items():
            assert ds.num_rows == want[split]["pieces"] == cfg.splits[split]["rows"]
            assert sum(ds["length"]) == want[split]["tokens"]
            assert ds.features == ours[split].features
            assert ds["tokens"] == ours[split]["tokens"]
    # a decoded piece: REMI tokens back to MIDI through the staged tokenizer folder
    import miditok

    remi = miditok.REMI.from_pretrained(str(out / "tokenizers" / "remi"))
    row = datasets.load_dataset(str(out), "remi", split="train", cache_dir=str(cache))[0]
    score = remi.decode(row["tokens"])
    reference = get_encoding("remi").decode(np.asarray(row["tokens"]))
    assert score.note_num() == reference.note_num() > 0
    cp = miditok.CPWord.from_pretrained(str(out / "tokenizers" / "cp"))
    assert len(cp.vocab) == len(get_encoding("cp").sub_tokens)
    crow = datasets.load_dataset(str(out), "cp", split="train", cache_dir=str(cache))[0]
    ids = np.stack([crow["tokens"][n] for n in get_encoding("cp").sub_tokens], axis=-1)
    assert cp.decode(ids.tolist()).note_num() > 0  # one stream for all programs


def test_card_header_and_body_come_from_the_catalog(ws: Workspace, tmp_path: Path) -> None:
    staged = stage(ws, tmp_path / "staged", repo_id="org/name")
    header, body = _card(staged.out_dir)
    assert header["license"] == "other" and header["license_name"]
    assert header["size_categories"] == ["n<1K"]
    assert "text-generation" in header["task_categories"] and "music" in header["tags"]
    assert [c["config_name"] for c in header["configs"]] == ["cp", "remi"]
    assert header["configs"][0]["default"] is True
    for c in header["configs"]:
        splits = {d["split"]: d["path"] for d in c["data_files"]}
        assert splits == {s: f"data/{c['config_name']}/{s}-*.parquet" for s in splits}
    enc = ws.catalog.query("SELECT encoding, config_hash, vocab_size FROM encodings").to_pylist()
    tokens = ws.catalog.query(
        "SELECT encoding, sum(tokens) AS n FROM token_stats GROUP BY 1"
    ).to_pylist()
    for e in enc:
        assert f"| `{e['encoding']}` | `{e['config_hash']}` |" in body
        assert f"{e['vocab_size']:,}" in body
    for t in tokens:
        assert f"{int(t['n']):,}" in body
    for section in ("## Provenance and lineage", "## How to load", "## Citation", "## License"):
        assert section in body
    assert 'load_dataset("org/name", "remi")' in body
    assert "eprint={2002.00212}" in body and "eprint={2101.02402}" in body  # REMI, CP papers
    assert "REMI.from_pretrained" in body and "CPWord.from_pretrained" in body
    assert "unparseable" in body  # quarantine summary of the workspace


def test_catalog_records_the_publication_with_lineage(ws: Workspace, tmp_path: Path) -> None:
    staged = stage(ws, tmp_path / "staged", encodings=["remi"], splits=["train"])
    row = ws.catalog.query("SELECT * FROM publishes").to_pylist()[0]
    assert row["publish_id"] == staged.publish_id and row["repo_id"] is None
    assert row["encodings"] == ["remi"] and row["splits"] == ["train"]
    assert row["config_hashes"] == [staged.configs[0].config_hash]
    files = ws.catalog.query("SELECT path, sha256 FROM publish_files").to_pylist()
    assert {f["path"] for f in files} == {f["path"] for f in staged.files}
    assert any(f["path"].startswith("data/remi/train-") for f in files)
    from musicdata.fsutil import sha256_file

    assert all(sha256_file(staged.out_dir / f["path"]) == f["sha256"] for f in files)
    edges = ws.catalog.query(
        "SELECT src_id FROM lineage WHERE dst_id = ?", [f"publish:{staged.publish_id}"]
    ).column("src_id")
    shards = ws.catalog.query(
        "SELECT 'shard:' || shard_id AS s FROM shards WHERE encoding = 'remi' AND split = 'train'"
    ).column("s")
    assert sorted(edges.to_pylist()) == sorted(shards.to_pylist())
    assert not (staged.out_dir / "data" / "cp").exists()


def test_staging_is_deterministic_and_rechunks(ws: Workspace, tmp_path: Path) -> None:
    a = stage(ws, tmp_path / "a")
    b = stage(ws, tmp_path / "b")
    assert a.files == b.files and a.manifest_sha256 == b.manifest_sha256
    assert a.publish_id != b.publish_id  # two stagings, two records
    tiny = stage(ws, tmp_path / "tiny", encodings=["remi"], target_file_mb=0.001)
    train = tiny.configs[0].splits["train"]
    assert len(train["files"]) == train["rows"] > 1  # one row per file at this size
    ds = datasets.load_dataset(
        str(tiny.out_dir), "remi", split="train", cache_dir=str(tmp_path / "c")
    )
    assert ds["piece_id"] == sorted(ds["piece_id"]) and ds.num_rows == train["rows"]
    # re-staging replaces a staging folder, never a foreign one
    stage(ws, tmp_path / "a", encodings=["cp"])
    assert not (tmp_path / "a" / "data" / "remi").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a musicdata staging folder"):
        stage(ws, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


class FakeApi:
    """Records the calls `upload` makes to an HfApi (no network)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self, repo_id: str, **kw: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))

    def create_branch(self, repo_id: str, **kw: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw: Any) -> Any:
        self.calls.append(("upload_folder", kw))
        return type("CommitInfo", (), {"oid": "c0ffee" * 6 + "abcd", "commit_url": "https://x/c"})


def test_upload_calls_the_hub_and_never_leaks_the_token(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any, capsys: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    apis: list[FakeApi] = []

    def factory(token: str) -> FakeApi:
        apis.append(FakeApi(token))
        return apis[-1]

    caplog.set_level(logging.DEBUG)
    out = tmp_path / "staged"
    s = publish(
        ws, "org/name", out, private=True, revision="v1", license="cc0-1.0", api_factory=factory
    )
    (api,) = apis
    assert api.token == SENTINEL  # from HF_TOKEN, handed to the client only
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == {
        "repo_id": "org/name",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    up = api.calls[2][1]
    assert (up["repo_type"], up["revision"], Path(up["folder_path"])) == ("dataset", "v1", out)
    assert s["commit_sha"] == "c0ffee" * 6 + "abcd" and not s["dry_run"]
    row = ws.catalog.query("SELECT * FROM publishes").to_pylist()[0]
    assert (row["repo_id"], row["revision"], row["private"]) == ("org/name", "v1", True)
    assert row["commit_sha"] == s["commit_sha"] and row["uploaded_at"] is not None
    # the sentinel is nowhere: outputs, logs, staged files, Parquet metadata, catalog, card
    captured = capsys.readouterr()
    assert SENTINEL not in captured.out + captured.err + caplog.text + json.dumps(s)
    for path in [*out.rglob("*"), *ws.root.rglob("*")]:
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path


def test_offline_upload_fails_clearly_and_resumes(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    staged = stage(ws, tmp_path / "staged", license="cc0-1.0")
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE") as err:
        upload(staged, "org/name", private=False)  # the real HfApi path, stopped before network
    assert SENTINEL not in str(err.value)
    row = ws.catalog.query("SELECT uploaded_at, repo_id FROM publishes").to_pylist()[0]
    assert row == {"uploaded_at": None, "repo_id": None}
    # the same command again (re-staging the same bytes) continues the same record
    assert stage(ws, tmp_path / "staged", license="cc0-1.0").publish_id == staged.publish_id
    monkeypatch.delenv("HF_HUB_OFFLINE")
    done = upload(staged, "org/name", private=False, api_factory=FakeApi)
    assert done.publish_id == staged.publish_id  # the same record, now uploaded
    # the same folder to a second repo is a second record; a changed file stops the upload
    again = upload(staged, "org/other", private=False, api_factory=FakeApi)
    assert again.publish_id != staged.publish_id
    assert ws.catalog.query("SELECT count(*) AS n FROM publishes").to_pylist() == [{"n": 2}]
    (staged.out_dir / "README.md").write_text("edited")
    with pytest.raises(PublishError, match="changed or missing since it was staged"):
        upload(staged, "org/name", private=False, api_factory=FakeApi)


def test_unknown_license_needs_an_override(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    staged = stage(ws, tmp_path / "staged")
    with pytest.raises(PublishError, match="--allow-unknown-license"):
        upload(staged, "org/name", private=False, api_factory=FakeApi)
    done = upload(
        staged, "org/name", private=False, allow_unknown_license=True, api_factory=FakeApi
    )
    assert done.repo_id == "org/name"
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants

    # no saved login either (the path is read at import, so patch the constant)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-login"))
    with pytest.raises(PublishError, match="set HF_TOKEN or run `hf auth login`"):
        upload(staged, "org/name", private=False, allow_unknown_license=True)


def test_cli_dry_run_stages_only(ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "dry"
    args = ["--home", str(ws.root), "publish", "--out", str(out), "-e", "remi", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout.strip().splitlines()[-1])
    assert s["dry_run"] is True and list(s["configs"]) == ["remi"]
    assert (out / "README.md").exists() and (
        out / "tokenizers" / "remi" / "tokenizer.json"
    ).exists()
    bad = runner.invoke(app, ["--home", str(ws.root), "publish"])
    assert bad.exit_code == 2 and "--repo-id" in bad.output
