"""Benchmark: training speed of the Nested Music Transformer vs the flat (REMI) decoder.

The NMT paper's efficiency claim (arXiv 2408.01180, SOD column): one training iteration of a flat
decoder on REMI (input length 8192) takes 0.461 s, of NB-PF + NMT (length 3072) 0.217 s, about
2.1x faster, because a note is one compound token instead of ~3 flat tokens. This script measures
the same run in one process: forward + backward + AdamW step on random token ids drawn from the
real vocabularies (musicdata's nb-pf / nb-mf / cp / remi tokenizers), every run the same batch
size and steps. No thresholds: it prints what it measures.

CPU (default): lengths scaled down keeping the paper's 3072:8192 ratio (384:1024); the flat model's
depth/width is tuned so its parameter count is within 5% of the NMT model's (equal-size race).
GPU: `--device cuda --preset paper` runs the paper's sizes (builders' "paper" presets, batch 8,
bf16 autocast; the flat decoder at the paper's 512x6, not matched, unless --match) for
NB-PF+NMT, NB-MF+NMT, NB-MF+parallel, CP+NMT and REMI flat and reports s/iteration, tokens/s
and peak memory (the paper's table: 0.217/0.215/0.123/0.224/0.461 s/it,
16.1/16.1/8.4/16.1/19.9 GB).

    python benchmarks/bench_nmt.py [--steps 10] [--batch 4] [--nb-len 384] [--remi-len 1024]
    python benchmarks/bench_nmt.py --all            # the five runs at CPU scale
    python benchmarks/bench_nmt.py --device cuda --preset paper --steps 100 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicdata.models.builders import build_config
from musicdata.models.flat import FlatDecoder
from musicdata.models.nmt import NestedMusicTransformer
from musicdata.schemas.manifest import ShardManifest

PAPER_S_PER_IT = {
    "nb-pf+nmt": 0.217,
    "nb-mf+nmt": 0.215,
    "nb-mf+parallel": 0.123,
    "cp+nmt": 0.224,
    "remi+flat": 0.461,
}
PAPER_GB = {
    "nb-pf+nmt": 16.1,
    "nb-mf+nmt": 16.1,
    "nb-mf+parallel": 8.4,
    "cp+nmt": 16.1,
    "remi+flat": 19.9,
}


@dataclass
class Run:
    name: str  # "nb-pf+nmt"
    encoding: str
    model: str  # "nmt" | "flat"
    length: int  # input window (tokens per sequence)
    overrides: dict


def manifest(encoding: str) -> ShardManifest:
    """A file-less manifest with the real tokenizer's vocabulary sizes."""
    from musicdata.encodings import get_encoding

    enc = get_encoding(encoding)
    if enc.kind == "flat":
        return ShardManifest(encoding, enc.config_hash, "flat", ["token"], [enc.vocab_size], 0, [])
    return ShardManifest(
        encoding, enc.config_hash, "compound", enc.sub_tokens, enc.sub_vocab_sizes, 0, []
    )


def make_model(run: Run, preset: str, extra: dict) -> torch.nn.Module:
    cfg = build_config(
        run.model,
        preset,
        manifest(run.encoding),
        **{**run.overrides, **extra, "max_len": run.length},
    )
    return (NestedMusicTransformer if run.model == "nmt" else FlatDecoder)(cfg)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def match_flat(target: int, run: Run, preset: str, dim: int, n_heads: int) -> dict:
    """Flat width/depth with a parameter count within 5% of `target`, as close to the NMT's
    width as possible (then the smallest error): the same kind of network, just deeper."""
    cands = []
    for d in range(max(n_heads * 8, dim - 64), dim + 65, n_heads * 2):
        with torch.device("meta"):  # params = base + layers * per_layer: two builds per width
            one, two = (
                n_params(make_model(run, preset, {"dim": d, "n_heads": n_heads, "n_layers": n}))
                for n in (1, 2)
            )
        for layers in range(1, 25):
            err = abs(one + (layers - 1) * (two - one) - target) / target
            cands.append((err > 0.05, abs(d - dim), err, d, layers))
    _, _, _, d, layers = min(cands)
    return {"dim": d, "n_heads": n_heads, "n_layers": layers}


def random_batch(model: torch.nn.Module, batch: int, length: int, device: str) -> dict:
    """Random real-vocabulary ids (never PAD), window + 1 tokens, all real."""
    cols = [torch.randint(1, v, (batch, length + 1)) for v in model.cfg.vocab_sizes]
    tokens = cols[0] if isinstance(model, FlatDecoder) else torch.stack(cols, dim=-1)
    mask = torch.ones(batch, length + 1, dtype=torch.bool)
    return {"tokens": tokens.to(device), "mask": mask.to(device)}


