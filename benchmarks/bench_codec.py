"""Benchmark: EnCodec tokenization through the pipeline (`tokenize_codec`: isolated worker, chunks,
batches, shards, catalog) vs a raw loop of `model.encode` over the same files, same run.

Audio: the test-fixture MIDI (plus --demo N public-domain scores) rendered with numpy. Weights:
[codec] model_32k when available, else the untrained model with the real architecture (speed is
the same; the codes are not meaningful), which the output says.

    python benchmarks/bench_codec.py [--encoding encodec-32k] [--demo 0] [--chunk-s 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "midi"
REAL = ["chorale_4_4.mid", "cut_time_2_2.mid", "folk_6_8.mid", "waltz_3_4.mid"]


def render(folder: Path, demo: int) -> list[Path]:
    import soundfile as sf

    from musicdata.testing.audio import render_midi

    midis = [FIXTURES / n for n in REAL]
    if demo:
        from musicdata.demo import build_demo_corpus

        midis += build_demo_corpus(folder.parent / "demo-midi", limit=demo, broken=False)
    folder.mkdir(parents=True)
    out = []
    for i, m in enumerate(midis):
        wav = folder / f"{i:03d}.wav"
        sf.write(wav, render_midi(m, 44100), 44100)
        out.append(wav)
    return out


def raw_loop(wavs: list[Path], settings: object) -> tuple[float, float, dict]:
    """By hand: import, build/load the model once, then per file read, downmix, resample to the
    codec's rate and `model.encode` the whole file. Returns (loop s, setup s, codes per file)."""
    t0 = time.perf_counter()
    import torch

    from musicdata.audio.codec import load_model
    from musicdata.audio.decode import load_mono

    model = load_model(settings)  # type: ignore[arg-type]
    setup_s = time.perf_counter() - t0
    codes = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for w in wavs:
            x = torch.from_numpy(load_mono(w, settings.sample_rate))[None, None]  # type: ignore[attr-defined]
            out = model.encode(x, bandwidth=settings.bandwidth)  # type: ignore[attr-defined]
            codes[w.name] = out.audio_codes[0, 0].numpy()
    return time.perf_counter() - t0, setup_s, codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoding", default="encodec-32k", choices=["encodec-32k", "encodec-24k"])
    ap.add_argument("--demo", type=int, default=0)
    ap.add_argument("--chunk-s", type=float, default=30.0)
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()

    import numpy as np
    import soundfile as sf

    from musicdata.audio.codec import codec_settings
    from musicdata.schemas.config import CodecConfig, Config
    from musicdata.stages.codec import read_codes, tokenize_codec
    from musicdata.stages.ingest import ingest_paths
    from musicdata.workspace import Workspace

    cfg = CodecConfig(chunk_s=args.chunk_s, batch_size=args.batch_size)
    settings = codec_settings(args.encoding, cfg, allow_untrained=True)
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp_s:
        tmp = Path(tmp_s)
        wavs = render(tmp / "audio", args.demo)
        audio_s = sum(sf.info(str(w)).duration for w in wavs)
        home = tmp / "home"
        home.mkdir()
        ws = Workspace(home, Config(codec=cfg))
        ingest_paths(ws, [tmp / "audio"], run_id="bench-ingest", transcribe=False)
        t0 = time.perf_counter()
        s = tokenize_codec(ws, args.encoding, run_id="bench-codec", allow_untrained=True)
        stage_s = time.perf_counter() - t0
        rids = {
            r["path"]: r["recording_id"]
            for r in ws.catalog.query("SELECT path, recording_id FROM sources").to_pylist()
        }
        pipe = {}
        for shard in Path(s.shard_dir).rglob("*.parquet"):
            pipe.update(read_codes(shard))
        raw_s, setup_s, raw = raw_loop(wavs, settings)
    same = [
        float(np.mean(pipe[rids[str(w)]] == raw[w.name])) for w in wavs if rids.get(str(w)) in pipe
    ]
    result = {
        "encoding": args.encoding,
        "trained_weights": settings.trained,
        "files": len(wavs),
        "audio_s": round(audio_s, 1),
        "frames": s.frames,
        "tokens": s.tokens,
        "chunk_s": args.chunk_s,
        "raw_setup_s (import + model)": round(setup_s, 2),
        "raw_encode_loop_s": round(raw_s, 2),
        "pipeline_stage_s (all in: worker, import, model, shards, catalog)": round(stage_s, 2),
        "raw_audio_s_per_s (loop only)": round(audio_s / raw_s, 2),
        "pipeline_audio_s_per_s (all in)": round(audio_s / stage_s, 2),
        "all_in_ratio: (raw setup+loop) / pipeline": round((setup_s + raw_s) / stage_s, 2),
        "loop_only_ratio: raw loop / pipeline": round(raw_s / stage_s, 2),
        "codes_equal_to_raw (fraction; chunking changes codes near chunk edges)": round(
            float(np.mean(same)), 4
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
