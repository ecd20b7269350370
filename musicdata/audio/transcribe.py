"""basic-pitch transcription of one recording into a MIDI file; runs inside an isolated worker.

The model is loaded once per worker process and reused for every recording it gets. A recording is
transcribed `transcribe.chunk_s` (30 s) at a time: basic-pitch's whole-file path aborts on long
files. The model runs once per window of basic-pitch's own window grid over the whole file, so its
outputs are those of one pass (with one chunk the notes are exactly `predict()`'s); notes are
assembled per chunk from its frames plus `context_s` of frames either side and kept by the chunk
their onset falls in, so no note is lost or doubled at a boundary, and memory stays bounded.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicdata.fsutil import atomic_write
from musicdata.schemas.config import TranscribeConfig, config_hash

TRANSCRIBE_VERSION = 1  # bump when chunking or note assembly changes the output
_MODELS: dict[str, Any] = {}  # per worker process: model path -> loaded basic-pitch Model
# basic-pitch's windowing (basic_pitch.constants: AUDIO_N_SAMPLES = 43844, FFT_HOP = 256)
_SR = 22050
_WIN = 43844  # samples per model window
_N_OVERLAP = 30  # frames of overlap between model windows
_LEAD = _N_OVERLAP * 256 // 2  # zeros basic-pitch prepends to a file (samples at 22050 Hz)
_HOP = _WIN - _N_OVERLAP * 256  # window hop in samples


def model_path(cfg: TranscribeConfig) -> str:
    """The configured model, else basic-pitch's bundled one (basic_pitch.ICASSP_2022_MODEL_PATH),
    found without importing basic_pitch: that imports TensorFlow, which only workers need."""
    if cfg.model_path:
        return cfg.model_path
    import importlib.util

    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        msg = "basic-pitch is not installed; pip install basic-pitch==0.4.0"
        raise ModuleNotFoundError(msg)
    root = Path(next(iter(spec.submodule_search_locations)))
    return str(root / "saved_models" / "icassp_2022" / "nmp")


def model_id(cfg: TranscribeConfig) -> str:
    """Identity of the model: the basic-pitch release plus the model folder's name."""
    from importlib.metadata import version

    name = "icassp_2022" if not cfg.model_path else Path(cfg.model_path).name
    return f"basic-pitch-{version('basic-pitch')}/{name}"


def transcription_params(cfg: TranscribeConfig) -> dict[str, Any]:
    """What decides the notes (hashed into lineage); execution limits are left out."""
    skip = {
        "enabled",
        "workers",
        "threads_per_worker",
        "timeout_s",
        "memory_limit_mb",
        "batch_windows",
        "model_path",
    }
    params = {k: v for k, v in asdict(cfg).items() if k not in skip}
    return {"model": model_id(cfg), "version": TRANSCRIBE_VERSION, **params}


def params_hash(cfg: TranscribeConfig) -> str:
    return config_hash(transcription_params(cfg))


@dataclass(frozen=True)
class TranscribeJob:
    sha256: str  # the recording's
    audio_path: str
    workspace_root: str  # the worker writes the MIDI bytes into the content store (not the catalog)
    cfg: TranscribeConfig
    model_path: str
    # MIDI validation caps (IngestConfig), so a transcribed piece is described like any MIDI piece
    max_notes: int
    max_duration_s: float
    max_tracks: int
    content_hash_tpq: int


def _model(path: str, threads: int = 0) -> Any:
    if path not in _MODELS:
        if threads > 0:  # before TensorFlow initialises its runtime (first model load)
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        from basic_pitch.inference import Model

        _MODELS[path] = Model(path)
    return _MODELS[path]