def train_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, device: str
) -> tuple[float, float]:
    """One forward + backward + clip + AdamW step (bf16 autocast on CUDA): (seconds, loss)."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        loss, _ = model.loss(batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, float(loss.detach())


def time_runs(
    jobs: list[tuple[torch.nn.Module, dict]], steps: int, warmup: int, device: str
) -> list[dict]:
    """Median s/iteration per job. CPU: the jobs take turns step by step, so a busy shared machine
    slows them alike; CUDA: one after another (peak memory per job)."""
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-4) for m, _ in jobs]
    times: list[list[float]] = [[] for _ in jobs]
    losses = [0.0] * len(jobs)
    order = [(i, s) for s in range(warmup + steps) for i in range(len(jobs))]
    if device == "cuda":
        order = sorted(order)
    peaks = [0.0] * len(jobs)
    for j, (i, s) in enumerate(order):
        model, batch = jobs[i]
        if device == "cuda" and s == 0:
            if j:  # free the previous job (weights, grads, AdamW state) before this one starts
                opts[i - 1].state.clear()
                jobs[i - 1][0].zero_grad(set_to_none=True)
                jobs[i - 1][0].cpu()
                torch.cuda.empty_cache()
            model.to(device)
            torch.cuda.reset_peak_memory_stats()
        dt, losses[i] = train_step(model, opts[i], batch, device)
        if s >= warmup:
            times[i].append(dt)
        if device == "cuda" and s == warmup + steps - 1:
            peaks[i] = torch.cuda.max_memory_allocated() / 1e9
    out = []
    for i, (_, batch) in enumerate(jobs):
        s_it = statistics.median(times[i])
        tokens = batch["tokens"].shape[0] * (batch["tokens"].shape[1] - 1)
        res = {
            "s_per_it": s_it,
            "s_per_it_mean": statistics.fmean(times[i]),
            "tokens_per_s": tokens / s_it,
            "final_loss": losses[i],
        }
        if device == "cuda":
            res["peak_gb"] = peaks[i]
        out.append(res)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="small", help="builders preset for the model sizes")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="default: 8 paper, 4 otherwise")
    ap.add_argument("--nb-len", type=int, default=None, help="NB/CP window (paper 3072)")
    ap.add_argument("--remi-len", type=int, default=None, help="REMI window (paper 8192)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (a shared box: 1)")
    ap.add_argument("--all", action="store_true", help="the paper's five runs, not just two")
    ap.add_argument(
        "--match",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tune the flat model to the NMT's parameter count (default: on, except for "
        "--preset paper, which runs the paper's own flat decoder: same 512x6 main decoder)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    paper = args.preset == "paper"
    batch = args.batch or (8 if paper else 4)
    nb_len = args.nb_len or (3072 if paper else 384)
    remi_len = args.remi_len or (8192 if paper else 1024)
    match = args.match if args.match is not None else not paper
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runs = [Run("nb-pf+nmt", "nb-pf", "nmt", nb_len, {})]
    if args.all or paper:
        runs += [
            Run("nb-mf+nmt", "nb-mf", "nmt", nb_len, {}),
            Run(
                "nb-mf+parallel",
                "nb-mf",
                "nmt",
                nb_len,
                {"sub_decoder": "parallel", "enricher": False},
            ),
            Run("cp+nmt", "cp", "nmt", nb_len, {}),  # CP at the NB length (an assumption)
        ]
    runs.append(Run("remi+flat", "remi", "flat", remi_len, {}))

    jobs, infos = [], []
    nmt_params = None
    for run in runs:
        extra: dict = {}
        if run.model == "flat" and nmt_params is not None and match:
            ref = build_config("nmt", args.preset, manifest("nb-pf"))
            extra = match_flat(nmt_params, run, args.preset, ref.dim, ref.n_heads)
        model = make_model(run, args.preset, extra)
        params = n_params(model)
        if run.name == "nb-pf+nmt":
            nmt_params = params
        if args.device != "cuda":
            model.to(args.device)
        jobs.append((model, random_batch(model, batch, run.length, args.device)))
        infos.append(
            {
                "run": run.name,
                "length": run.length,
                "batch": batch,
                "params": params,
                "dim": model.cfg.dim,
                "n_layers": model.cfg.n_layers,
                "paper_s_per_it": PAPER_S_PER_IT[run.name],
                "paper_peak_gb": PAPER_GB[run.name],
            }
        )
    timed = time_runs(jobs, args.steps, args.warmup, args.device)
    results = [{**info, **res} for info, res in zip(infos, timed, strict=True)]

    by = {r["run"]: r for r in results}
    ratio = by["remi+flat"]["s_per_it"] / by["nb-pf+nmt"]["s_per_it"]
    summary = {
        "device": args.device,
        "preset": args.preset,
        "steps": args.steps,
        "threads": torch.get_num_threads() if args.device == "cpu" else None,
        "flat_matched_to_nmt_params": match,
        "results": results,
        "flat_over_nmt_s_per_it": ratio,
        "paper_ratio": 0.461 / 0.217,
    }
    from results import save

    save(
        f"nmt_speed_{args.device.split(':')[0]}_{args.preset}",
        [
            {
                "what": f"training s/iteration, flat decoder on REMI vs NMT on NB-PF, equal "
                f"parameters ({args.device}, {args.preset}; lengths "
                f"{by['remi+flat']['length']}:{by['nb-pf+nmt']['length']})",
                "figure": f"**{ratio:.2f}x** ({by['remi+flat']['s_per_it']:.3f} vs "
                f"{by['nb-pf+nmt']['s_per_it']:.3f} s/it; paper 2.12x on GPU)",
                "target": ">= 2x",
            }
        ],
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"device={args.device} preset={args.preset} batch={batch} steps={args.steps} "
        f"(median s/it after {args.warmup} warm-up); flat matched to NMT params: {match}"
    )
    head = f"{'run':16} {'len':>5} {'dim':>4} {'L':>2} {'params':>10} {'s/it':>7} {'tok/s':>9}"
    head += f" {'peak GB':>8} {'paper s/it':>10}"
    print(head)
    for r in results:
        peak = f"{r['peak_gb']:.1f}" if "peak_gb" in r else "-"
        print(
            f"{r['run']:16} {r['length']:5d} {r['dim']:4d} {r['n_layers']:2d} {r['params']:10,d} "
            f"{r['s_per_it']:7.3f} {r['tokens_per_s']:9.0f} {peak:>8} {r['paper_s_per_it']:10.3f}"
        )
    print(f"flat REMI / NB-PF+NMT s/it: {ratio:.2f}x (paper: {0.461 / 0.217:.2f}x)")


if __name__ == "__main__":
    main()
