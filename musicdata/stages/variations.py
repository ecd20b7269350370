"""The variations stage: Cadenza variations of a MIDI file, or ideas from its prior, recorded.

A driver on the stage kit, beside `generate` (musicdata/stages/evaluate.py, whose checkpoint
lookup and sample writer it reuses). The input file is a stranger's: it is parsed and encoded with
the Composer run's own PerTok config in an isolated worker (the tokenize stage's worker). The
model side (`models.api`, passed in) composes and performs; this process decodes each result
through the encoding, writes it atomically under `generated/<composer run>/variations-<hash>/`
(`prior-<hash>/` without an input) and records it in `generations`, with lineage from both
checkpoints and from `file:<sha256 of the input>` to every generated piece.

Figures (Summary and `eval_results`, keyed by the same hash, so a rerun records nothing twice):
similarity of each variation to its input on the decoded MIDI (pitch-class histogram cosine,
onset overlap F1 on a sixteenth grid) against novelty (share of its notes, onset and pitch, not
in the input), each over the span both cover; and the model side's held-out figures: the
Composer's reconstruction accuracy, KL per latent dimension and active units (posterior collapse),
the Performer's velocity / microtiming KL to held-out data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from musicdata.catalog import records
from musicdata.catalog import training as sql
from musicdata.fsutil import sha256_file
from musicdata.stages.evaluate import GENERATED_DIR, checkpoint_of, write_sample
from musicdata.stages.kit import Summary, stage_run
from musicdata.store.manifest import build_manifest
from musicdata.workspace import Workspace

STAGE = "variations"
KEYS = ("generated", "undecodable")
GRID_Q = 0.25  # onset grid for overlap and novelty, in quarter notes (a sixteenth)


class CadenzaSide(Protocol):
    """What the stage needs of the model side (models.api implements it)."""

    def variations(self, composer: Any, performer: Any, tokens: Any, n: int, **kw: Any) -> list: ...

    def sample_prior(self, composer: Any, performer: Any, n: int, **kw: Any) -> list: ...

    def cadenza_evaluate(
        self, composer: Any, performer: Any, manifest: Any, split: str, **kw: Any
    ) -> dict: ...


def variations(
    ws: Workspace,
    side: CadenzaSide,
    composer_run: str,
    performer_run: str,
    input_midi: Path | str,
    n: int = 8,
    *,
    temperature: float = 1.0,
    spread: float = 1.0,
    seed: int = 0,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    split: str = "test",
    evaluate: bool = True,
    run_id: str | None = None,
) -> Summary:
    """`n` variations of `input_midi` from a Composer run and a Performer run (newest
    checkpoints), written as MIDI and recorded with lineage to the checkpoints and the input."""
    path = Path(input_midi).expanduser().resolve()
    if not path.is_file():
        msg = f"{path}: no such MIDI file; pass --input FILE.mid"
        raise ValueError(msg)
    return _run(
        ws,
        side,
        composer_run,
        performer_run,
        path,
        n,
        {"temperature": temperature, "spread": spread, "seed": seed, "top_p": top_p},
        max_new_tokens,
        split,
        evaluate,
        run_id,
    )


def prior(
    ws: Workspace,
    side: CadenzaSide,
    composer_run: str,
    performer_run: str,
    n: int = 8,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    split: str = "test",
    evaluate: bool = True,
    run_id: str | None = None,
) -> Summary:
    """`n` unconditional ideas (latents from the prior), written and recorded like variations."""
    params = {"temperature": temperature, "seed": seed, "top_p": top_p}
    return _run(
        ws,
        side,
        composer_run,
        performer_run,
        None,
        n,
        params,
        max_new_tokens,
        split,
        evaluate,
        run_id,
    )


def _run(
    ws: Workspace,
    side: CadenzaSide,
    composer_run: str,
    performer_run: str,
    path: Path | None,
    n: int,
    sampling: dict[str, Any],
    max_new_tokens: int | None,
    split: str,
    evaluate: bool,
    run_id: str | None,
) -> Summary:
    assert n >= 1, f"n must be at least 1, got {n}"
    (crun, cckpt), (_, pckpt) = _pair(ws, composer_run, performer_run)
    manifest, _ = build_manifest(ws, crun["encoding"], crun["encoding_config_hash"])
    tokens, input_sha = _encode_input(ws, crun, path) if path else (None, None)
    kind = "variations" if path else "prior"
    params = {
        **sampling,
        "kind": kind,
        "n": n,
        "max_new_tokens": max_new_tokens,
        "performer_checkpoint": pckpt["checkpoint_id"],
        **({"input_sha256": input_sha, "input_name": path.name} if path else {}),
    }
    key = json.dumps([cckpt["checkpoint_id"], params], sort_keys=True)
    phash = hashlib.sha256(key.encode()).hexdigest()[:10]
    out_rel = f"{GENERATED_DIR}/{composer_run}/{kind}-{phash}"
    run_id = run_id or f"{kind}:{composer_run}:{phash}"
    info = {
        "composer_checkpoint": cckpt["checkpoint_id"],
        "performer_checkpoint": pckpt["checkpoint_id"],
        "out_dir": str(ws.abspath(out_rel)),
        **({"input": str(path), "input_sha256": input_sha} if path else {}),
    }
    cpath, ppath = ws.abspath(cckpt["path"]), ws.abspath(pckpt["path"])
    with stage_run(ws, STAGE, run_id, keys=KEYS, info=info) as summary:
        kw = {"max_new_tokens": max_new_tokens, **sampling}
        if tokens is not None:
            samples = side.variations(cpath, ppath, tokens, n, **kw)
        else:
            kw.pop("spread", None)
            samples = side.sample_prior(cpath, ppath, n, **kw)
        rows = [
            write_sample(ws, crun, cckpt, out_rel, i, s, params, run_id)
            for i, s in enumerate(samples)
        ]
        values: dict[str, float] = {}
        detail: dict[str, Any] = {"params": params}
        if tokens is not None:
            values.update(_similarity(ws, crun, tokens, rows))
        if evaluate:
            res = side.cadenza_evaluate(cpath, ppath, manifest, split, generated=samples)
            detail.update(windows=res.pop("windows"), kl_per_dim=res.pop("kl_per_dim"))
            detail["latent_dim"] = res.pop("latent_dim")
            res.pop("split", None)
            values.update({k: float(v) for k, v in res.items()})
            summary.info["kl_per_dim"] = detail["kl_per_dim"]
        eval_id = f"eval-{kind}-{phash}-{split}"
        # the Composer's edges come with record_generations / record_eval; these add the
        # Performer's and the input file's
        perf_src = f"checkpoint:{pckpt['checkpoint_id']}"
        srcs = [perf_src] + ([f"file:{input_sha}"] if input_sha else [])
        edges = [
            sql.edge(src, f"generated:{r['generation_id']}", STAGE, phash, run_id)
            for r in rows
            for src in srcs
        ]
        with ws.catalog.write() as con:
            sql.record_generations(con, rows, run_id)
            if values:
                new = sql.record_eval(
                    con, eval_id, cckpt["checkpoint_id"], split, values, detail, run_id
                )
                summary.info["eval_id"] = eval_id
                summary.add("recorded", int(new))
                edges.append(sql.edge(perf_src, f"eval:{eval_id}", STAGE, phash, run_id))
            records.insert_rows(con, "lineage_edges", edges, on_conflict_nothing=True)
        for r in rows:
            summary.add("generated" if r["error"] is None else "undecodable")
        summary.info.update({k: round(v, 5) for k, v in values.items()})
    return summary


def _pair(ws: Workspace, composer_run: str, performer_run: str) -> tuple[tuple, tuple]:
    """(run, checkpoint) rows of the Composer and the Performer run, checked to fit together."""
    comp, perf = checkpoint_of(ws, composer_run, None), checkpoint_of(ws, performer_run, None)
    for (run, _), want in ((comp, "cadenza"), (perf, "cadenza-performer")):
        if run["model"] != want:
            msg = (
                f"train run {run['train_run_id']} is a {run['model']!r} run, not {want!r}; "
                f"train one with `musicdata train -m {want} -e pertok`"
            )
            raise ValueError(msg)
    keys = [(r["encoding"], r["encoding_config_hash"]) for r, _ in (comp, perf)]
    if keys[0] != keys[1]:
        msg = (
            f"{composer_run} trained on {keys[0][0]}@{keys[0][1]} but {performer_run} on "
            f"{keys[1][0]}@{keys[1][1]}: their vocabularies differ; train both on one config"
        )
        raise ValueError(msg)
    return comp, perf


def _encode_input(ws: Workspace, run: dict, path: Path) -> tuple[np.ndarray, str]:
    """(PerTok ids of the input under the run's config, its sha256); parsed in isolation."""
    from musicdata.datasets import resolve_config
    from musicdata.encodings.worker import TokenizeJob, tokenize_piece
    from musicdata.isolate import IsolatedPool

    cfg = resolve_config(ws.catalog, run["encoding"], run["encoding_config_hash"])
    sha = sha256_file(path)
    job = TokenizeJob(sha, str(path), cfg.encoding, cfg.params, fidelity=False)
    with IsolatedPool.configured(tokenize_piece, ws.config.tokenize) as pool:
        (rec,) = pool.map_records([job], lambda _: {"piece_id": sha})
    if rec["status"] != "ok" or len(rec["tokens"]) < 2:
        why = f"{rec.get('reason')}: {rec.get('detail')}" if rec["status"] != "ok" else "no notes"
        msg = f"{path}: cannot encode it as {cfg.encoding}@{cfg.config_hash} ({why}); "
        msg += "pass a MIDI file with notes"
        raise ValueError(msg)
    return np.asarray(rec["tokens"], dtype=np.int64), sha


def _similarity(ws: Workspace, run: dict, tokens: np.ndarray, rows: list[dict]) -> dict[str, float]:
    """Mean similarity of the decoded variations to the decoded input, against novelty."""
    import symusic

    from musicdata.datasets import resolve_config
    from musicdata.encodings import get_encoding

    cfg = resolve_config(ws.catalog, run["encoding"], run["encoding_config_hash"])
    ref = note_table(get_encoding(cfg.encoding, cfg.params).decode(tokens))
    scores = [
        note_similarity(note_table(symusic.Score(str(ws.abspath(r["path"])))), ref)
        for r in rows
        if r["path"]
    ]
    if not scores:
        return {}
    return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}


