"""Strict round-trip fidelity of every encoding on real music, and why notes are lost.

Runs each encoding over a real corpus: by default a fixed selection of music21's bundled corpus
(quartets, madrigals, chorales, folk, long multi-movement pieces, meter changes) converted to MIDI
once and cached (musicdata.testing.corpus), plus simulated performances made from real scores;
or any folder of MIDI files. Prints, per kind of file and encoding: pieces, notes, notes recovered
under the strict measure (musicdata.encodings.fidelity), onset error in ms (p50/p95/mean over the
notes found at their onset), the encoding's lossless flag, and the count of lost notes per reason.
Asserts nothing; takes minutes the first time (conversion), about a minute after.

    python benchmarks/bench_fidelity.py [--encodings remi octuple ...] [--kind score|performance]
                                        [--folder DIR] [--json out.json] [--workers 2]
                                        [--normalize] [--limit N] [--demo]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def run_encoding(args: tuple[str, list[tuple[str, str]], bool]) -> dict:
    """One encoding over (kind, path) files -> aggregate per kind."""
    import symusic

    from musicdata.encodings import EncodingError, get_encoding
    from musicdata.encodings.fidelity import measure_detail, score_notes

    name, files, normalize = args
    enc = get_encoding(name)
    out: dict[str, dict] = {}
    for kind, path in files:
        agg = out.setdefault(
            kind,
            {"pieces": 0, "failed": 0, "notes": 0, "recovered": 0, "tokens": 0, "errors": []},
        )
        agg.setdefault("lost", Counter())
        agg.setdefault("onset_ms", [])
        agg.setdefault("seconds", 0.0)
        t0 = time.perf_counter()
        score = symusic.Score.from_midi(Path(path).read_bytes())
        if normalize:
            from musicdata.encodings.normalize import normalize_notes

            score, _ = normalize_notes(score)
        try:
            tokens = enc.encode(score)
        except (EncodingError, KeyError, ValueError, IndexError, RuntimeError) as exc:
            notes = len(score_notes(score))
            agg["failed"] += 1
            agg["notes"] += notes
            agg["lost"]["unencodable"] += notes
            agg["errors"].append(f"{Path(path).name}: {type(exc).__name__}: {exc}"[:160])
            continue
        cmp = measure_detail(enc, score, tokens)
        f = cmp.fidelity
        agg["pieces"] += 1
        agg["notes"] += f.notes
        agg["recovered"] += f.recovered
        agg["tokens"] += len(tokens)
        agg["lost"].update(f.lost)
        agg["onset_ms"].extend(cmp.onset_err_ms.tolist())
        agg["seconds"] += time.perf_counter() - t0
        if f.error:
            agg["errors"].append(f"{Path(path).name}: {f.error}"[:160])
    for agg in out.values():
        ms = np.asarray(agg.pop("onset_ms"))
        agg["onset_ms_p50"] = float(np.percentile(ms, 50)) if len(ms) else None
        agg["onset_ms_p95"] = float(np.percentile(ms, 95)) if len(ms) else None
        agg["onset_ms_mean"] = float(ms.mean()) if len(ms) else None
        agg["lost"] = dict(agg["lost"])
    return {"encoding": name, "lossless": enc.lossless, "version": enc.version, "kinds": out}


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_tables(results: list[dict]) -> None:
    kinds = sorted({k for r in results for k in r["kinds"]})
    for kind in kinds:
        print(f"\n## {kind}\n")
        print(
            "| encoding | lossless | pieces | failed | notes | recovered | strict fidelity "
            "| onset ms p50 | p95 | mean | tokens | lost notes by reason |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            a = r["kinds"].get(kind)
            if a is None:
                continue
            ratio = a["recovered"] / a["notes"] if a["notes"] else 1.0
            lost = ", ".join(f"{k} {v}" for k, v in sorted(a["lost"].items(), key=lambda x: -x[1]))
            print(
                f"| {r['encoding']} | {'yes' if r['lossless'] else 'no'} | {a['pieces']} "
                f"| {a['failed']} | {a['notes']} | {a['recovered']} | {ratio:.4f} "
                f"| {_fmt(a['onset_ms_p50'], 2)} | {_fmt(a['onset_ms_p95'], 2)} "
                f"| {_fmt(a['onset_ms_mean'], 2)} | {a['tokens']} | {lost or '-'} |"
            )
        for r in results:
            a = r["kinds"].get(kind)
            for err in (a or {}).get("errors", [])[:5]:
                print(f"  {r['encoding']}: {err}")


def main() -> None:
    from musicdata.encodings import REGISTRY

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encodings", nargs="*", default=sorted(REGISTRY))
    ap.add_argument("--kind", choices=["score", "performance", "all"], default="all")
    ap.add_argument("--folder", type=Path, help="a folder of MIDI files instead of music21's")
    ap.add_argument("--demo", action="store_true", help="the demo corpus (musicdata.demo)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many files per kind")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--normalize",
        action="store_true",
        help="trim re-struck notes and cap durations first (musicdata.encodings.normalize)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--save",
        metavar="NAME",
        help="save one row per encoding and kind to benchmarks/results/NAME.json (README table)",
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.demo:
        from musicdata.demo import build_demo_corpus
        from musicdata.testing.corpus import cache_root

        paths = build_demo_corpus(cache_root() / "demo", broken=False)
        files = [("demo", str(p)) for p in paths]
    elif args.folder:
        paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in {".mid", ".midi"})
        files = [(args.folder.name, str(p)) for p in paths]
    else:
        from musicdata.testing.corpus import build, cache_root

        corpus = build(workers=2)
        print(f"corpus: {cache_root()} ({len(corpus)} files, {time.perf_counter() - t0:.0f} s)")
        files = [(f.kind, str(f.path)) for f in corpus if args.kind in ("all", f.kind)]
    if args.limit:
        per: Counter = Counter()
        keep = []
        for kind, p in files:
            per[kind] += 1
            if per[kind] <= args.limit:
                keep.append((kind, p))
        files = keep
    jobs = [(name, files, args.normalize) for name in args.encodings]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(run_encoding, jobs))
    else:
        results = [run_encoding(j) for j in jobs]
    print_tables(results)
    print(f"\n{len(files)} files x {len(jobs)} encodings in {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.save:
        from results import save

        save(args.save, result_rows(results, normalized=args.normalize))


def result_rows(results: list[dict], *, normalized: bool) -> list[dict]:
    """One table row per encoding: strict recovery (the first kind, e.g. scores, is the figure
    judged against 99.5% for the encodings that claim to be lossless; the lossy ones by design
    are reported without a target), the other kinds alongside."""
    rows = []
    how = "normalized (trim-overlaps)" if normalized else "as written"
    for r in results:
        parts = []
        for kind, a in sorted(r["kinds"].items(), key=lambda kv: kv[0] != "score"):
            ratio = a["recovered"] / a["notes"] if a["notes"] else 1.0
            top = sorted(a["lost"].items(), key=lambda x: -x[1])[:3]
            lost = ", ".join(f"{k} {v}" for k, v in top) or "none"
            num = f"**{ratio:.4f}**" if not parts else f"{ratio:.4f}"
            parts.append(
                f"{num} on {a['pieces'] + a['failed']} {kind} files ({a['notes']:,} notes; "
                f"onset error {_fmt(a['onset_ms_mean'], 1)} ms; lost: {lost})"
            )
        rows.append(
            {
                "what": f"strict round-trip fidelity `{r['encoding']}`, real files, {how}",
                "figure": "; ".join(parts),
                "target": ">= 0.995" if r["lossless"] else "— (lossy by design)",
            }
        )
    return rows


if __name__ == "__main__":
    main()
