"""Real public-domain music for benchmarks and tests: a selection of music21's bundled corpus,
converted to MIDI once and cached, plus "performance-like" MIDI made by humanizing real scores.

Two kinds of file, named so nobody mistakes one for the other:

- `score/`: music21's conversion of an engraved score (quartets, madrigals, chorales, folk tunes,
  long multi-movement pieces, meter changes). Onsets sit on the notated grid; tracks are parts.
- `performance/`: a real score rendered as a *simulated* performance, MAESTRO-style (one piano
  track, 384 ticks per quarter, a constant 120 bpm tempo map, 4/4 header): onsets jittered in
  milliseconds, a phrase-level velocity curve, articulation that shortens or lengthens notes, and
  legato overlaps that re-strike a pitch before its note-off, as pianists' MIDI does. It is not a
  recording of a human; it exercises what performance MIDI exercises (off-grid timing, overlaps).

The cache lives in `~/.cache/musicdata/music21-<version>/` (or `$MUSICDATA_CACHE`); conversion
is slow (seconds per large score), so it runs once, and files that music21 cannot convert are
listed in the manifest with the reason instead of stopping the run.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# (music21 corpus path, tune number in a multi-tune ABC file or None, group). The groups name what
# each file stresses; the selection is fixed so figures are comparable run to run.
_QUARTETS = [
    *(f"beethoven/opus18no1/movement{i}.mxl" for i in range(1, 5)),  # 3 of 4 exceed 256 bars
    "beethoven/opus59no1/movement1.mxl",
    *(f"haydn/opus74no1/movement{i}.mxl" for i in range(1, 5)),
    *(f"mozart/k80/movement{i}.mxl" for i in range(1, 5)),
    "mozart/k458/movement1.mxl",
    *(f"schumann_robert/opus41no1/movement{i}.mxl" for i in (1, 3)),
]
_MADRIGALS = [
    *(f"monteverdi/madrigal.3.{i}.mxl" for i in range(1, 11)),
    *(f"monteverdi/madrigal.4.{i}.mxl" for i in range(1, 6)),
    "josquin/laDeplorationDeLaMorteDeJohannesOckeghem.abc",
    "josquin/milleRegrets.abc",
    "palestrina/Agnus_01.krn",
    "palestrina/Kyrie_01.krn",
    "lusitano/allor_che_ignuda.mxl",
]
_CHORALES = [
    "bach/bwv1.6.mxl",
    "bach/bwv10.7.mxl",
    "bach/bwv101.7.mxl",
    "bach/bwv102.7.mxl",
    "bach/bwv103.6.mxl",
    "bach/bwv104.6.mxl",
    "bach/bwv108.6.mxl",
    "bach/bwv11.6.mxl",
    "bach/bwv110.7.mxl",
    "bach/bwv111.6.mxl",
    "bach/bwv113.8.mxl",
    "bach/bwv114.7.mxl",
]
_METER_CHANGES = [
    "schoenberg/opus19/movement2.mxl",
    "schoenberg/opus19/movement6.mxl",
    "trecento/PMFC_04-Cara mi donna.xml",
    "trecento/PMFC_06_8-In Verde Prato.xml",
    "ciconia/quod_jactatur.xml",
    "cpebach/h186.mxl",  # 32nds and triplets
    "corelli/opus3no1/1grave.xml",
    "joplin/maple_leaf_rag.mxl",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "chopin/mazurka06-2.krn",
    "handel/rinaldo/Lascia_chio_pianga.mxl",
    "mozart/k545/movement1_exposition.mxl",
]
_FOLK = [
    *(("oneills1850/0001-0050.abc", n) for n in (1, 5, 12, 23, 37, 44)),
    *(("oneills1850/0201-0300.abc", n) for n in (210, 240, 275)),
    *(("essenFolksong/erk5.abc", n) for n in (3, 9, 17)),
    *(("essenFolksong/han1.abc", n) for n in (1, 20, 40)),
    *(("essenFolksong/kinder0.abc", n) for n in (1, 4)),
    "ryansMammoth/AcaciaReel.abc",
    "ryansMammoth/7thRegimentReel.abc",
    ("airdsAirs/book1.abc", 1),
]
SELECTION: list[tuple[str, int | None, str]] = [
    *((p, None, "quartet") for p in _QUARTETS),
    *((p, None, "madrigal") for p in _MADRIGALS),
    *((p, None, "chorale") for p in _CHORALES),
    *((p, None, "meter") for p in _METER_CHANGES),
    *(((p, None) if isinstance(p, str) else p) + ("folk",) for p in _FOLK),
]
# Scores rendered as simulated performances (one piano track): piano music, a chorale, a quartet
# movement and folk tunes, so the performance set has chords, long lines and fast passages.
PERFORMED = [
    "joplin/maple_leaf_rag.mxl",
    "mozart/k545/movement1_exposition.mxl",
    "chopin/mazurka06-2.krn",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "cpebach/h186.mxl",
    "bach/bwv1.6.mxl",
    "bach/bwv10.7.mxl",
    "beethoven/opus18no1/movement3.mxl",
    "mozart/k80/movement2.mxl",
    "haydn/opus74no1/movement2.mxl",
    "oneills1850/0001-0050.abc#5",
]


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    kind: str  # "score" or "performance"
    group: str  # quartet, madrigal, chorale, meter, folk, performed
    source: str  # music21 corpus path (+ "#tune")


def cache_root() -> Path:
    import music21

    base = Path(os.environ.get("MUSICDATA_CACHE", Path.home() / ".cache" / "musicdata"))
    return base / f"music21-{music21.__version__}"


def _slug(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", source.replace(".", "_")).strip("_") + ".mid"


def _source(path: str, number: int | None) -> str:
    return path if number is None else f"{path}#{number}"


def _convert(path: str, number: int | None) -> bytes:
    """music21 corpus work -> MIDI bytes, without lyrics (they become note-less tracks)."""
    from music21 import bar, corpus, stream
    from music21.midi.translate import music21ObjectToMidiFile

    score = corpus.parse(path, number=number)
    for note in score.recurse().notes:
        note.lyrics = []
    try:
        return music21ObjectToMidiFile(score).writestr()
    except Exception:  # noqa: BLE001 - music21 raises many kinds on unexpandable repeats
        for m in score.recurse().getElementsByClass(stream.Measure):
            if isinstance(m.leftBarline, bar.Repeat):
                m.leftBarline = None
            if isinstance(m.rightBarline, bar.Repeat):
                m.rightBarline = None
        return music21ObjectToMidiFile(score).writestr()


def _convert_one(args: tuple[str, int | None, str]) -> tuple[str, str | None]:
    """Worker: convert and write atomically; returns (source, error)."""
    path, number, dest = args
    try:
        data = _convert(path, number)
    except Exception as exc:  # noqa: BLE001 - a failed conversion is recorded, not fatal
        return _source(path, number), f"{type(exc).__name__}: {exc}"[:300]
    tmp = Path(dest + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return _source(path, number), None


def humanize(data: bytes, seed: int, jitter_ms: float = 12.0) -> bytes:
    """A score's MIDI bytes -> simulated performance MIDI bytes (see the module docstring)."""
    import numpy as np
    import symusic

    rng = np.random.default_rng(seed)
    sec = symusic.Score.from_midi(data).to("second")
    rows = []
    for track in sec.tracks:
        arr = track.notes.numpy()
        if len(arr["pitch"]):
            rows.append(np.stack([arr["time"], arr["duration"], arr["pitch"]], axis=1))
    notes = np.concatenate(rows) if rows else np.zeros((0, 3))
    notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
    n = len(notes)
    onset = np.maximum(notes[:, 0] + rng.normal(0, jitter_ms / 1000, n), 0.0)
    dur = np.maximum(notes[:, 1] * rng.uniform(0.75, 1.1, n), 0.03)
    pitch = notes[:, 2].astype(int)
    # legato overlap: a repeated pitch often sounds on past the next onset (re-struck note)
    order = np.lexsort((onset, pitch))
    for a, b in itertools.pairwise(order):
        if pitch[a] == pitch[b] and onset[b] - onset[a] < 1.0 and rng.random() < 0.3:
            dur[a] = max(dur[a], onset[b] - onset[a] + rng.uniform(0.02, 0.08))
    phrase = 0.5 + 0.5 * np.sin(2 * np.pi * onset / 8.0 + rng.uniform(0, 6.28))
    vel = np.clip(45 + 50 * phrase + rng.normal(0, 6, n) + (pitch > 72) * 6, 1, 127).astype(int)
    tpq, qpm = 384, 120.0
    ticks_per_s = tpq * qpm / 60
    out = symusic.Score(tpq)
    out.tempos.append(symusic.Tempo(0, qpm))
    out.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track(program=0, name="Piano")
    for o, d, p, v in zip(onset, dur, pitch, vel, strict=True):
        t = round(o * ticks_per_s)
        end = round((o + d) * ticks_per_s)
        track.notes.append(symusic.Note(t, max(1, end - t), int(p), int(v)))
    out.tracks.append(track)
    return out.dumps_midi()