def note_table(score: Any) -> np.ndarray:
    """[N, 2] (onset in quarter notes, MIDI pitch) of every non-drum note, sorted."""
    q = score.to("quarter")
    parts = [
        np.stack([t.notes.numpy()["time"], t.notes.numpy()["pitch"]], axis=1)
        for t in q.tracks
        if not t.is_drum and len(t.notes)
    ]
    out = np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 2))
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def note_similarity(var: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Pitch-class histogram cosine, onset overlap (F1 of sixteenth-grid onsets) and novelty
    (share of the variation's grid (onset, pitch) notes absent from the input), over the span
    both cover (a variation is as long as the Composer's window, the input may be longer)."""
    nothing = {"pc_similarity": 0.0, "onset_overlap": 0.0, "novelty": 1.0}
    if not len(var) or not len(ref):
        return nothing
    span = min(var[:, 0].max(), ref[:, 0].max()) + GRID_Q
    var, ref = var[var[:, 0] < span], ref[ref[:, 0] < span]
    if not len(var) or not len(ref):  # one starts after the other ends: nothing in common
        return nothing
    hv = np.bincount(var[:, 1].astype(int) % 12, minlength=12).astype(float)
    hr = np.bincount(ref[:, 1].astype(int) % 12, minlength=12).astype(float)
    pc = float(hv @ hr / (np.linalg.norm(hv) * np.linalg.norm(hr)))
    gv, gr = _grid(var), _grid(ref)  # [N, 2] int: (sixteenth index, pitch)
    ov, orf = set(gv[:, 0].tolist()), set(gr[:, 0].tolist())
    onset_f1 = 2 * len(ov & orf) / (len(ov) + len(orf))
    nv, nr = set(map(tuple, gv.tolist())), set(map(tuple, gr.tolist()))
    return {"pc_similarity": pc, "onset_overlap": onset_f1, "novelty": 1 - len(nv & nr) / len(nv)}


def _grid(notes: np.ndarray) -> np.ndarray:
    return np.stack([np.round(notes[:, 0] / GRID_Q), notes[:, 1]], axis=1).astype(np.int64)
