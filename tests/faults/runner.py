"""A stage in a subprocess for the kill -9 tests: `python -m tests.faults.runner VERB HOME ...`.

The library calls the CLI makes, with the pieces tokenized in this process (the fixtures are
trusted, and a worker pool would re-import MidiTok in every run: seconds each). The real CLI,
with its pool, runs in the final rerun of each chain and in the long mode.

    tokenize HOME ENC[,ENC...] [--kill-in-config-save ENC]
    publish HOME OUT
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def _kill_in_config_save(name: str) -> None:
    """SIGKILL right after `name`'s tokenizer config is written into its temp folder, before it
    is renamed: the moment the issue's `.tokenizer.json.<hex>.tmp.d` is left behind."""
    from musicdata.encodings import base

    for cls in _encoding_classes(base.Encoding):
        original = cls.__dict__.get("save_config")
        if original is None:
            continue

        def wrapped(self, directory, _original=original):  # type: ignore[no-untyped-def]
            out = _original(self, directory)
            if self.name == name:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        cls.save_config = wrapped


def _encoding_classes(root: type) -> list[type]:
    out, todo = [], [root]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def main(argv: list[str]) -> int:
    from musicdata.workspace import Workspace

    verb, home, *rest = argv
    ws = Workspace.open(home)
    if verb == "tokenize":
        from musicdata.stages.tokenize import tokenize_encodings
        from tests.musicdata.tokenized_ws import IN_PROCESS

        names = rest[0].split(",")
        if "--kill-in-config-save" in rest:
            import musicdata.encodings  # every encoding class registered before wrapping

            del musicdata.encodings
            _kill_in_config_save(rest[rest.index("--kill-in-config-save") + 1])
        runs = tokenize_encodings(
            ws, names, run_ids={n: f"{os.getpid()}:{n}" for n in names}, steps=IN_PROCESS
        )
        print(json.dumps([r.to_dict() for r in runs]))
        return 0
    if verb == "publish":
        from musicdata.publish import stage

        staged = stage(ws, Path(rest[0]))
        print(json.dumps({"publish_id": staged.publish_id, "files": len(staged.files)}))
        return 0
    print(f"unknown verb {verb!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
