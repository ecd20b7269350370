"""Import MidiTok without its optional PyTorch helpers (imported first by this package).

`import miditok` also imports `miditok.pytorch_data` when torch is installed, and with it torch:
measured 2.5 s of CPU and ~190 MB of memory per process, paid by every tokenize driver and by
the isolated workers' fork server, though nothing in the library uses those helpers (models read
shards, not MidiTok datasets). MidiTok treats that module as optional (its import sits in a
`try/except ImportError`), so while torch is not loaded yet it is skipped here; an explicit
`import miditok.pytorch_data` afterwards still works. A process that already holds torch
imports MidiTok unchanged.
"""

from __future__ import annotations

import sys


def import_miditok() -> None:
    if "miditok" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["miditok.pytorch_data"] = None  # type: ignore[assignment]  # MidiTok skips it
    try:
        import miditok  # noqa: F401
    finally:
        if "miditok.pytorch_data" in sys.modules and sys.modules["miditok.pytorch_data"] is None:
            del sys.modules["miditok.pytorch_data"]


import_miditok()
