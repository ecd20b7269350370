"""Benchmark: PerceiverS generation, cached vs naive (one full forward per token), same run, same
model and prompt; optionally a training step at full context and the context-scaling comparison
with a full causal transformer of the same width and depth (issue 14).

Random weights and a random prompt of `max_len` tokens: speed does not depend on the weights, and
a full prompt measures the rolling regime (the window is full and slides every step).

    python benchmarks/bench_perceivers.py --preset debug            # seconds on CPU
    python benchmarks/bench_perceivers.py --preset small            # a minute on CPU
    python benchmarks/bench_perceivers.py --device cuda --preset paper --train-steps 3
    python benchmarks/bench_perceivers.py --scaling 2048,4096,8192,16384 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicdata.models.builders import MODELS
from musicdata.models.flat import FlatConfig, FlatDecoder
from musicdata.models.perceivers import PerceiverS, PerceiverSConfig

V = 390  # the performance vocabulary


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str) -> object:
    return (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    )


def bench_generation(model: PerceiverS, args: argparse.Namespace) -> dict[str, float]:
    """Tokens/s of the cached and the naive path from the same full-window prompt."""
    cfg, dev = model.cfg, args.device
    stride = args.stride or max(1, cfg.query_len // 2)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(2, V, (1, cfg.max_len), generator=g).to(dev)
    n_cached = args.tokens or 2 * stride  # whole blocks, so the batched refills are counted
    n_naive = args.naive_tokens or max(4, min(n_cached, 32))
    out: dict[str, float] = {"stride": stride, "cached_tokens": n_cached, "naive_tokens": n_naive}
    for name, cached, n in (("cached", True, n_cached), ("naive", False, n_naive)):
        with _autocast(dev):
            model.generate(prompt, 2, stride=stride, cached=cached)  # warm-up
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            model.generate(prompt, n, stride=stride, cached=cached)
            _sync(dev)
        out[f"{name}_tokens_per_s"] = n / (time.perf_counter() - t)
        if dev == "cpu":  # CPU seconds: robust to other processes on a shared machine
            out[f"{name}_tokens_per_cpu_s"] = n / (time.process_time() - c)
    out["speedup"] = out["cached_tokens_per_s"] / out["naive_tokens_per_s"]
    if dev == "cpu":
        out["speedup_cpu_time"] = out["cached_tokens_per_cpu_s"] / out["naive_tokens_per_cpu_s"]
    if dev.startswith("cuda"):
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _train_step_time(model: torch.nn.Module, length: int, args: argparse.Namespace) -> float:
    """Seconds per training step (forward, backward, Adam) on a batch of full windows: wall
    seconds on CUDA, this process's CPU seconds on CPU (robust on a shared, loaded machine)."""
    dev = args.device
    clock = time.perf_counter if dev.startswith("cuda") else time.process_time
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    batch = {
        "tokens": torch.randint(2, V, (args.batch, length + 1), generator=g).to(dev),
        "mask": torch.ones(args.batch, length + 1, dtype=torch.bool, device=dev),
    }
    times = []
    for _ in range(args.train_steps + 1):  # the first step is warm-up
        _sync(dev)
        t = clock()
        with _autocast(dev):
            loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)
        times.append(clock() - t)
    return min(times[1:])


def bench_training(model: PerceiverS, args: argparse.Namespace) -> dict[str, float]:
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    step = _train_step_time(model.train(), model.cfg.max_len, args)
    out = {
        "train_step_s": step,
        "input_tokens_per_s": args.batch * model.cfg.max_len / step,
        "target_tokens_per_s": args.batch * model.cfg.query_len / step,
    }
    if args.device.startswith("cuda"):
        out["train_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def _scaling_point(kind: str, length: int, args: argparse.Namespace) -> dict[str, float]:
    """One (model, context) point; run in a fresh process so CPU peak RSS is its own."""
    if args.threads:
        torch.set_num_threads(args.threads)  # a spawned process starts with torch's default
    torch.manual_seed(0)
    common = {"dim": args.dim, "n_heads": args.heads, "n_layers": args.layers, "dropout": 0.0}
    if kind == "perceivers":
        q = min(args.queries, length)
        cfg = PerceiverSConfig(
            vocab_sizes=[V], max_len=length, query_len=q, scales=[None, q], **common
        )
        model: torch.nn.Module = PerceiverS(cfg)
    else:
        model = FlatDecoder(FlatConfig(vocab_sizes=[V], max_len=length, **common))
    model.to(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    step = _train_step_time(model, length, args)
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"model": kind, "context": length, "step_s": step, "peak_gib": peak}


def bench_scaling(args: argparse.Namespace) -> list[dict[str, float]]:
    rows = []
    spawn = mp.get_context("spawn")
    for length in [int(x) for x in args.scaling.split(",")]:
        for kind in ("perceivers", "full"):
            with spawn.Pool(1) as pool:
                rows.append(pool.apply(_scaling_point, (kind, length, args)))
        p, f = rows[-2], rows[-1]
        p["vs_full_step"] = p["step_s"] / f["step_s"]
        print(json.dumps(p), json.dumps(f), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="debug", choices=["debug", "small", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--context", type=int, default=0, help="override the preset's max_len")
    ap.add_argument("--stride", type=int, default=0, help="query block stride (0: query_len/2)")
    ap.add_argument("--tokens", type=int, default=0, help="cached tokens (0: two strides)")
    ap.add_argument("--naive-tokens", type=int, default=0, help="naive tokens (0: <= 32)")
    ap.add_argument("--train-steps", type=int, default=0, help="also time N training steps")
    ap.add_argument("--batch", type=int, default=1, help="training batch size")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    ap.add_argument("--scaling", default="", help="contexts for the full-transformer comparison")
    ap.add_argument("--dim", type=int, default=128, help="--scaling: width")
    ap.add_argument("--heads", type=int, default=4, help="--scaling: heads")
    ap.add_argument("--layers", type=int, default=4, help="--scaling: depth")
    ap.add_argument("--queries", type=int, default=256, help="--scaling: PerceiverS queries")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scaling:
        rows = bench_scaling(args)
        from results import save

        pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
        save(
            f"perceivers_scaling_{args.device.split(':')[0]}",
            [
                {
                    "what": f"PerceiverS vs a full causal transformer, training step at "
                    f"context {p['context']} (dim {args.dim}, {args.layers} layers, "
                    f"{args.queries} queries)",
                    "figure": f"**{p['vs_full_step']:.3f}x** ({p['step_s']:.2f} s vs "
                    f"{f['step_s']:.2f} s)",
                    "target": "<= 0.25x at 16k" if p["context"] >= 16384 else "—",
                }
                for p, f in pairs
            ],
        )
        return
    preset = dict(MODELS["perceivers"].presets[args.preset])
    if args.context:
        preset["max_len"] = args.context
    cfg = PerceiverSConfig(vocab_sizes=[V], **preset)
    torch.manual_seed(0)
    model = PerceiverS(cfg).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"preset {args.preset}: {n_params / 1e6:.1f}M parameters, context {cfg.max_len}, "
        f"{cfg.query_len} queries, scales {cfg.scales}, device {args.device}",
        flush=True,
    )
    if args.train_steps:
        print(json.dumps(bench_training(model, args)), flush=True)
    print(json.dumps(bench_generation(model.eval(), args)), flush=True)


if __name__ == "__main__":
    main()
