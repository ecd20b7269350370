"""PerTok token roles for Cadenza: split what is played (composition) from how (performance).

A PerTok note reads `[Program_p MicroTiming_m] [TimeShift_t] Pitch_n MicroTiming_m Velocity_v
Duration_d` (MidiTok 3.1 puts a MicroTiming after every "micro-timed" event: Pitch, PitchDrum,
Program, Pedal, ...; a Velocity after every note). The Composer models the sequence with Velocity
and MicroTiming tokens removed; the Performer predicts, for each composition position, the
Velocity and MicroTiming that followed it. `strip_performance` / `align_performance` do the split
on padded batches (vectorised, no Python loop over tokens), `add_performance` puts the tokens back
in MidiTok's order (MicroTiming before Velocity), so strip -> add with the true targets gives the
original sequence back.

Token ids are those of the full PerTok vocabulary (`manifest.extra["vocab"]`); the Performer's two
heads use local indices into `velocity_ids` / `microtiming_ids` (sorted by value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

__all__ = [
    "IGNORE",
    "TokenRoles",
    "add_performance",
    "align_performance",
    "attach_roles",
    "module_tables",
    "pad_rows",
    "performance_histograms",
    "strip_performance",
]

IGNORE = -100  # target of a composition position with no velocity / microtiming

# MidiTok PerTok's `microtime_events`: the event types it follows with a MicroTiming token.
MICROTIMED = {
    "Pitch",
    "Pedal",
    "PedalOff",
    "PitchIntervalChord",
    "PitchBend",
    "ControlChange",
    "Chord",
    "PitchDrum",
    "Program",
}
# Event types that start a note, so carry a Velocity (when velocities are on).
NOTE_ON = {"Pitch", "PitchDrum", "PitchIntervalTime", "PitchIntervalChord"}


def _flat_vocab(vocab: Sequence) -> list[str]:
    """manifest.extra["vocab"] is one list per field; a flat encoding has one field."""
    if len(vocab) and not isinstance(vocab[0], str):
        assert len(vocab) == 1, f"Cadenza needs a flat encoding, got {len(vocab)} vocab fields"
        vocab = vocab[0]
    return [str(t) for t in vocab]


def _value(tok: str) -> float:
    return float(tok.split("_", 1)[1])


@dataclass(frozen=True)
class TokenRoles:
    """What each PerTok id is for; built from the vocabulary strings (index = id)."""

    vocab: tuple[str, ...]

    @classmethod
    def from_vocab(cls, vocab: Sequence) -> TokenRoles:
        return cls(tuple(_flat_vocab(vocab)))

    def __post_init__(self) -> None:
        assert self.vocab, "empty vocabulary: pass manifest.extra['vocab'] (PerTok token strings)"
        missing = [t for t in ("PAD_None", "BOS_None") if t not in self.index]
        assert not missing, f"vocabulary lacks {missing}: build PerTok with special tokens"
        assert self.velocity_ids and self.microtiming_ids, (
            "vocabulary has no Velocity_* or MicroTiming_* tokens: Cadenza needs PerTok with "
            "use_velocities and use_microtiming"
        )

    @cached_property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    def type_of(self, i: int) -> str:
        return self.vocab[i].split("_", 1)[0]

    @cached_property
    def velocity_ids(self) -> tuple[int, ...]:
        """Velocity token ids sorted by velocity: local index k of the velocity head -> id."""
        ids = [i for i, t in enumerate(self.vocab) if t.startswith("Velocity_")]
        return tuple(sorted(ids, key=lambda i: _value(self.vocab[i])))

    @cached_property
    def microtiming_ids(self) -> tuple[int, ...]:
        """MicroTiming ids sorted by signed tick offset: local index -> id."""
        ids = [i for i, t in enumerate(self.vocab) if t.startswith("MicroTiming_")]
        return tuple(sorted(ids, key=lambda i: _value(self.vocab[i])))

    @property
    def pad_id(self) -> int:
        return self.index["PAD_None"]

    @property
    def bos_id(self) -> int:
        return self.index["BOS_None"]

    @property
    def eos_id(self) -> int | None:
        return self.index.get("EOS_None")

    @property
    def neutral_velocity(self) -> int:
        """Local velocity index nearest MIDI 64 (mezzo): the "unperformed" default."""
        vals = [_value(self.vocab[i]) for i in self.velocity_ids]
        return min(range(len(vals)), key=lambda k: abs(vals[k] - 64))

    @property
    def neutral_microtiming(self) -> int:
        """Local microtiming index nearest 0 ticks (on the grid)."""
        vals = [_value(self.vocab[i]) for i in self.microtiming_ids]
        return min(range(len(vals)), key=lambda k: abs(vals[k]))

    def tables(self, device: torch.device | None = None) -> dict[str, torch.Tensor]:
        """Per-id lookup tensors [V]: is_perf (bool), vel_local / mt_local (local index or -1),
        vel_slot / mt_slot (bool: a composition token that takes a Velocity / MicroTiming),
        special (PAD/BOS/MASK); next_ok [V, V] the composition grammar (see `grammar`)."""
        v, cpu = len(self.vocab), torch.device("cpu")  # built on CPU even under a meta context
        vel_local = torch.full((v,), -1, dtype=torch.long, device=cpu)
        vel_local[list(self.velocity_ids)] = torch.arange(len(self.velocity_ids), device=cpu)
        mt_local = torch.full((v,), -1, dtype=torch.long, device=cpu)
        mt_local[list(self.microtiming_ids)] = torch.arange(len(self.microtiming_ids), device=cpu)
        types = [self.type_of(i) for i in range(v)]

        def flag(kinds: set[str]) -> torch.Tensor:
            return torch.tensor([t in kinds for t in types], dtype=torch.bool, device=cpu)

        out = {
            "next_ok": self.grammar(types),
            "is_perf": (vel_local >= 0) | (mt_local >= 0),
            "vel_local": vel_local,
            "mt_local": mt_local,
            "vel_slot": flag(NOTE_ON),
            "mt_slot": flag(MICROTIMED),
            "special": flag({"PAD", "BOS", "MASK"}),
        }
        return {k: t.to(device or cpu) for k, t in out.items()}

    def grammar(self, types: list[str] | None = None) -> torch.Tensor:
        """[V, V] bool: may id j follow id i in a composition? PerTok's note grammar: a Program is
        followed by a note-on, a note-on by its Duration, and a Duration only follows a note-on
        (with performance stripped). Sampling under it means every sampled note decodes."""
        types = types or [self.type_of(i) for i in range(len(self.vocab))]
        cpu = torch.device("cpu")
        ok = torch.ones(len(types), len(types), dtype=torch.bool, device=cpu)
        note = torch.tensor([t in NOTE_ON for t in types], device=cpu)
        dur = torch.tensor([t == "Duration" for t in types], device=cpu)
        prog = torch.tensor([t == "Program" for t in types], device=cpu)
        if bool(note.any()):
            ok[prog] = note  # Program -> a note-on
        if bool(dur.any()):
            ok[:, dur] = False
            ok[note] = dur  # note-on -> Duration, and only there
        return ok


def _compact(
    tokens: torch.Tensor, keep: torch.Tensor, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move kept positions to the left, in order. -> (out [B, L'], mask [B, L'], src [B, L'])
    where src is the original position of each kept token and L' the most kept in a row."""
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept first
    width = max(int(keep.sum(dim=1).max()) if keep.numel() else 0, 1)
    src = order[:, :width]  # [B, L']
    out_mask = keep.gather(1, src)
    out = torch.where(out_mask, tokens.gather(1, src), torch.full_like(src, pad_id))
    return out, out_mask, src


