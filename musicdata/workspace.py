"""The workspace: one folder holding the catalog, the content-addressed inputs and all shards."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from musicdata.catalog import Catalog
from schemas.config import CONFIG_FILE_NAME, Config, load_config

DEFAULT_HOME = "musicdata-home"
HOME_ENV = "MUSICDATA_HOME"


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: Config

    @classmethod
    def open(cls, home: Path | str | None = None, config_path: Path | None = None) -> Workspace:
        """Resolve the workspace: --home, else $MUSICDATA_HOME, else ./musicdata-home."""
        root = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        if root.exists() and not root.is_dir():
            msg = f"workspace {root} exists and is not a folder; pass another --home"
            raise NotADirectoryError(msg)
        root.mkdir(parents=True, exist_ok=True)
        config = load_config(config_path or root / CONFIG_FILE_NAME)
        return cls(root=root, config=config)

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.catalog_path)

    @property
    def objects_dir(self) -> Path:
        """Every ingested input's bytes, by sha256, so later stages never depend on user paths."""
        return self.root / "objects"

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    @property
    def tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def blob_relpath(self, sha256: str) -> str:
        return f"objects/{sha256[:2]}/{sha256}"

    def abspath(self, relpath: str) -> Path:
        return self.root / relpath
