"""basic-pitch transcription of one recording into a MIDI file; runs inside an isolated worker.

The model is loaded once per worker process and reused for every recording it gets. A recording is
transcribed in chunks (`transcribe.chunk_s`, 30 s by default: basic-pitch's whole-file path aborts
on long files), each read with `context_s` of audio either side; a note belongs to the chunk its
onset falls in, so no note is lost or doubled at a boundary. Inside a chunk the model's 2 s
windows (basic-pitch's own windowing and overlap trimming) go through the model in batches.
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
from schemas.config import TranscribeConfig, config_hash

TRANSCRIBE_VERSION = 1  # bump when chunking or note assembly changes the output
_MODELS: dict[str, Any] = {}  # per worker process: model path -> loaded basic-pitch Model
# basic-pitch's windowing (basic_pitch.constants: AUDIO_N_SAMPLES = 43844, FFT_HOP = 256)
_N_OVERLAP = 30  # frames of overlap between model windows
_LEAD = _N_OVERLAP * 256 // 2  # zeros basic-pitch prepends to a file (samples at 22050 Hz)
_HOP = 43844 - _N_OVERLAP * 256  # window hop in samples


def model_path(cfg: TranscribeConfig) -> str:
    import basic_pitch

    return cfg.model_path or str(basic_pitch.ICASSP_2022_MODEL_PATH)


def model_id(cfg: TranscribeConfig) -> str:
    """Identity of the model: the basic-pitch release plus the model folder's name."""
    from importlib.metadata import version

    name = "icassp_2022" if not cfg.model_path else Path(cfg.model_path).name
    return f"basic-pitch-{version('basic-pitch')}/{name}"


def transcription_params(cfg: TranscribeConfig) -> dict[str, Any]:
    """What decides the notes (hashed into lineage); execution limits are left out."""
    skip = {"enabled", "workers", "timeout_s", "memory_limit_mb", "batch_windows", "model_path"}
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


def _model(path: str) -> Any:
    if path not in _MODELS:
        from basic_pitch.inference import Model

        _MODELS[path] = Model(path)
    return _MODELS[path]


def _infer(model: Any, buffer: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """basic-pitch's run_inference on an array whose first `overlap/2` samples are lead-in (zeros
    at the file start, real audio before a later chunk); windows go through the model in batches.
    Output frame k is at buffer sample overlap/2 + k * FFT_HOP."""
    from basic_pitch.constants import AUDIO_N_SAMPLES
    from basic_pitch.inference import unwrap_output

    starts = range(0, max(1, len(buffer) - _LEAD), _HOP)
    windows = np.zeros((len(starts), AUDIO_N_SAMPLES, 1), np.float32)
    for i, s in enumerate(starts):
        w = buffer[s : s + AUDIO_N_SAMPLES]
        windows[i, : len(w), 0] = w
    out: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    for b in range(0, len(windows), batch):
        for k, v in model.predict(windows[b : b + batch]).items():
            out[k].append(v)
    n = len(buffer) - _LEAD
    return {k: unwrap_output(np.concatenate(v), n, _N_OVERLAP) for k, v in out.items()}


def transcribe_events(
    model: Any, audio_path: str, cfg: TranscribeConfig
) -> tuple[list[tuple[float, float, int, float, Any]], int, float]:
    """Note events (start_s, end_s, pitch, amplitude, bends) of a whole recording, chunk by chunk;
    returns (events, n_chunks, audio seconds).

    Each chunk is read with at least `context_s` before it, starting on basic-pitch's window grid
    of the whole file, so the model sees the same windows as in one pass; notes are kept by the
    chunk their onset falls in.
    """
    import soundfile as sf
    from basic_pitch import note_creation
    from basic_pitch.constants import AUDIO_N_SAMPLES, AUDIO_SAMPLE_RATE, FFT_HOP

    from musicdata.audio.decode import load_mono

    assert (AUDIO_N_SAMPLES, FFT_HOP) == (43844, 256), "basic-pitch changed its windowing"
    sr = AUDIO_SAMPLE_RATE
    info = sf.info(audio_path)
    total_s = info.frames / info.samplerate
    n_chunks = max(1, math.ceil(total_s / cfg.chunk_s - 1e-9))
    min_len = int(np.round(cfg.minimum_note_length_ms / 1000 * (sr / FFT_HOP)))
    events = []
    for c in range(n_chunks):
        c0, c1 = c * cfg.chunk_s, min(total_s, (c + 1) * cfg.chunk_s)
        # first window start (whole-file grid: windows start at i * HOP - LEAD) before c0 - ctx
        i0 = max(0, math.floor(((c0 - cfg.context_s) * sr + _LEAD) / _HOP))
        pos0 = i0 * _HOP - _LEAD  # in samples at 22050 Hz; negative = lead-in zeros
        s1 = min(total_s, c1 + cfg.context_s)
        audio = load_mono(audio_path, sr, max(pos0, 0) / sr, s1, method="soxr_hq")
        if len(audio) == 0:
            continue
        if pos0 < 0:
            audio = np.concatenate([np.zeros(-pos0, np.float32), audio])
        output = _infer(model, audio, max(1, cfg.batch_windows))
        _, evs = note_creation.model_output_to_notes(
            output,
            onset_thresh=cfg.onset_threshold,
            frame_thresh=cfg.frame_threshold,
            min_note_len=min_len,
            min_freq=cfg.minimum_frequency_hz or None,
            max_freq=cfg.maximum_frequency_hz or None,
            multiple_pitch_bends=cfg.multiple_pitch_bends,
            melodia_trick=cfg.melodia_trick,
            midi_tempo=cfg.midi_tempo,
        )
        offset = (pos0 + _LEAD) / sr  # time of output frame 0
        last = c == n_chunks - 1
        for start, end, pitch, amp, bends in evs:
            t0, t1 = float(start) + offset, float(end) + offset
            if c0 <= t0 < c1 or (last and t0 >= c1):
                events.append((t0, t1, int(pitch), float(amp), bends))
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
        model = _model(job.model_path)
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
