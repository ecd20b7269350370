"""The evaluate and generate stages: a train run's checkpoint -> NLL rows / generated MIDI.

Drivers on the stage kit; the model side (`models.api`, passed in) computes, this process
records. Evaluate: mean NLL, bits per token, perplexity and NLL per sub-token on a split, keyed by
(checkpoint, split, settings) so a rerun records nothing twice; lineage checkpoint -> eval.
Generate: N samples decoded back to MIDI through the encoding's own decoder, written atomically
under `generated/<train run>/`, recorded in `generations` with lineage checkpoint -> generated
piece, so `musicdata metrics <test MIDI> <that folder>` compares them with the test split.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from musicdata.catalog import training as sql
from musicdata.fsutil import atomic_write, sha256_file
from musicdata.stages.kit import Summary, stage_run
from musicdata.store.manifest import build_manifest, vocab_strings
from musicdata.workspace import Workspace

GENERATED_DIR = "generated"


class ModelSide(Protocol):
    def evaluate(self, checkpoint: Any, manifest: Any, split: str, **kw: Any) -> dict: ...

    def generate(self, checkpoint: Any, n: int, max_new_tokens: int, **kw: Any) -> list: ...


def checkpoint_of(ws: Workspace, train_run_id: str, checkpoint: str | None) -> tuple[dict, dict]:
    """(train run row, checkpoint row): the named checkpoint, else the run's newest."""
    with ws.catalog.read() as con:
        run = sql.train_run(con, train_run_id)
        ckpts = sql.checkpoints(con, train_run_id) if run else []
        runs = sql.train_run_ids(con)[:5]
    if run is None:
        msg = f"no train run {train_run_id!r} in {ws.catalog_path}; recent ones: {runs or 'none'}"
        raise ValueError(msg)
    chosen = [c for c in ckpts if checkpoint in (None, c["checkpoint_id"])]
    if not chosen:
        have = ", ".join(c["checkpoint_id"] for c in ckpts) or "none (did training finish?)"
        msg = f"train run {train_run_id}: no checkpoint {checkpoint or ''}; checkpoints: {have}"
        raise ValueError(msg)
    ckpt = chosen[0]
    path = ws.abspath(ckpt["path"])
    if not path.exists() or sha256_file(path) != ckpt["file_sha256"]:
        msg = f"checkpoint {ckpt['checkpoint_id']}: {path} is missing or changed since recorded"
        raise ValueError(msg)
    return run, ckpt


def evaluate(
    ws: Workspace,
    side: ModelSide,
    train_run_id: str,
    *,
    split: str = "test",
    checkpoint: str | None = None,
    batch_size: int = 8,
    max_batches: int | None = None,
    run_id: str | None = None,
) -> Summary:
    """NLL of a train run's checkpoint on a split of the data it was trained from."""
    run, ckpt = checkpoint_of(ws, train_run_id, checkpoint)
    manifest, _ = build_manifest(ws, run["encoding"], run["encoding_config_hash"])
    settings = {"split": split, "batch_size": batch_size, "max_batches": max_batches}
    key = json.dumps([ckpt["checkpoint_id"], settings], sort_keys=True)
    eval_id = "eval-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    run_id = run_id or f"evaluate:{eval_id}"
    info = {
        "train_run_id": train_run_id,
        "checkpoint_id": ckpt["checkpoint_id"],
        "eval_id": eval_id,
    }
    with stage_run(ws, "evaluate", run_id, keys=("recorded",), info=info) as summary:
        res = side.evaluate(
            ws.abspath(ckpt["path"]),
            manifest,
            split,
            batch_size=batch_size,
            max_batches=max_batches,
        )
        values = {
            "nll": res["mean_nll"],
            "bits_per_token": res["bits_per_token"],
            "perplexity": res["perplexity"],
            **{f"nll/{k}": v for k, v in res["sub_token_nll"].items()},
        }
        values = {k: v for k, v in values.items() if v == v}  # a head with no targets: NaN
        detail = {**settings, "tokens": res["tokens"], "manifest_hash": manifest.hash}
        with ws.catalog.write() as con:
            new = sql.record_eval(
                con, eval_id, ckpt["checkpoint_id"], split, values, detail, run_id
            )
        summary.add("recorded", int(new))
        summary.info.update(
            split=split, tokens=res["tokens"], **{k: round(v, 5) for k, v in values.items()}
        )
    return summary


