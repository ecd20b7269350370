"""Seeded hostile inputs for the fault suite (tests/faults): byte-level mutants of real MIDI and
audio, hand-made hostile files, and parser doubles that crash or hang inside the isolated worker.

Every generator is deterministic in its seed, so a failing mutant is reproduced by its name
(`<source>.<op>.<index>`) alone. The mutations are the ones real corruption produces: flipped
bits, files cut short, chunk lengths that lie, junk spliced in, tracks repeated, headers that
declare the impossible; for audio also non-finite samples and header fields out of range.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIDI_OPS = ("bitflip", "truncate", "chunk_length", "junk", "dup_track", "header", "varlen")
AUDIO_OPS = ("bitflip", "truncate", "header_field", "junk", "non_finite")


@dataclass(frozen=True)
class Mutant:
    name: str  # <source stem>.<op>.<index>: unique, and enough to reproduce it with its seed
    op: str
    data: bytes


def _chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, tag, declared length) of each chunk a MIDI file declares, as far as it parses."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        tag, length = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        out.append((pos, tag, length))
        pos += 8 + length
    return out


def _bitflip(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        i = int(rng.integers(0, len(buf)))
        buf[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _junk(data: bytes, rng: np.random.Generator) -> bytes:
    at = int(rng.integers(0, len(data) + 1))
    junk = rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
    return data[:at] + junk + data[at:]


def _chunk_length(data: bytes, rng: np.random.Generator) -> bytes:
    chunks = _chunks(data)
    if not chunks:
        return _bitflip(data, rng)
    pos, _, length = chunks[int(rng.integers(0, len(chunks)))]
    choices = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, length + 1, max(0, length - 1), length * 1000]
    new = choices[int(rng.integers(0, len(choices)))] & 0xFFFFFFFF
    return data[: pos + 4] + struct.pack(">I", new) + data[pos + 8 :]


def _dup_track(data: bytes, rng: np.random.Generator) -> bytes:
    tracks = [(p, n) for p, tag, n in _chunks(data) if tag == b"MTrk" and p + 8 + n <= len(data)]
    if not tracks or len(data) < 14:
        return _junk(data, rng)
    pos, length = tracks[int(rng.integers(0, len(tracks)))]
    chunk = data[pos : pos + 8 + length]
    copies = int(rng.integers(1, 40))
    out = data + chunk * copies
    if rng.random() < 0.7:  # usually the header is updated to match; sometimes it lies
        ntrks = struct.unpack(">H", data[10:12])[0]
        out = out[:10] + struct.pack(">H", min(0xFFFF, ntrks + copies)) + out[12:]
    return out


def _header(data: bytes, rng: np.random.Generator) -> bytes:
    if len(data) < 14:
        return _junk(data, rng)
    field = int(rng.integers(0, 3))  # format, ntrks, division
    value = [0, 1, 2, 3, 0x7FFF, 0xFFFF, 0x8000, 0xE250][int(rng.integers(0, 8))]
    at = 8 + 2 * field
    return data[:at] + struct.pack(">H", value) + data[at + 2 :]


def _varlen(data: bytes, rng: np.random.Generator) -> bytes:
    """A track event whose delta time or meta length is the largest a varlen can say."""
    tracks = [p for p, tag, n in _chunks(data) if tag == b"MTrk"]
    if not tracks:
        return _junk(data, rng)
    start = tracks[int(rng.integers(0, len(tracks)))] + 8
    huge = [b"\xff\xff\xff\x7f", b"\x8f\xff\xff\xff\x7f", b"\x00\xff\x01\xff\xff\xff\x7f"]
    payload = huge[int(rng.integers(0, len(huge)))]
    return data[:start] + payload + data[start:]


_MIDI_FN: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "bitflip": _bitflip,
    "truncate": _truncate,
    "chunk_length": _chunk_length,
    "junk": _junk,
    "dup_track": _dup_track,
    "header": _header,
    "varlen": _varlen,
}


def midi_mutants(sources: dict[str, bytes], n: int, seed: int = 0) -> Iterator[Mutant]:
    """`n` mutants of the given real MIDI files (name -> bytes), ops and sources in turn."""
    rng = np.random.default_rng(seed)
    names = sorted(sources)
    for i in range(n):
        op = MIDI_OPS[i % len(MIDI_OPS)]
        src = names[int(rng.integers(0, len(names)))]
        data = _MIDI_FN[op](sources[src], rng)
        yield Mutant(f"{Path(src).stem}.{op}.{i:05d}", op, data)


def hostile_midi() -> dict[str, bytes]:
    """Hand-made MIDI files a parser must refuse without crashing, hanging or allocating what
    they declare. The existing fixtures cover empty, truncated, random and note-less files."""
    head = b"MThd" + struct.pack(">IHHH", 6, 1, 1, 480)
    notes = b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"
    track = b"MTrk" + struct.pack(">I", len(notes)) + notes
    return {
        "zero_bytes.mid": b"",
        "one_byte.mid": b"M",
        "wrong_magic.mid": b"RIFF" + head[4:] + track,
        "huge_header_length.mid": b"MThd" + struct.pack(">IHHH", 0xFFFFFFFF, 1, 1, 480) + track,
        "huge_track_length.mid": head + b"MTrk" + struct.pack(">I", 0xFFFFFFF0) + notes,
        "ntrks_65535.mid": b"MThd" + struct.pack(">IHHH", 6, 1, 0xFFFF, 480) + track,
        "division_zero.mid": b"MThd" + struct.pack(">IHHH", 6, 1, 1, 0) + track,
        "smpte_division.mid": b"MThd" + struct.pack(">IHHh", 6, 1, 1, -7680) + track,
        "format_7.mid": b"MThd" + struct.pack(">IHHH", 6, 7, 1, 480) + track,
        "huge_sysex.mid": head + b"MTrk" + struct.pack(">I", 9) + b"\x00\xf0\xff\xff\xff\x7f\x00",
        "endless_delta.mid": head + b"MTrk" + struct.pack(">I", 8) + b"\xff" * 8,
        "ten_thousand_tracks.mid": b"MThd"
        + struct.pack(">IHHH", 6, 1, 10_000 & 0xFFFF, 480)
        + track * 10_000,
        "notes_of_max_length.mid": head
        + b"MTrk"
        + struct.pack(">I", 14)
        + b"\x00\x90\x3c\x40\x8f\xff\xff\x7f\x80\x3c\x00\x00\xff\x2f",
    }


# ---- audio ------------------------------------------------------------------------------------


def real_audio(midi: dict[str, bytes], seconds: float = 1.0, sample_rate: int = 8000) -> dict:
    """Short recordings rendered from real MIDI (musicdata.testing.audio), as WAV (PCM 16,
    float 32) and FLAC bytes: name -> bytes."""
    import soundfile as sf
    import symusic

    from musicdata.testing.audio import render_score

    out = {}
    for name in sorted(midi):
        wave = render_score(symusic.Score.from_midi(midi[name]), sample_rate)
        wave = wave[: int(seconds * sample_rate)]
        for fmt, subtype, ext in (
            ("WAV", "PCM_16", "wav"),
            ("WAV", "FLOAT", "f32.wav"),
            ("FLAC", "PCM_16", "flac"),
        ):
            buf = io.BytesIO()
            sf.write(buf, wave, sample_rate, format=fmt, subtype=subtype)
            out[f"{Path(name).stem}.{ext}"] = buf.getvalue()
    return out


def _wav_data_offset(data: bytes) -> int | None:
    i = data.find(b"data")
    return i + 8 if i >= 0 and data[:4] == b"RIFF" else None


def _non_finite(data: bytes, rng: np.random.Generator) -> bytes:
    """NaN/Inf written into the samples of a float WAV (other formats: a header field)."""
    at = _wav_data_offset(data)
    if at is None or data[20:22] != b"\x03\x00":  # format tag 3: IEEE float
        return _header_field(data, rng)
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        k = at + 4 * int(rng.integers(0, max(1, (len(buf) - at) // 4)))
        value = [np.nan, np.inf, -np.inf, 3.0e38][int(rng.integers(0, 4))]
        buf[k : k + 4] = struct.pack("<f", value)
    return bytes(buf)


def _header_field(data: bytes, rng: np.random.Generator) -> bytes:
    """A WAV header field (RIFF size, channels, rate, bits, data size) or FLAC STREAMINFO byte
    set to a value out of range."""
    if data[:4] == b"RIFF" and len(data) >= 44:
        fields = [(4, "<I"), (22, "<H"), (24, "<I"), (34, "<H"), (data.find(b"data") + 4, "<I")]
        at, fmt = fields[int(rng.integers(0, len(fields)))]
        big = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
        value = [0, 1, big, big // 2][int(rng.integers(0, 4))]
        return data[:at] + struct.pack(fmt, value) + data[at + struct.calcsize(fmt) :]
    buf = bytearray(data)
    if len(buf) > 30:  # fLaC, block header (4), STREAMINFO (34): rate/channels/bits in 18..21
        buf[8 + 10 + int(rng.integers(0, 8))] = int(rng.integers(0, 256))
    return bytes(buf)


_AUDIO_FN: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "bitflip": _bitflip,
    "truncate": _truncate,
    "header_field": _header_field,
    "junk": _junk,
    "non_finite": _non_finite,
}


def audio_mutants(sources: dict[str, bytes], n: int, seed: int = 0) -> Iterator[Mutant]:
    """`n` mutants of the given recordings (name -> WAV/FLAC bytes); the name keeps the
    extension so discovery sends them to the audio decoder."""
    rng = np.random.default_rng(seed)
    names = sorted(sources)
    for i in range(n):
        op = AUDIO_OPS[i % len(AUDIO_OPS)]
        src = names[int(rng.integers(0, len(names)))]
        stem, _, ext = src.partition(".")
        yield Mutant(f"{stem}.{op}.{i:05d}.{ext}", op, _AUDIO_FN[op](sources[src], rng))


def hostile_audio() -> dict[str, bytes]:
    """Hand-made recordings whose headers declare the impossible (musicdata.testing.audio's
    write_hostile_files covers empty, truncated, NaN/Inf, one-sample and noise files)."""
    import soundfile as sf

    buf = io.BytesIO()
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32)
    sf.write(buf, tone, 8000, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    data_at = wav.find(b"data") + 4

    def put(at: int, fmt: str, value: int) -> bytes:
        return wav[:at] + struct.pack(fmt, value) + wav[at + struct.calcsize(fmt) :]

    return {
        "huge_data_chunk.wav": put(data_at, "<I", 0xFFFFFFF0),
        "riff_size_max.wav": put(4, "<I", 0xFFFFFFFF),
        "zero_channels.wav": put(22, "<H", 0),
        "max_channels.wav": put(22, "<H", 0xFFFF),
        "zero_rate.wav": put(24, "<I", 0),
        "max_rate.wav": put(24, "<I", 0xFFFFFFFF),
        "bits_3.wav": put(34, "<H", 3),
        "wrong_magic.flac": b"fLaX" + wav[4:],
        "wav_named_flac.flac": wav,
        "midi_named_wav.wav": b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480),
    }


# ---- parser doubles, run inside the isolated worker --------------------------------------------

CRASH_MAGIC = b"SEGV"  # a file starting with this crashes the parser double natively
HANG_MAGIC = b"HANG"  # ... and with this, it never returns


def crashing_parser(job: Any) -> dict[str, Any]:
    """musicdata.ingest.midi.inspect_midi, except that it segfaults or hangs on the magic
    prefixes above: a stand-in for a native parser bug, to prove isolation contains it. Tests
    put it in place of `musicdata.stages.ingest.inspect_midi`, so the real pool runs it."""
    import ctypes
    import time

    from musicdata.ingest.midi import inspect_midi

    head = Path(job.blob_path).read_bytes()[:4]
    if head == CRASH_MAGIC:
        ctypes.string_at(0)  # SIGSEGV, as a broken C parser would
    if head == HANG_MAGIC:
        while True:
            time.sleep(1)
    return inspect_midi(job)