def build(
    selection: Iterable[tuple[str, int | None, str]] = SELECTION,
    performed: Iterable[str] = PERFORMED,
    workers: int = 2,
) -> list[CorpusFile]:
    """Convert what is not cached yet; return every available file (scores, then performances).
    A manifest.json beside the files records groups and failed conversions."""
    root = cache_root()
    (root / "score").mkdir(parents=True, exist_ok=True)
    (root / "performance").mkdir(parents=True, exist_ok=True)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    failed: dict[str, str] = manifest.get("failed", {})
    selection = list(selection)
    todo = [
        (p, n, str(root / "score" / _slug(_source(p, n))))
        for p, n, _ in selection
        if not (root / "score" / _slug(_source(p, n))).exists() and _source(p, n) not in failed
    ]
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for source, error in pool.map(_convert_one, todo):
                if error:
                    failed[source] = error
    files = []
    for p, n, group in selection:
        path = root / "score" / _slug(_source(p, n))
        if path.exists():
            files.append(CorpusFile(path, "score", group, _source(p, n)))
    for source in performed:
        src = root / "score" / _slug(source)
        dest = root / "performance" / _slug(source)
        if not src.exists():
            p, _, num = source.partition("#")
            _, error = _convert_one((p, int(num) if num else None, str(src)))
            if error:
                failed[source] = error
                continue
        if not dest.exists():
            dest.write_bytes(humanize(src.read_bytes(), seed=zlib.crc32(source.encode())))
        files.append(CorpusFile(dest, "performance", "performed", source))
    manifest_path.write_text(json.dumps({"failed": failed}, indent=1, sort_keys=True))
    return files