def _window_outputs(model: Any, windows: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Model outputs of windows [n, 43844, 1], each stripped of its overlap frames as basic-pitch's
    unwrap_output does, concatenated: [n * 142, bins]."""
    out: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    for b in range(0, len(windows), batch):
        for k, v in model.predict(windows[b : b + batch]).items():
            out[k].append(v)
    half = _N_OVERLAP // 2
    return {
        k: np.concatenate(v)[:, half:-half, :].reshape(-1, v[0].shape[-1]) for k, v in out.items()
    }


def _read_windows(path: str, first: int, last: int, n_audio: int) -> np.ndarray:
    """Windows first..last-1 of basic-pitch's grid over the whole file (window i starts at audio
    sample i * HOP - LEAD at 22050 Hz), read and resampled as one segment."""
    from musicdata.audio.decode import load_mono

    sr = _SR
    lo = first * _HOP - _LEAD
    hi = (last - 1) * _HOP - _LEAD + _WIN
    audio = load_mono(path, sr, max(lo, 0) / sr, min(hi, n_audio) / sr, method="soxr_hq")
    seg = np.zeros(hi - lo, np.float32)
    off = max(0, -lo)
    n = min(len(audio), len(seg) - off, max(0, n_audio - max(lo, 0)))
    seg[off : off + n] = audio[:n]
    starts = np.arange(last - first) * _HOP
    return np.stack([seg[s : s + _WIN] for s in starts])[..., None]


def transcribe_events(
    model: Any, audio_path: str, cfg: TranscribeConfig
) -> tuple[list[tuple[float, float, int, float, Any]], int, float]:
    """Note events (start_s, end_s, pitch, amplitude, bends) of a whole recording, chunk by chunk;
    returns (events, n_chunks, audio seconds).

    The model runs once per window of basic-pitch's window grid over the whole file (so its
    outputs are those of one pass), `chunk_s` of audio at a time. Notes are assembled per chunk
    from its frames plus `context_s` of frames either side, kept by the chunk their onset falls
    in, and timed with basic-pitch's whole-file frame clock.
    """
    import soundfile as sf
    from basic_pitch import note_creation
    from basic_pitch.constants import ANNOTATIONS_FPS, AUDIO_N_SAMPLES, FFT_HOP

    assert (AUDIO_N_SAMPLES, FFT_HOP) == (_WIN, 256), "basic-pitch changed its windowing"
    info = sf.info(audio_path)
    total_s = info.frames / info.samplerate
    n_audio = math.ceil(info.frames * _SR / info.samplerate)
    n_frames = int(np.floor(n_audio * (ANNOTATIONS_FPS / _SR)))  # as unwrap_output trims
    n_windows = max(1, math.ceil((n_audio + _LEAD) / _HOP))
    per_chunk = max(1, round(cfg.chunk_s * _SR / _HOP))
    n_chunks = math.ceil(n_windows / per_chunk)
    ctx = max(1, round(cfg.context_s * _SR / FFT_HOP))
    min_len = int(np.round(cfg.minimum_note_length_ms / 1000 * (_SR / FFT_HOP)))
    frames_per_window = (_WIN // FFT_HOP + 1) - _N_OVERLAP
    times = note_creation.model_frames_to_time(n_frames + 1)
    events: list[tuple[float, float, int, float, Any]] = []
    buf: dict[str, np.ndarray] = {}
    buf_start = 0  # global frame index of buf's first row

    def assemble(f0: int, f1: int) -> None:
        """Notes with onsets in frames [f0, f1), from the buffer's frames around them."""
        g0 = max(buf_start, f0 - ctx)
        g1 = min(buf_start + len(buf["note"]), f1 + ctx, n_frames)
        if g1 <= g0:
            return
        part = {k: v[g0 - buf_start : g1 - buf_start] for k, v in buf.items()}
        notes = note_creation.output_to_notes_polyphonic(
            part["note"],
            part["onset"],
            onset_thresh=cfg.onset_threshold,
            frame_thresh=cfg.frame_threshold,
            min_note_len=min_len,
            infer_onsets=True,
            max_freq=cfg.maximum_frequency_hz or None,
            min_freq=cfg.minimum_frequency_hz or None,
            melodia_trick=cfg.melodia_trick,
        )
        for s0, s1, pitch, amp, bends in note_creation.get_pitch_bends(part["contour"], notes):
            if f0 <= g0 + s0 < f1:
                t1 = times[min(g0 + s1, n_frames)]
                events.append((float(times[g0 + s0]), float(t1), int(pitch), float(amp), bends))

    owned: tuple[int, int] | None = None  # frames of the previous chunk, assembled one step late
    for c in range(n_chunks):
        first, last = c * per_chunk, min(n_windows, (c + 1) * per_chunk)
        out = _window_outputs(
            model, _read_windows(audio_path, first, last, n_audio), max(1, cfg.batch_windows)
        )
        assert len(out["note"]) == (last - first) * frames_per_window, "unexpected frame count"
        keep_from = (owned[0] - ctx) if owned else 0
        if buf:
            drop = max(0, keep_from - buf_start)
            buf = {k: np.concatenate([v[drop:], out[k]]) for k, v in buf.items()}
            buf_start += drop
        else:
            buf, buf_start = out, first * frames_per_window
        if owned:
            assemble(*owned)
        owned = (first * frames_per_window, last * frames_per_window)
    if owned:
        assemble(owned[0], n_frames)
    events.sort(key=lambda e: (e[0], e[2], e[1]))
    return events, n_chunks, total_s


