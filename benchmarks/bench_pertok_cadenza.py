"""PerTok in the Cadenza configuration vs REMI at equal timing precision: length and vocabulary.

Cadenza (Lenz & Mani 2024, arXiv 2410.02060) claims PerTok cuts sequence length by up to 59% and
vocabulary by up to 95%. Its configuration, as PerTok's authors document it in MidiTok's PerTok
docstring (the paper gives no table of settings): one track (its program written once), 320 ticks
per quarter, time shifts and durations on 16ths and triplets up to 4 quarters, 30 MicroTiming bins
within +-1/8 quarter, velocities, time signatures (Bar tokens), no tempo or chord tokens. (That
docstring writes `{(0, 4): 4, (0, 4): 3}`, which Python reads as triplets only; both grids are
meant, so 16ths to 4 and triplets to 3 quarters here.)

Equal timing precision: PerTok places an onset to 1/8 / 15 = 1/120 quarter (one MicroTiming bin);
REMI does that with 120 positions per beat (`remi-120`). `remi-12` (16ths and triplets: PerTok's
grid without microtiming) is the score-level reference. Every file is merged into one track
first (Cadenza models single-instrument ideas), for all three.

The files are expressive in timing but not human: ~/.cache/musicdata/chorales-humanized (real Bach
chorales rendered as simulated piano performances: rubato, jitter, dynamics, pedal) and the
`performance/` set of musicdata.testing.corpus (real scores humanized: 12 ms onset jitter,
articulation, legato overlaps). No MAESTRO recording is available offline.

    python benchmarks/bench_pertok_cadenza.py [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path.home() / ".cache" / "musicdata"
FOLDERS = (CACHE / "chorales-humanized" / "seed0", CACHE / "music21-10.5.1" / "performance")

COMMON: dict[str, Any] = {
    "pitch_range": (21, 109),
    "special_tokens": ["PAD", "BOS", "EOS", "MASK"],
    # one track in one stream; `program_changes` writes its program once, not before each note
    # (musicdata's PerTok decoder reads one stream)
    "use_programs": True,
    "one_token_stream_for_programs": True,
    "program_changes": True,
    "use_time_signatures": True,
    "use_tempos": False,
    "use_chords": False,
    "use_rests": False,
    "num_velocities": 32,
}
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "pertok-cadenza": (
        "PerTok",
        {
            **COMMON,
            "beat_res": {(0, 4): 4, (0, 3): 3},
            "use_microtiming": True,
            "ticks_per_quarter": 320,
            "max_microtiming_shift": 0.125,
            "num_microtiming_bins": 30,
        },
    ),
    "remi-120": ("REMI", {**COMMON, "beat_res": {(0, 4): 120, (4, 12): 4}}),
    "remi-12": ("REMI", {**COMMON, "beat_res": {(0, 4): 12, (4, 12): 4}}),
}


def tokenizer(name: str) -> Any:
    import miditok

    if name == "pertok-cadenza":  # with musicdata's fixes to MidiTok's PerTok (pertok.py)
        from musicdata.encodings.pertok_tokenizer import PerTokTokenizer as cls
    else:
        cls = getattr(miditok, CONFIGS[name][0])
    return cls(miditok.TokenizerConfig(**CONFIGS[name][1]))


def one_track(path: Path) -> Any:
    """The file as one track (Cadenza's single-instrument setting)."""
    import symusic

    score = symusic.Score(str(path))
    track = symusic.Track(program=0, name="all")
    for t in score.tracks:
        track.notes.extend(t.notes)
    track.notes.sort(key=lambda n: (n.time, n.pitch))
    score.tracks = [track]
    return score


def onset_error_ms(src: Any, dec: Any) -> float:
    """Mean |onset error| in ms, notes paired in order within each pitch (both in seconds)."""
    a, b = src.to("second"), dec.to("second")
    errs = []
    for p in range(128):
        x = np.sort([n.time for t in a.tracks for n in t.notes if n.pitch == p])
        y = np.sort([n.time for t in b.tracks for n in t.notes if n.pitch == p])
        k = min(len(x), len(y))
        errs.extend(np.abs(x[:k] - y[:k]).tolist())
    return 1000.0 * float(np.mean(errs)) if errs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="at most N files per folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = []
    for folder in FOLDERS:
        found = sorted(folder.glob("*.mid"))
        files += found[: args.limit] if args.limit else found
    if not files:
        print(f"no files in {', '.join(map(str, FOLDERS))}; see this script's docstring")
        return 1
    toks = {name: tokenizer(name) for name in CONFIGS}
    rows = []
    for path in files:
        score = one_track(path)
        row: dict[str, Any] = {"file": path.name, "notes": score.note_num()}
        for name, tok in toks.items():
            seq = tok.encode(score)
            row[name] = len(seq.ids)
            row[f"{name}_ms"] = onset_error_ms(score, tok.decode(seq))
        rows.append(row)
    print(
        f"{len(rows)} files (humanized real scores, one track each), "
        f"{sum(r['notes'] for r in rows)} notes"
    )
    print(
        f"{'config':<16}{'vocab':>8}{'tokens':>10}{'tok/note':>10}{'vs remi-120':>13}"
        f"{'vs remi-12':>12}{'onset err ms':>14}"
    )
    total = {n: sum(r[n] for r in rows) for n in CONFIGS}
    for name, tok in toks.items():
        ratio = [r[name] / r["remi-120"] for r in rows]
        ratio12 = [r[name] / r["remi-12"] for r in rows]
        ms = statistics.mean(r[f"{name}_ms"] for r in rows)
        print(
            f"{name:<16}{len(tok):>8}{total[name]:>10}"
            f"{total[name] / sum(r['notes'] for r in rows):>10.2f}"
            f"{statistics.median(ratio):>13.3f}{statistics.median(ratio12):>12.3f}{ms:>14.2f}"
        )
    print("(vs columns: median per-file length ratio)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
