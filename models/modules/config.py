"""The JSON round trip every model config shares (checkpoints carry their config as JSON)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["ModelConfig"]

C = TypeVar("C", bound="ModelConfig")


class ModelConfig:
    """Mixin for a frozen config dataclass: `to_dict()` / `from_dict()` / `replace()`."""

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self), f"{type(self).__name__} must be a dataclass"
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - names
        if unknown:
            msg = (
                f"{cls.__name__}: unknown field(s) {sorted(unknown)} in the saved config; "
                f"known: {', '.join(sorted(names))} "
                "(was the checkpoint written by a newer version of models/?)"
            )
            raise ValueError(msg)
        return cls(**d)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
