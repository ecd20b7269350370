"""Decode and validate one audio file; runs inside an isolated worker (see musicdata.isolate).

Reads blocks through libsndfile (soundfile), so memory stays flat however long the recording is,
and returns a plain dict record: status 'ok' with metadata (duration, rate, channels, loudness
as RMS dBFS, a hash of the decoded samples), or 'quarantined' with a reason and a detail naming
the fix.
Silence is not an error: a silent recording is ok and transcribes to "no notes".
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicdata.audio import AUDIO_SUFFIXES

__all__ = ["AUDIO_SUFFIXES", "AudioJob", "inspect_audio", "load_mono", "sniff_format"]

_BLOCK = 1 << 16


@dataclass(frozen=True)
class AudioJob:
    """What a worker needs: where the bytes are and the caps (from AudioConfig)."""

    sha256: str
    blob_path: str
    min_duration_s: float
    max_duration_s: float
    silence_dbfs: float


def sniff_format(head: bytes) -> str | None:
    """Container named by the first bytes, independent of libsndfile (for error messages)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


def _reject(job: AudioJob, reason: str, detail: str) -> dict[str, Any]:
    return {"sha256": job.sha256, "status": "quarantined", "reason": reason, "detail": detail}


def _wav_truncation(path: Path, size: int) -> str | None:
    """A WAV whose data chunk claims more bytes than the file holds was cut short; libsndfile
    would quietly decode the part that is there, so check the header ourselves."""
    with path.open("rb") as fh:
        fh.seek(12)
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, csize = struct.unpack("<4sI", fh.read(8))
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                    return None
                have = size - pos - 8
                if csize > have:
                    return f"the data chunk declares {csize} bytes but the file holds {have}"
                return None
            pos += 8 + csize + (csize & 1)
    return "no data chunk before the end of the file"


def _open_error(job: AudioJob, path: Path, exc: Exception) -> dict[str, Any]:
    import soundfile as sf

    with path.open("rb") as fh:
        fmt = sniff_format(fh.read(16))
    if fmt is not None and fmt not in sf.available_formats():
        return _reject(
            job,
            "unsupported_format",
            f"{fmt} is not decodable by the installed libsndfile {sf.__libsndfile_version__} "
            f"(MP3 needs libsndfile >= 1.1.0); convert it to FLAC or WAV, or upgrade libsndfile",
        )
    what = f"a damaged {fmt} file" if fmt else "not a recognised audio format"
    why = str(exc).replace(f"Error opening {str(path)!r}: ", "")
    return _reject(job, "unreadable", f"{what} ({why}); re-export it as WAV or FLAC")


def inspect_audio(job: AudioJob) -> dict[str, Any]:
    """Decode every sample once (blockwise), validate, and describe one audio file."""
    import soundfile as sf  # deferred: workers import only what they need

    path = Path(job.blob_path)
    size = path.stat().st_size
    if size == 0:
        return _reject(job, "empty", "the file has zero bytes")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        return _open_error(job, path, exc)
    if info.format == "WAV":
        cut = _wav_truncation(path, size)
        if cut:
            return _reject(job, "truncated", f"{cut}: the file was cut short; re-export it")
    if info.samplerate <= 0 or info.channels <= 0:
        return _reject(job, "invalid_header", f"{info.samplerate} Hz, {info.channels} channels")
    digest = hashlib.sha256(f"{info.samplerate}:{info.channels}:".encode())
    frames, sumsq, peak = 0, 0.0, 0.0
    max_frames = int(job.max_duration_s * info.samplerate) + 1
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=_BLOCK, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    bad = int(np.argmin(np.isfinite(block).all(axis=1)))
                    return _reject(
                        job,
                        "non_finite",
                        f"NaN or infinite sample at frame {frames + bad}; the file is corrupt "
                        "(float WAVs can hold NaN): fix or re-render it",
                    )
                frames += len(block)
                if frames > max_frames:
                    cap = f"{job.max_duration_s:.0f} s (audio.max_duration_s)"
                    return _reject(job, "too_long", f"longer than the cap {cap}")
                sumsq += float(np.square(block, dtype=np.float64).sum())
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                q = np.rint(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
                digest.update(q.tobytes())
    except (sf.LibsndfileError, RuntimeError) as exc:
        return _reject(job, "unreadable", f"decoding failed after {frames} frames: {exc}")
    if frames == 0:
        return _reject(job, "no_samples", f"a {info.format} header with no audio frames")
    duration_s = frames / info.samplerate
    if duration_s < job.min_duration_s:
        return _reject(
            job,
            "too_short",
            f"{frames} frames = {duration_s * 1000:.2f} ms < {job.min_duration_s} s "
            "(audio.min_duration_s)",
        )
    rms = math.sqrt(sumsq / (frames * info.channels))
    rms_dbfs = 20 * math.log10(rms) if rms > 0 else None
    return {
        "sha256": job.sha256,
        "status": "ok",
        "content_hash": digest.hexdigest(),
        "format": info.format,
        "subtype": info.subtype,
        "duration_s": duration_s,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "frames": frames,
        "rms_dbfs": rms_dbfs,
        "peak_dbfs": 20 * math.log10(peak) if peak > 0 else None,
        "is_silent": rms_dbfs is None or rms_dbfs < job.silence_dbfs,
    }


def load_mono(
    path: str | Path,
    sample_rate: int,
    start_s: float = 0.0,
    stop_s: float | None = None,
    *,
    method: str = "poly",
) -> np.ndarray:
    """Samples [start_s, stop_s) downmixed to mono and resampled to `sample_rate` (float32).

    method "poly": scipy's polyphase filter; "soxr_hq": libsoxr as librosa.load (and so
    basic-pitch) uses it. A chunk is resampled on its own, which is why callers read a little
    context around each chunk.
    """
    import soundfile as sf

    info = sf.info(str(path))
    sr = int(info.samplerate)
    start = max(0, round(start_s * sr))
    stop = None if stop_s is None else round(stop_s * sr)
    x, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    mono = x.mean(axis=1, dtype=np.float32)
    if sr == sample_rate or len(mono) == 0:
        return mono
    if method == "soxr_hq":
        import soxr

        return soxr.resample(mono, sr, sample_rate, quality="soxr_hq").astype(np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(sr, sample_rate)
    return resample_poly(mono, sample_rate // g, sr // g).astype(np.float32)
