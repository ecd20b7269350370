"""Real-derived MIDI corpora of any size, for the end-to-end and scale benchmarks.

Every file is a real public-domain piece, transposed (-5..+5 semitones) and, past the first
eleven variants of each source, cut into 8-bar excerpts starting at successive quarter notes. So
every file is distinct music (its notes differ; no exact or near duplicate) made from real scores
with their real meters, voicings and tempo maps, as many as asked, written one at a time (the
corpus is never held in memory).

Sources, first found wins: the 349 Bach chorales converted by `exp_nmt_chorales.py`
(`~/.cache/musicdata/chorales`) plus music21's converted selection
(`~/.cache/musicdata/music21-*/score`), else the repository's real test fixtures.

    python benchmarks/derived.py DEST --files 1000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "midi"
FIXTURE_REAL = [
    "chorale_4_4.mid",
    "cut_time_2_2.mid",
    "folk_6_8.mid",
    "multitrack_tempo_change.mid",
    "waltz_3_4.mid",
]
SHIFTS = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5]
EXCERPT_QUARTERS = 32  # 8 bars of 4/4
MIN_NOTES = 16
PER_FOLDER = 1000


def source_files() -> list[Path]:
    """The real MIDI files variants are made from (sorted, so corpora are reproducible)."""
    cache = Path(os.environ.get("MUSICDATA_CACHE", Path.home() / ".cache" / "musicdata"))
    found = sorted((cache / "chorales").glob("*.mid"))
    for score_dir in sorted(cache.glob("music21-*/score")):
        found += sorted(score_dir.glob("*.mid"))
    return found or [FIXTURES / name for name in FIXTURE_REAL]


def _variants(n_sources: int) -> Iterator[tuple[int, int, int]]:
    """(source index, semitone shift, excerpt start in quarters; -1 = the whole piece)."""
    j = 0
    while True:
        shift = SHIFTS[j % len(SHIFTS)]
        start = -1 if j < len(SHIFTS) else j // len(SHIFTS) - 1
        for src in range(n_sources):
            yield src, shift, start
        j += 1


def _notes_key(score: object) -> bytes:
    parts = []
    for track in score.tracks:  # type: ignore[attr-defined]
        n = track.notes.numpy()
        parts.append(n["time"].tobytes() + n["pitch"].tobytes() + n["duration"].tobytes())
    return hashlib.sha256(b"|".join(parts)).digest()


def derive(dest: Path, files: int, sources: list[Path] | None = None) -> Iterator[Path]:
    """Write `files` distinct real-derived MIDI files under dest/<nnn>/ (1,000 per folder) and
    yield each path; files already there from an earlier call are kept (a cache)."""
    import symusic

    sources = sources or source_files()
    scores: dict[int, object] = {}  # parsed sources only (a few MB), never the derived corpus
    seen: set[bytes] = set()  # 32 bytes per file: dedup without holding any music
    written = 0
    for src, shift, start in _variants(len(sources)):
        if written >= files:
            return
        if src not in scores:
            scores[src] = symusic.Score.from_file(str(sources[src]))
        score = scores[src].copy()  # type: ignore[attr-defined]
        if start >= 0:
            tpq = score.ticks_per_quarter
            if (start + 4) * tpq >= score.end():
                continue  # an excerpt past the end would be a sliver
            score = score.clip(start * tpq, (start + EXCERPT_QUARTERS) * tpq, clip_end=False)
            score = score.shift_time(-start * tpq)
        if score.note_num() < MIN_NOTES:
            continue
        pitches = [p for t in score.tracks for p in t.notes.numpy()["pitch"].tolist()]
        if min(pitches) + shift < 0 or max(pitches) + shift > 127:
            continue
        score = score.shift_pitch(shift)
        key = _notes_key(score)
        if key in seen:
            continue
        seen.add(key)
        tag = f"t{shift:+d}" + (f"_x{start}" if start >= 0 else "")
        path = dest / f"{written // PER_FOLDER:03d}" / f"{sources[src].stem}_{tag}.mid"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            score.dump_midi(str(tmp))
            tmp.replace(path)
        written += 1
        yield path
    return


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    n = sum(1 for _ in derive(args.dest, args.files))
    print(f"{n} real-derived MIDI files under {args.dest} ({len(source_files())} sources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
