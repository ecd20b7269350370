"""Embedded demo corpus: real public-domain scores from music21's bundled corpus, written as MIDI.

A demo (and an offline smoke test) needs real music without network access. music21 ships a
corpus of public-domain compositions (Bach chorales, folk-song collections, quartets, madrigals);
we convert a fixed, ordered selection to MIDI so every machine builds the same bytes. Two
intentionally broken files are added so a demo run also shows quarantine at work.
"""

from __future__ import annotations

from pathlib import Path

from musicdata.fsutil import atomic_write

# output file name -> (music21 corpus path, tune number inside a multi-tune ABC file or None).
# Fixed order: `limit` takes the first N. Chosen for variety (meters 4/4, 3/4, 3/2, 2/2, 6/8, 2/4,
# meter changes, a tempo change, 1 to 5 parts) and speed (the whole list converts in < 20 s).
DEMO_WORKS: dict[str, tuple[str, int | None]] = {
    "bach_bwv66.6.mid": ("bach/bwv66.6.mxl", None),
    "bach_bwv10.7.mid": ("bach/bwv10.7.mxl", None),
    "bach_bwv26.6.mid": ("bach/bwv26.6.mxl", None),
    "bach_bwv28.6.mid": ("bach/bwv28.6.mxl", None),
    "bach_bwv38.6.mid": ("bach/bwv38.6.mxl", None),
    "bach_bwv39.7.mid": ("bach/bwv39.7.mxl", None),
    "bach_bwv4.8.mid": ("bach/bwv4.8.mxl", None),
    "bach_bwv40.6.mid": ("bach/bwv40.6.mxl", None),
    "bach_bwv227.1.mid": ("bach/bwv227.1.mxl", None),
    "bach_bwv244.3.mid": ("bach/bwv244.3.mxl", None),
    "bach_bwv244.10.mid": ("bach/bwv244.10.mxl", None),
    "bach_bwv244.15.mid": ("bach/bwv244.15.mxl", None),
    "bach_bwv244.62.mid": ("bach/bwv244.62.mxl", None),
    "bach_bwv248.5.mid": ("bach/bwv248.5.mxl", None),
    "bach_bwv253.mid": ("bach/bwv253.mxl", None),
    "bach_bwv254.mid": ("bach/bwv254.mxl", None),
    "bach_bwv255.mid": ("bach/bwv255.mxl", None),
    "bach_bwv256.mid": ("bach/bwv256.mxl", None),
    "bach_bwv257.mid": ("bach/bwv257.mxl", None),
    "bach_bwv269.mid": ("bach/bwv269.mxl", None),  # 3/4
    "bach_bwv266.mid": ("bach/bwv266.mxl", None),  # 3/4
    "bach_bwv229.2.mid": ("bach/bwv229.2.mxl", None),  # 3/4
    "bach_bwv123.6.mid": ("bach/bwv123.6.mxl", None),  # 3/2
    "bach_bwv304.mid": ("bach/bwv304.mxl", None),  # 3/4 and 4/4
    "folk_john_anderson.mid": ("essenFolksong/folkHaydn.abc", 2),  # 2/2
    "folk_todlen_hame.mid": ("essenFolksong/folkHaydn.abc", 6),  # 6/8
    "folk_a_lady_fair.mid": ("essenFolksong/irl.abc", 1),  # 3/4
    "folk_cailin_gaelach.mid": ("essenFolksong/irl.abc", 12),  # 6/8
    "folk_renmin_gongshe.mid": ("essenFolksong/han1.abc", 1),  # 2/4
    "folk_hail_to_the_chief.mid": ("miscFolk/americanfifeopus.abc", 12),  # C| (cut time)
    "folk_outlandish_knight.mid": ("miscFolk/northumbrianminstrelsyopus.abc", 9),  # 6/8, Q:3/8=72
    "folk_friars_hill.mid": ("oneills1850/0001-0050.abc", 10),  # 3/4
    "folk_bag_of_meal.mid": ("ryansMammoth/BagOfMealThe.abc", None),  # 6/8 jig
    "folk_fire_fly_reel.mid": ("ryansMammoth/FireFlyReel.abc", None),  # 2/4
    "corelli_op3no1_grave.mid": ("corelli/opus3no1/1grave.xml", None),
    "mozart_k545_mvt1_exposition.mid": ("mozart/k545/movement1_exposition.mxl", None),
    "handel_lascia_chio_pianga.mid": ("handel/rinaldo/Lascia_chio_pianga.mxl", None),
    "monteverdi_madrigal_3.2.mid": ("monteverdi/madrigal.3.2.mxl", None),  # 5 voices
    "haydn_op1no1_mvt4.mid": ("haydn/opus1no1/movement4.mxl", None),  # string quartet, 3/4
    "clara_schumann_polonaise_op1n4.mid": ("schumann_clara/polonaise_op1n4.mxl", None),  # 92->120
}

BROKEN_TRUNCATED = "broken_truncated.mid"
BROKEN_EMPTY = "broken_empty.mid"


def corpus_to_midi_bytes(corpus_path: str, number: int | None = None) -> bytes:
    """Parse one music21 corpus work and return it as Standard MIDI File bytes.

    Lyrics are dropped: music21 writes them as lyric meta events, which symusic turns into extra
    note-less tracks, so track counts would no longer match the parts of the score.
    """
    from music21 import corpus
    from music21.midi.translate import music21ObjectToMidiFile

    score = corpus.parse(corpus_path, number=number)
    for note in score.recurse().notes:
        note.lyrics = []
    return music21ObjectToMidiFile(score).writestr()


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def build_demo_corpus(dest: Path, *, limit: int | None = None, broken: bool = True) -> list[Path]:
    """Write the embedded demo corpus (real public-domain scores from music21) as MIDI into dest.

    Files already present are kept (a cache: conversion is the slow part), so reruns are cheap;
    output is deterministic, so a rebuilt file has the same bytes. Returns the sorted paths of all
    demo files in dest, written now or before.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    works = list(DEMO_WORKS.items())[:limit] if limit is not None else list(DEMO_WORKS.items())
    paths: list[Path] = []
    for name, (corpus_path, number) in works:
        out = dest / name
        if not out.exists():
            _write_bytes(out, corpus_to_midi_bytes(corpus_path, number))
        paths.append(out)
    if broken:
        paths.extend(_write_broken(dest, source=paths[0] if paths else None))
    return sorted(paths)


def _write_broken(dest: Path, source: Path | None) -> list[Path]:
    """Write files that must be quarantined: a half-length copy of a real file and an empty file."""
    written: list[Path] = []
    if source is not None:
        truncated = dest / BROKEN_TRUNCATED
        if not truncated.exists():
            data = source.read_bytes()
            _write_bytes(truncated, data[: len(data) // 2])
        written.append(truncated)
    empty = dest / BROKEN_EMPTY
    if not empty.exists():
        _write_bytes(empty, b"")
    written.append(empty)
    return written