def generate(
    ws: Workspace,
    side: ModelSide,
    train_run_id: str,
    *,
    n: int = 4,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    checkpoint: str | None = None,
    run_id: str | None = None,
) -> Summary:
    """Sample `n` pieces from a checkpoint and write them as MIDI (codec models: .npy codes)."""
    run, ckpt = checkpoint_of(ws, train_run_id, checkpoint)
    params = {
        "n": n,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
    }
    phash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    out_rel = f"{GENERATED_DIR}/{train_run_id}/{ckpt['checkpoint_id'].split(':')[-1]}-{phash}"
    run_id = run_id or f"generate:{train_run_id}:{phash}"
    info = {
        "train_run_id": train_run_id,
        "checkpoint_id": ckpt["checkpoint_id"],
        "out_dir": str(ws.abspath(out_rel)),
    }
    with stage_run(ws, "generate", run_id, keys=("generated", "undecodable"), info=info) as summary:
        samples = side.generate(
            ws.abspath(ckpt["path"]),
            n,
            max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
        )
        rows = [
            write_sample(ws, run, ckpt, out_rel, i, tokens, params, run_id)
            for i, tokens in enumerate(samples)
        ]
        with ws.catalog.write() as con:
            sql.record_generations(con, rows, run_id)
        for r in rows:
            summary.add("generated" if r["error"] is None else "undecodable")
    return summary


def write_sample(
    ws: Workspace,
    run: dict,
    ckpt: dict,
    out_rel: str,
    i: int,
    tokens: np.ndarray,
    params: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Decode one sample with the encoding it was trained on and write it atomically."""
    from musicdata.datasets import resolve_config
    from musicdata.encodings import get_encoding

    cfg = resolve_config(ws.catalog, run["encoding"], run["encoding_config_hash"])
    row: dict[str, Any] = {
        "generation_id": f"gen-{ckpt['checkpoint_id']}-{Path(out_rel).name}-{i:03d}",
        "checkpoint_id": ckpt["checkpoint_id"],
        "train_run_id": run["train_run_id"],
        "sample_index": i,
        "path": None,
        "sha256": None,
        "n_tokens": len(tokens),
        "n_notes": None,
        "error": None,
        "params_json": json.dumps(params, sort_keys=True),
        "run_id": run_id,
        "created_at": sql.now(),
    }
    if cfg.kind == "codec":  # codes, not MIDI: decoding audio needs the codec's weights
        rel = f"{out_rel}/sample-{i:03d}.npy"
        atomic_write(ws.abspath(rel), lambda tmp: np.save(tmp.open("wb"), tokens.T))
    else:
        names = vocab_strings(cfg.encoding, cfg.params)
        try:
            score = _decode(get_encoding(cfg.encoding, cfg.params), tokens, names)
            n_notes = sum(len(t.notes) for t in score.tracks)
        except Exception as exc:  # noqa: BLE001 - a model's tokens that do not decode are data
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            return row
        rel = f"{out_rel}/sample-{i:03d}.mid"
        atomic_write(ws.abspath(rel), lambda tmp: score.dump_midi(str(tmp)))
        row["n_notes"] = n_notes
    row["path"] = rel
    row["sha256"] = sha256_file(ws.abspath(rel))
    return row


def _decode(enc: Any, tokens: np.ndarray, names: list[list[str]]) -> Any:
    """Decode sampled tokens: specials and everything after the end token dropped; if the
    sequence still does not decode (an undertrained model's odd combination), the longest
    prefix that does (binary search, so a few decodes), else the first error is raised."""
    arr = _strip_specials(tokens, names)
    try:
        return enc.decode(arr)
    except Exception:
        lo, hi, best = 1, len(arr) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            try:
                best, lo = enc.decode(arr[:mid]), mid + 1
            except Exception:  # noqa: BLE001
                hi = mid - 1
        if best is None:
            raise
        return best


def _strip_specials(tokens: np.ndarray, names: list[list[str]]) -> np.ndarray:
    """Drop the start token, any step with a PAD/BOS/SOS/MASK sub-token, and everything from the
    first end-of-sequence on (MidiTok's "EOS_None", NB's "Type_EOS", `performance`'s "EOS",
    which also serves as its start token)."""
    arr = np.asarray(tokens)[1:]
    steps = arr.reshape(len(arr), -1)
    upper = [[n.upper() for n in field] for field in names]

    def name(f: int, t: int) -> str:
        return upper[f][t] if t < len(upper[f]) else "PAD"

    keep = []
    for i, step in enumerate(steps.tolist()):
        tags = [name(f, t) for f, t in enumerate(step)]
        if any(t.startswith("EOS") or t.endswith("_EOS") for t in tags):
            break
        if not any(t.startswith(("PAD", "BOS", "SOS", "MASK")) or t.endswith("_SOS") for t in tags):
            keep.append(i)
    return arr[keep]