def strip_performance(
    tokens: torch.Tensor, mask: torch.Tensor | None, tables: dict[str, torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """PerTok ids [B, L] (+ mask [B, L], True = real) -> composition ids [B, L'] and mask:
    the same sequence without Velocity / MicroTiming tokens, right-padded with pad_id."""
    comp, comp_mask, _ = _split(tokens, mask, tables, pad_id)
    return comp, comp_mask


def _split(
    tokens: torch.Tensor, mask: torch.Tensor | None, tables: dict[str, torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    assert tokens.dim() == 2, f"PerTok ids must be [B, L], got {tuple(tokens.shape)}"
    if mask is None:
        mask = torch.ones_like(tokens, dtype=torch.bool)
    assert mask.shape == tokens.shape, f"mask {tuple(mask.shape)} vs tokens {tuple(tokens.shape)}"
    keep = mask & ~tables["is_perf"][tokens]  # [B, L]
    comp, comp_mask, src = _compact(tokens, keep, pad_id)
    return comp, comp_mask, src


def align_performance(
    tokens: torch.Tensor, mask: torch.Tensor | None, tables: dict[str, torch.Tensor], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PerTok ids [B, L] -> (composition [B, L'], mask [B, L'], targets [B, L', 2] long).

    targets[..., 0] / [..., 1]: local velocity / microtiming index of the Velocity / MicroTiming
    token that follows composition position j before the next composition token, or IGNORE.
    Performance tokens before the first composition token of a window (a cut note) are dropped.
    """
    if mask is None:
        mask = torch.ones_like(tokens, dtype=torch.bool)
    comp, comp_mask, src = _split(tokens, mask, tables, pad_id)
    b, length = tokens.shape
    keep = mask & ~tables["is_perf"][tokens]
    pos = torch.arange(length, device=tokens.device).expand(b, length)
    # owner[i]: the last composition position at or before i (-1: none yet)
    owner = torch.where(keep, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # [B, L]
    out = []
    for name in ("vel_local", "mt_local"):
        local = tables[name][tokens]  # [B, L], -1 where not this kind
        hit = mask & (local >= 0) & (owner >= 0)
        # scatter each performance token's local index onto its owner (in original positions);
        # a spare column L collects the misses
        dest = torch.where(hit, owner, torch.full_like(owner, length))
        full = torch.full((b, length + 1), IGNORE, dtype=torch.long, device=tokens.device)
        full.scatter_(1, dest, torch.where(hit, local, torch.full_like(local, IGNORE)))
        tgt = full[:, :length].gather(1, src)  # [B, L'] onto composition positions
        out.append(torch.where(comp_mask, tgt, torch.full_like(tgt, IGNORE)))
    return comp, comp_mask, torch.stack(out, dim=-1)


def add_performance(
    comp: Sequence[int] | torch.Tensor,
    velocity: Sequence[int] | torch.Tensor,
    microtiming: Sequence[int] | torch.Tensor,
    roles: TokenRoles,
) -> torch.Tensor:
    """One composition [T] + local velocity / microtiming indices per position [T] -> PerTok ids.

    Every note-on token gets a Velocity, every micro-timed token a MicroTiming, in MidiTok's order
    (token, MicroTiming, Velocity), which its decoder expects. Padding is dropped.
    """
    comp = [int(c) for c in (comp.tolist() if isinstance(comp, torch.Tensor) else comp)]
    vel = velocity.tolist() if isinstance(velocity, torch.Tensor) else list(velocity)
    mt = microtiming.tolist() if isinstance(microtiming, torch.Tensor) else list(microtiming)
    assert len(vel) == len(comp) == len(mt), (
        f"{len(comp)} composition tokens but {len(vel)} velocities / {len(mt)} microtimings"
    )
    out: list[int] = []
    for c, v, m in zip(comp, vel, mt, strict=True):
        if c == roles.pad_id:
            continue
        out.append(c)
        kind = roles.type_of(c)
        if kind in MICROTIMED:
            m = int(m) if int(m) >= 0 else roles.neutral_microtiming
            out.append(roles.microtiming_ids[m])
        if kind in NOTE_ON:
            v = int(v) if int(v) >= 0 else roles.neutral_velocity
            out.append(roles.velocity_ids[v])
    return torch.tensor(out, dtype=torch.long)


def performance_histograms(
    sequences: Sequence[torch.Tensor], roles: TokenRoles
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts of each velocity / microtiming value over PerTok sequences -> ([n_vel], [n_mt])."""
    tables = roles.tables()
    vel = torch.zeros(len(roles.velocity_ids), dtype=torch.float64)
    mt = torch.zeros(len(roles.microtiming_ids), dtype=torch.float64)
    for seq in sequences:
        ids = torch.as_tensor(seq, dtype=torch.long).reshape(-1).cpu()
        v, m = tables["vel_local"][ids], tables["mt_local"][ids]
        vel += torch.bincount(v[v >= 0], minlength=len(vel)).double()
        mt += torch.bincount(m[m >= 0], minlength=len(mt)).double()
    return vel, mt


def attach_roles(module: nn.Module, vocab: tuple[str, ...]) -> TokenRoles:
    """Attach the PerTok role lookups as non-persistent buffers (they follow .to(device))."""
    roles = TokenRoles.from_vocab(vocab)
    for name, t in roles.tables().items():
        module.register_buffer(f"t_{name}", t, persistent=False)
    return roles


def module_tables(module: nn.Module) -> dict[str, torch.Tensor]:
    names = ("is_perf", "vel_local", "mt_local", "vel_slot", "mt_slot", "special", "next_ok")
    return {n: getattr(module, f"t_{n}") for n in names}


def pad_rows(rows: list[torch.Tensor], pad_id: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
