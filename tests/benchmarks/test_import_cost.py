"""The tokenize path never imports torch: MidiTok's optional PyTorch helpers cost ~2.5 s of CPU
and ~190 MB in every tokenize driver and worker fork server (found profiling the end-to-end
benchmark). A fresh process checks it, since the test process itself may hold torch."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from musicdata.encodings import get_encoding
from musicdata.encodings.worker import tokenize_piece
import musicdata.cli.pipeline, musicdata.stages.tokenize, musicdata.stages.ingest
for name in ("remi", "nb-pf", "cp", "octuple"):
    get_encoding(name).tokenizer
assert "torch" not in sys.modules, "torch was imported on the tokenize path"
import miditok.pytorch_data  # still importable on request
assert "torch" in sys.modules
print("ok")
"""


def test_tokenize_path_does_not_import_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
