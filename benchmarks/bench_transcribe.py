"""Benchmark: transcription accuracy (note F1 vs the source MIDI) and throughput of the transcribe
stage vs a raw loop of `basic_pitch.inference.predict`, same files, same run.

Real MIDI (the test fixtures, plus the first N demo scores from music21's public-domain corpus with
--demo N) is rendered to audio offline: numpy additive synthesis by default, FluidSynth with a GM
soundfont with --fluidsynth (apt-get install fluidsynth timgm6mb-soundfont). Both paths transcribe
the same WAV files; F1 is mir_eval's note onset F1 (50 ms, 50 cents) against the source MIDI.

    python benchmarks/bench_transcribe.py [--demo 10] [--fluidsynth] [--workers 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "midi"
REAL = [
    "chorale_4_4.mid",
    "cut_time_2_2.mid",
    "folk_6_8.mid",
    "multitrack_tempo_change.mid",
    "waltz_3_4.mid",
]


def sources(tmp: Path, demo: int) -> list[Path]:
    out = [FIXTURES / n for n in REAL]
    if demo:
        from musicdata.demo import build_demo_corpus

        out += build_demo_corpus(tmp / "demo-midi", limit=demo, broken=False)
    return out


def render_all(midis: list[Path], folder: Path, fluidsynth: bool) -> dict[Path, Path]:
    import soundfile as sf

    from musicdata.testing.audio import render_midi, render_midi_fluidsynth

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, m in enumerate(midis):
        wav = folder / f"{i:03d}_{m.stem.replace(' ', '_')[:40]}.wav"
        if fluidsynth:
            render_midi_fluidsynth(m, wav, 22050)
        else:
            sf.write(wav, render_midi(m, 22050), 22050)
        out[wav] = m
    return out


def score(ref_midi: Path, intervals_pitches: tuple) -> dict[str, float]:
    import symusic

    from musicdata.metrics.transcription import note_arrays, note_scores

    ref_iv, ref_p = note_arrays(symusic.Score.from_midi(ref_midi.read_bytes()))
    return note_scores(ref_iv, ref_p, *intervals_pitches)


def raw_loop(wavs: list[Path]) -> tuple[float, float, dict[Path, tuple]]:
    """What a researcher writes by hand: import, load the model once, predict() each file.
    Returns (loop seconds, import + model load seconds, notes per file)."""
    import numpy as np

    t0 = time.perf_counter()
    from basic_pitch import ICASSP_2022_MODEL_PATH
    from basic_pitch.inference import Model, predict

    model = Model(ICASSP_2022_MODEL_PATH)
    load_s = time.perf_counter() - t0
    notes = {}
    t0 = time.perf_counter()
    for w in wavs:
        with contextlib.redirect_stdout(io.StringIO()):
            _, _, events = predict(str(w), model)
        iv = np.array([[e[0], e[1]] for e in events]).reshape(-1, 2)
        notes[w] = (iv, np.array([e[2] for e in events]))
    return time.perf_counter() - t0, load_s, notes


def pipeline(
    home: Path, folder: Path, workers: int, threads: int
) -> tuple[float, float, float, dict]:
    """ingest (decode, no transcription), then the transcribe stage, timed on its own."""
    import numpy as np
    import symusic

    from musicdata.metrics.transcription import note_arrays
    from musicdata.schemas.config import Config, TranscribeConfig
    from musicdata.stages.ingest import ingest_paths
    from musicdata.stages.transcribe import transcribe_pending
    from musicdata.workspace import Workspace

    tcfg = TranscribeConfig(workers=workers, threads_per_worker=threads)
    ws = Workspace(home, Config(transcribe=tcfg))
    home.mkdir(parents=True)
    t0 = time.perf_counter()
    ingest_paths(ws, [folder], run_id="bench-ingest", transcribe=False)
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = transcribe_pending(ws, run_id="bench-transcribe")
    stage_s = time.perf_counter() - t0
    assert s.transcribe_failed == 0, s
    worker_s = ws.catalog.query("SELECT sum(seconds) AS s FROM transcriptions").to_pylist()
    rows = ws.catalog.query(
        "SELECT s.path, p.blob_path FROM transcriptions t JOIN sources s "
        "ON s.sha256 = t.recording_sha256 JOIN pieces p ON p.piece_id = t.piece_id"
    ).to_pylist()
    notes = {}
    for r in rows:
        sc = symusic.Score.from_midi(ws.abspath(r["blob_path"]).read_bytes())
        notes[r["path"]] = note_arrays(sc)
    del np
    return stage_s, ingest_s, float(worker_s[0]["s"]), notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", type=int, default=10, help="demo scores to add (0: fixtures only)")
    ap.add_argument("--fluidsynth", action="store_true", help="render with FluidSynth")
    ap.add_argument("--workers", type=int, default=1, help="transcribe workers (0: per core)")
    ap.add_argument("--threads", type=int, default=0, help="TF threads per worker (0: TF's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as tmp_s:
        tmp = Path(tmp_s)
        midis = sources(tmp, args.demo)
        pairs = render_all(midis, tmp / "audio", args.fluidsynth)
        import soundfile as sf

        audio_s = sum(sf.info(str(w)).duration for w in pairs)
        wavs = sorted(pairs)
        raw_s, raw_load_s, raw_notes = raw_loop(wavs)
        stage_s, ingest_s, work_s, pipe_notes = pipeline(
            tmp / "home", tmp / "audio", args.workers, args.threads
        )
        f1_raw = [score(pairs[w], raw_notes[w])["f1"] for w in wavs]
        f1_pipe = [score(pairs[w], pipe_notes[str(w)])["f1"] for w in wavs]
        f1_off = [score(pairs[w], pipe_notes[str(w)])["f1_with_offsets"] for w in wavs]
    n = len(wavs)
    result = {
        "files": n,
        "audio_s": round(audio_s, 1),
        "renderer": "fluidsynth" if args.fluidsynth else "numpy additive synth",
        "workers x threads": f"{args.workers or 'per core'} x {args.threads or 'TF default'}",
        "raw_import_and_model_load_s": round(raw_load_s, 2),
        "raw_predict_loop_s": round(raw_s, 2),
        "pipeline_ingest_decode_s (not compared)": round(ingest_s, 2),
        "pipeline_transcribe_stage_s (all in: workers, TF import, model, catalog)": round(
            stage_s, 2
        ),
        "pipeline_worker_transcribe_s (sum per recording, incl. first model load)": round(
            work_s, 2
        ),
        "raw_audio_s_per_s (loop only)": round(audio_s / raw_s, 2),
        "pipeline_audio_s_per_s (all in)": round(audio_s / stage_s, 2),
        "all_in_ratio: (raw import+load+loop) / pipeline stage": round(
            (raw_load_s + raw_s) / stage_s, 2
        ),
        "loop_only_ratio: raw loop / pipeline stage": round(raw_s / stage_s, 2),
        "mean_f1_pipeline": round(sum(f1_pipe) / n, 3),
        "mean_f1_raw_predict": round(sum(f1_raw) / n, 3),
        "mean_f1_with_offsets_pipeline": round(sum(f1_off) / n, 3),
    }
    print(json.dumps(result, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
