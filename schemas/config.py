"""Configuration: one TOML file loaded once into frozen dataclasses.

Every stage hashes its own section (plus its code version) into lineage, so a changed setting
re-runs exactly the stage it affects. Unknown keys are an error: a typo must not silently fall back
to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE_NAME = "musicdata.toml"


@dataclass(frozen=True)
class IngestConfig:
    """Limits for parsing untrusted files; every cap turns a blow-up into a quarantine reason."""

    timeout_s: float = 30.0  # per file, in the isolated worker
    memory_limit_mb: int = 2048  # address-space limit of each worker process
    workers: int = 0  # 0: one per CPU core
    batch_size: int = 256  # files per Prefect task (Prefect costs ~30 ms per task call)
    max_file_mb: float = 64.0
    max_notes: int = 500_000
    max_duration_s: float = 3 * 3600.0
    max_tracks: int = 512
    # Onset/duration grid (ticks per quarter) of the note-content hash used for near-duplicates.
    content_hash_tpq: int = 48
    # Note normalization applied before tokenizing (musicdata.encodings.normalize): "none" keeps
    # the notes as written; "trim-overlaps" drops same-pitch duplicates, ends a note re-struck
    # before its note-off at the new onset and caps durations at max_duration_quarters. Ingest
    # records per piece what it would change (pieces.overlapping_notes, long_notes, ...); the
    # setting enters every encoding's config hash, so shards with and without it never mix.
    normalize: str = "none"
    max_duration_quarters: float = 32.0

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            msg = (
                f"ingest: normalize = {self.normalize!r} is not one of {list(NORMALIZE_MODES)}; "
                "fix [ingest] in musicdata.toml"
            )
            raise ValueError(msg)
        if not self.max_duration_quarters > 0:
            msg = (
                f"ingest: max_duration_quarters = {self.max_duration_quarters} must be > 0; "
                "fix [ingest] in musicdata.toml"
            )
            raise ValueError(msg)


NORMALIZE_MODES = ("none", "trim-overlaps")


@dataclass(frozen=True)
class ArchiveConfig:
    """Caps for zip/tar extraction, against bombs and path tricks."""

    max_members: int = 100_000
    max_member_mb: float = 64.0
    max_total_mb: float = 4096.0
    max_ratio: float = 200.0  # uncompressed / compressed bytes, per zip member
    max_seconds: float = 600.0  # reading one archive (list + copy), in an isolated worker


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic split by note-content hash, so the same music never lands in two splits."""

    seed: str = "musicdata-v1"
    validation: float = 0.05
    test: float = 0.05

    def __post_init__(self) -> None:
        if not (self.validation >= 0 and self.test >= 0 and self.validation + self.test < 1):
            msg = (
                f"split: validation={self.validation} and test={self.test} must be >= 0 and sum "
                "to < 1; fix [split] in musicdata.toml"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class ShardConfig:
    """Parquet layout: rows per file and per row group (sized for scanning, not for one lookup)."""

    rows_per_shard: int = 20_000
    row_group_rows: int = 1_024
    compression: str = "zstd"
    compression_level: int = 6
    # Where shard files live: "" = <workspace>/shards; a URL (s3://bucket/prefix, gs://...,
    # memory://...) puts them on object storage through fsspec. The catalog keeps paths relative
    # (shards/<encoding>/...), so moving the shards changes only this key.
    root: str = ""


@dataclass(frozen=True)
class TokenizeConfig:
    workers: int = 0  # 0: one per CPU core
    batch_size: int = 256  # pieces per Prefect task
    timeout_s: float = 120.0  # per piece
    memory_limit_mb: int = 4096
    include_near_duplicates: bool = False  # near-duplicates add no new music to a training set
    fidelity: bool = True  # decode every piece again and record round-trip fidelity


@dataclass(frozen=True)
class AudioConfig:
    """Limits for decoding untrusted audio (WAV, FLAC, OGG, MP3) in isolated workers."""

    timeout_s: float = 120.0  # per file, in the isolated worker
    memory_limit_mb: int = 2048  # decoding streams blocks, so memory does not grow with length
    workers: int = 0  # 0: one per CPU core
    batch_size: int = 64  # files per Prefect task
    max_file_mb: float = 2048.0  # audio is large; MIDI keeps ingest.max_file_mb
    min_duration_s: float = 0.1  # shorter recordings hold no music (a one-sample file)
    max_duration_s: float = 3 * 3600.0
    silence_dbfs: float = -80.0  # RMS below this: silent (transcribes to "no notes", not an error)


@dataclass(frozen=True)
class TranscribeConfig:
    """basic-pitch transcription; every field but the execution limits is hashed into lineage."""

    enabled: bool = True  # `musicdata ingest --no-transcribe` turns it off for one run
    model_path: str = ""  # "" = basic-pitch's bundled ICASSP 2022 model
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    minimum_note_length_ms: float = 127.70
    minimum_frequency_hz: float = 0.0  # 0 = no lower limit
    maximum_frequency_hz: float = 0.0  # 0 = no upper limit
    melodia_trick: bool = True
    multiple_pitch_bends: bool = False
    midi_tempo: float = 120.0
    chunk_s: float = 30.0  # long recordings go in chunks (basic-pitch aborts on long files)
    context_s: float = 1.0  # extra audio on each side of a chunk; notes are kept by onset
    batch_windows: int = 32  # model windows (2 s each) per inference call
    # One worker using every core measured fastest on 2 cores (its TensorFlow start-up, ~5-9 s,
    # is paid once); on many-core machines try workers = cores / threads_per_worker.
    workers: int = 1  # 0: one per CPU core
    threads_per_worker: int = 0  # TensorFlow threads in each worker (0: TensorFlow's default)
    timeout_s: float = 3600.0  # per recording
    memory_limit_mb: int = 0  # 0: no address-space cap (TensorFlow reserves large virtual areas)


@dataclass(frozen=True)
class CodecConfig:
    """EnCodec audio tokens: weights from a local folder or a hub id (honours HF_HUB_OFFLINE)."""

    model_32k: str = "facebook/encodec_32khz"  # MusicGen's codec: 4 codebooks x 2048, 50 Hz
    model_24k: str = "facebook/encodec_24khz"
    bandwidth_24k: float = 6.0  # kbps: 1.5, 3, 6, 12 or 24 (2, 4, 8, 16, 32 codebooks)
    chunk_s: float = 30.0  # long recordings are encoded in chunks of this many seconds
    batch_size: int = 4  # chunks per encode call
    seed: int = 0  # initialisation of an untrained model (--allow-untrained)
    workers: int = 1  # torch already uses every core in one process
    timeout_s: float = 3600.0  # per recording
    memory_limit_mb: int = 0  # 0: no address-space cap
    include_near_duplicates: bool = False


@dataclass(frozen=True)
class OrchestrationConfig:
    """How the Prefect flows run the per-batch work of ingest, transcribe and tokenize. Not
    hashed into lineage: the same inputs give the same catalog and shards under any runner."""

    task_runner: str = ""  # "" = batches one after another in the flow process; "dask"
    dask_address: str = ""  # an existing scheduler (tcp://host:8786); "" = a local cluster
    dask_workers: int = 2  # workers of the local cluster (one thread each)
    dask_processes: bool = False  # local workers as processes (threads suffice: batches run
    # in isolated worker processes either way)
    in_flight: int = 0  # batches submitted ahead of the one being recorded; 0 = 2 per worker

    def __post_init__(self) -> None:
        if self.task_runner not in ("", "dask"):
            msg = (
                f'orchestration: task_runner={self.task_runner!r}; use "dask" or "" (run '
                "batches in the flow process); fix [orchestration] in musicdata.toml"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    orchestration: OrchestrationConfig = field(default_factory=OrchestrationConfig)
    # Per-encoding overrides of the paper defaults, e.g. {"remi": {"num_velocities": 16}}.
    encodings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> Config:
        sections: dict[str, Any] = {}
        types = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key not in types:
                msg = f"{source}: unknown section [{key}]; known: {', '.join(sorted(types))}"
                raise ValueError(msg)
            if key == "encodings":
                if not isinstance(value, dict):
                    msg = f"{source}: [encodings] must be a table of tables"
                    raise ValueError(msg)
                sections[key] = {str(k): dict(v) for k, v in value.items()}
                continue
            section_cls = _SECTION_TYPES[key]
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = set(value) - known
            if unknown:
                msg = (
                    f"{source}: unknown key(s) {sorted(unknown)} in [{key}]; "
                    f"known: {', '.join(sorted(known))}"
                )
                raise ValueError(msg)
            sections[key] = section_cls(**value)
        return cls(**sections)


_SECTION_TYPES: dict[str, type] = {
    "ingest": IngestConfig,
    "archive": ArchiveConfig,
    "split": SplitConfig,
    "shards": ShardConfig,
    "tokenize": TokenizeConfig,
    "audio": AudioConfig,
    "transcribe": TranscribeConfig,
    "codec": CodecConfig,
    "orchestration": OrchestrationConfig,
}


def load_config(path: Path | None) -> Config:
    """Read a TOML config; a missing file means all defaults."""
    if path is None or not path.exists():
        return Config()
    with path.open("rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            msg = f"{path}: not valid TOML ({exc}); fix the file or remove it to use defaults"
            raise ValueError(msg) from exc
    return Config.from_dict(data, source=str(path))


def config_hash(*parts: Any) -> str:
    """Stable short hash of dataclasses / JSON-able values, for lineage keys."""
    payload = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
