"""Test and benchmark audio made offline: real MIDI rendered with numpy, and hostile files.

`render_midi` is a small additive synthesizer (a few harmonics, attack/decay envelope per note),
so transcription can be scored against the MIDI it came from without FluidSynth or downloads.
`render_midi_fluidsynth` uses FluidSynth and a General MIDI soundfont when they are installed.
`write_hostile_files` writes the broken recordings every ingest must survive.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

SOUNDFONTS = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)


def render_midi(midi_path: str | Path, sample_rate: int = 22050, gain: float = 0.3) -> np.ndarray:
    """Additive synthesis of every non-drum note of a MIDI file; float32 mono in [-1, 1]."""
    import symusic

    return render_score(symusic.Score(str(midi_path)), sample_rate, gain)


def render_score(score: Any, sample_rate: int = 22050, gain: float = 0.3) -> np.ndarray:
    """`render_midi` for a symusic Score (any time unit)."""
    score = score.to("second")
    notes = [
        (float(n.time), float(n.duration), int(n.pitch), int(n.velocity))
        for t in score.tracks
        if not t.is_drum
        for n in t.notes
    ]
    end = max((t + d for t, d, _, _ in notes), default=0.0) + 0.5
    out = np.zeros(int(end * sample_rate) + 1, np.float64)
    for start, dur, pitch, vel in notes:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        n = max(1, int((dur + 0.05) * sample_rate))
        t = np.arange(n) / sample_rate
        env = np.minimum(1.0, t / 0.01) * np.exp(-2.5 * t)
        env[-int(0.05 * sample_rate) :] *= np.linspace(1, 0, min(n, int(0.05 * sample_rate)))
        wave = sum(
            (0.6**h) * np.sin(2 * np.pi * f0 * (h + 1) * t)
            for h in range(4)
            if f0 * (h + 1) < sample_rate / 2
        )
        i = int(start * sample_rate)
        out[i : i + n] += (vel / 127.0) * env * wave
    peak = np.abs(out).max()
    if peak > 0:
        out *= gain / peak
    return out.astype(np.float32)


def fluidsynth_available() -> str | None:
    """The soundfont path when FluidSynth and a GM soundfont are installed, else None."""
    if shutil.which("fluidsynth") is None:
        return None
    return next((sf for sf in SOUNDFONTS if Path(sf).exists()), None)


def render_midi_fluidsynth(midi_path: str | Path, out_wav: Path, sample_rate: int = 22050) -> Path:
    soundfont = fluidsynth_available()
    if soundfont is None:
        msg = (
            "FluidSynth or a GM soundfont is missing: apt-get install fluidsynth timgm6mb-soundfont"
        )
        raise FileNotFoundError(msg)
    cmd = ["fluidsynth", "-ni", "-g", "0.6", "-r", str(sample_rate), "-F", str(out_wav)]
    subprocess.run([*cmd, soundfont, str(midi_path)], check=True, capture_output=True)
    return out_wav


def write_hostile_files(folder: Path) -> dict[str, str | None]:
    """Broken and odd recordings; returns file name -> expected quarantine reason (None = ok)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "one_sample.wav", np.zeros(1, np.float32), 44100)
    sf.write(folder / "header_only.wav", np.zeros(0, np.float32), 44100)
    nan = tone.copy()
    nan[1234] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = tone.copy()
    inf[99] = np.inf
    sf.write(folder / "inf.flac.wav", inf, 16000, subtype="FLOAT")
    six = np.stack([tone * (0.2 + 0.1 * c) for c in range(6)], axis=1)
    sf.write(folder / "six_channels.wav", six, 16000)
    t8 = np.arange(8000 * 2) / 8000
    sf.write(folder / "rate_8k.wav", (0.3 * np.sin(2 * np.pi * 330 * t8)).astype(np.float32), 8000)
    sf.write(folder / "silence.flac", np.zeros(22050, np.float32), 22050)
    full = folder / "full.wav"
    sf.write(full, tone, 16000)
    data = full.read_bytes()
    full.unlink()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "truncated_header.wav").write_bytes(data[:20])
    (folder / "noise_bytes.ogg").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return {
        "empty.wav": "empty",
        "one_sample.wav": "too_short",
        "header_only.wav": "no_samples",
        "nan.wav": "non_finite",
        "inf.flac.wav": "non_finite",
        "six_channels.wav": None,
        "rate_8k.wav": None,
        "silence.flac": None,
        "truncated.wav": "truncated",
        "truncated_header.wav": "unreadable",
        "noise_bytes.ogg": "unreadable",
    }
