"""A sentinel Hugging Face token never appears in logs, CLI output, artifacts, Parquet metadata,
catalog rows (every table, dumped) or the dataset card, after publishing to a local target.

The token is handed over the two ways the project takes one: the HF_TOKEN environment variable
and the library's `token=` argument (the CLI has deliberately no --token option: a token on a
command line lands in shell history and process listings). Publishing goes to a local target
twice: a folder "Hub" (the HfApi client replaced by one that copies the upload into a folder,
and proves it received the token), and the real HfApi pointed at a local HTTP server
(HF_ENDPOINT) that records the Authorization header and answers 401, so the CLI's error path is
exercised with the real client.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq
import pytest

from musicdata.publish import publish
from musicdata.workspace import Workspace
from tests.musicdata.tokenized_ws import copy, shared

SENTINEL = "hf_SeNtInElToKeN0123456789abcdefSECRET"
SENTINEL_ARG = "hf_ArGuMeNtToKeN9876543210SECRET"


@pytest.fixture
def ws(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Workspace:
    return copy(shared(tmp_path_factory), tmp_path / "home")


class FolderHub:
    """An HfApi stand-in whose repo is a local folder: upload_folder copies the files there."""

    def __init__(self, token: str, target: Path) -> None:
        self.token, self.target = token, target

    def create_repo(self, repo_id: str, **kw: Any) -> None:
        (self.target / repo_id).mkdir(parents=True, exist_ok=True)

    def create_branch(self, repo_id: str, **kw: Any) -> None:
        del repo_id, kw

    def upload_folder(self, *, repo_id: str, folder_path: Path, **kw: Any) -> Any:
        shutil.copytree(folder_path, self.target / repo_id, dirs_exist_ok=True)
        return type("CommitInfo", (), {"oid": "0" * 40, "commit_url": "file://local"})


def _leaks(secret: str, *roots: Path) -> list[str]:
    """Every place under roots that holds the secret: file bytes, Parquet key-value metadata,
    and every row of every table and view of every DuckDB catalog found."""
    import duckdb

    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            if secret.encode() in path.read_bytes():
                found.append(str(path))
            if path.suffix == ".parquet":
                meta = pq.read_metadata(path).metadata or {}
                schema_meta = pq.read_schema(path).metadata or {}
                blob = b"".join(k + v for k, v in {**meta, **schema_meta}.items())
                if secret.encode() in blob:
                    found.append(f"{path} (Parquet metadata)")
            if path.name.endswith(".duckdb"):
                con = duckdb.connect(str(path), read_only=True)
                try:
                    tables = con.execute(
                        "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_catalog = current_database()"
                    ).fetchall()
                    for schema, table in tables:
                        rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                        if secret in repr(rows):
                            found.append(f"{path}: table {schema}.{table}")
                finally:
                    con.close()
    return found


def test_library_publish_to_a_folder_hub_leaks_no_token(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any, capsys: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    caplog.set_level(logging.DEBUG)
    hub = tmp_path / "hub"
    clients: list[FolderHub] = []

    def factory(token: str) -> FolderHub:
        clients.append(FolderHub(token, hub))
        return clients[-1]

    env_run = publish(
        ws, "org/env", tmp_path / "staged-env", license="cc0-1.0", api_factory=factory
    )
    arg_run = publish(
        ws,
        "org/arg",
        tmp_path / "staged-arg",
        license="cc0-1.0",
        token=SENTINEL_ARG,
        api_factory=factory,
    )
    assert [c.token for c in clients] == [SENTINEL, SENTINEL_ARG]  # the client got each one
    assert (hub / "org/env/README.md").is_file() and list((hub / "org/arg").rglob("*.parquet"))
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text + json.dumps([env_run, arg_run])
    roots = (ws.root, tmp_path / "staged-env", tmp_path / "staged-arg", hub)
    for secret in (SENTINEL, SENTINEL_ARG):
        assert secret not in text
        assert _leaks(secret, *roots) == []


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A local "Hub" that records each request's Authorization header and refuses it."""

    seen: ClassVar[list[str]] = []

    def _refuse(self) -> None:
        _Recorder.seen.append(self.headers.get("Authorization", ""))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args: Any) -> None:
        del args


@pytest.fixture
def local_hub() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _cli(ws: Workspace, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "musicdata"
    return subprocess.run(
        [str(exe), "--home", str(ws.root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_cli_publish_paths_leak_no_token(ws: Workspace, tmp_path: Path, local_hub: str) -> None:
    """Dry run, offline refusal and an upload refused by a local endpoint: the token is sent to
    the endpoint (proved by the recorder) and appears in no output, file or catalog row."""
    env = {**os.environ, "HF_TOKEN": SENTINEL, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for key in ("PREFECT_API_URL", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        env.pop(key, None)
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no saved login, no cache outside tmp_path
    outputs = []
    dry = _cli(ws, env, "publish", "--out", str(tmp_path / "dry"), "--json")
    assert dry.returncode == 0, dry.stderr[-2000:]
    outputs.append(dry)
    offline = _cli(
        ws,
        {**env, "HF_HUB_OFFLINE": "1"},
        "publish",
        "--repo-id",
        "org/name",
        "--out",
        str(tmp_path / "off"),
        "--license",
        "cc0-1.0",
    )
    assert offline.returncode != 0 and "HF_HUB_OFFLINE" in offline.stdout + offline.stderr
    outputs.append(offline)
    refused = _cli(
        ws,
        {**env, "HF_ENDPOINT": local_hub},
        "--verbose",
        "publish",
        "--repo-id",
        "org/name",
        "--out",
        str(tmp_path / "up"),
        "--license",
        "cc0-1.0",
    )
    assert refused.returncode != 0
    assert f"Bearer {SENTINEL}" in _Recorder.seen  # the token really went to the endpoint
    outputs.append(refused)
    for out in outputs:
        assert SENTINEL not in out.stdout + out.stderr
    assert _leaks(SENTINEL, ws.root, tmp_path) == []
