"""Tokenize one stored piece; runs inside an isolated worker (musicdata.isolate).

The record: status, tokens, `fidelity` (fidelity.Fidelity: strict notes recovered, onset error in
ms, lost notes by reason) and, for encodings that cut long pieces into segments (octuple), the
`segments` row indices where each segment opens (a stage may store one row per segment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdata.encodings import Encoding, EncodingError, get_encoding

_CACHE: dict[tuple[str, str], Encoding] = {}


@dataclass(frozen=True)
class TokenizeJob:
    piece_id: str
    blob_path: str
    encoding: str
    params: dict[str, Any]
    fidelity: bool = True  # also decode and measure round-trip fidelity


def _encoding(job: TokenizeJob) -> Encoding:
    enc = get_encoding(job.encoding, job.params)
    key = (enc.name, enc.config_hash)
    return _CACHE.setdefault(key, enc)  # the tokenizer is built once per worker


def tokenize_piece(job: TokenizeJob) -> dict[str, Any]:
    import symusic

    from musicdata.encodings.fidelity import measure

    enc = _encoding(job)
    base = {"piece_id": job.piece_id, "encoding": job.encoding}
    try:
        # the workspace's normalization, if any (an encoding param, so it is in the config hash)
        score = enc.prepare(symusic.Score.from_midi(Path(job.blob_path).read_bytes()))
        tokens = enc.encode(score)
    except EncodingError as exc:
        return {**base, "status": "quarantined", "reason": "unencodable", "detail": str(exc)}
    except (KeyError, ValueError, IndexError, RuntimeError, AssertionError) as exc:
        # Tokenizer bugs on real files (e.g. PerTok's KeyError 'TimeSig_2/2' with MidiTok's
        # default meters) quarantine the piece for this encoding with the exception, instead of
        # crashing the run.
        detail = f"{type(exc).__name__}: {exc}"
        return {**base, "status": "quarantined", "reason": "tokenizer_error", "detail": detail}
    out = {**base, "status": "ok", "tokens": tokens}
    segment_starts = getattr(enc, "segment_starts", None)
    if segment_starts is not None:  # octuple: rows where each <= max_bar_embedding segment opens
        out["segments"] = segment_starts(tokens)
    if job.fidelity:
        out["fidelity"] = measure(enc, score, tokens)
    return out