def events_to_midi_bytes(events: list, cfg: TranscribeConfig) -> bytes:
    from basic_pitch.note_creation import note_events_to_midi

    pm = note_events_to_midi(events, cfg.multiple_pitch_bends, cfg.midi_tempo)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def transcribe_recording(job: TranscribeJob) -> dict[str, Any]:
    """Transcribe one recording; write its MIDI into the content store and describe it."""
    import hashlib

    from musicdata.ingest.midi import MidiJob, inspect_midi

    t0 = time.perf_counter()
    with _quiet(), np.errstate(divide="ignore", invalid="ignore"):  # silence: 0/0 in basic-pitch
        model = _model(job.model_path, job.cfg.threads_per_worker)
        events, n_chunks, audio_s = transcribe_events(model, job.audio_path, job.cfg)
    rec: dict[str, Any] = {
        "sha256": job.sha256,
        "n_notes": len(events),
        "n_chunks": n_chunks,
        "audio_s": audio_s,
    }
    if not events:
        return {**rec, "status": "no_notes", "seconds": time.perf_counter() - t0}
    data = events_to_midi_bytes(events, job.cfg)
    midi_sha = hashlib.sha256(data).hexdigest()
    rel = f"objects/{midi_sha[:2]}/{midi_sha}"
    blob = Path(job.workspace_root) / rel
    if not blob.exists():  # content-addressed: the same bytes are the same file
        atomic_write(blob, lambda tmp: tmp.write_bytes(data))
    meta = inspect_midi(
        MidiJob(
            midi_sha,
            str(blob),
            job.max_notes,
            job.max_duration_s,
            job.max_tracks,
            job.content_hash_tpq,
        )
    )
    seconds = time.perf_counter() - t0
    if meta["status"] != "ok":
        return {
            **rec,
            "status": "quarantined",
            "reason": meta["reason"],
            "detail": f"the transcribed MIDI: {meta['detail']}",
            "seconds": seconds,
        }
    meta.pop("status")
    meta.pop("sha256")
    return {
        **rec,
        "status": "ok",
        "midi_sha256": midi_sha,
        "midi_size": len(data),
        "blob_path": rel,
        "piece": meta,
        "seconds": seconds,
    }


class _quiet:
    """basic-pitch and TensorFlow print to stdout; a worker's stdout is not ours to fill."""

    def __enter__(self) -> None:
        import contextlib
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self._cm = contextlib.redirect_stdout(io.StringIO())
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
