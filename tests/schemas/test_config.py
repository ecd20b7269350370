from pathlib import Path

import pytest

from musicdata.schemas.config import Config, IngestConfig, config_hash, load_config


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.toml") == Config()


def test_toml_overrides_and_frozen(tmp_path: Path) -> None:
    path = tmp_path / "musicdata.toml"
    path.write_text(
        "[ingest]\ntimeout_s = 5\n[split]\ntest = 0.1\n[encodings.remi]\nnum_velocities = 16\n"
    )
    cfg = load_config(path)
    assert cfg.ingest.timeout_s == 5
    assert cfg.split.test == 0.1
    assert cfg.encodings == {"remi": {"num_velocities": 16}}
    with pytest.raises(AttributeError):
        cfg.ingest.timeout_s = 1  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "musicdata.toml"
    path.write_text("[ingest]\ntimeout = 5\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['timeout'\] in \[ingest\]"):
        load_config(path)


def test_bad_split_ratios_rejected() -> None:
    with pytest.raises(ValueError, match="split"):
        Config.from_dict({"split": {"validation": 0.6, "test": 0.5}})


def test_hash_is_stable_and_sensitive() -> None:
    a = config_hash(IngestConfig(), {"version": 1})
    assert a == config_hash(IngestConfig(), {"version": 1})
    assert a != config_hash(IngestConfig(timeout_s=1), {"version": 1})
    assert a != config_hash(IngestConfig(), {"version": 2})
