"""`musicdata` command line: a thin layer over the library; pipeline commands run as Prefect flows.

Each command group lives in its own module and registers itself on the shared typer `app`; this
module then orders them for `--help`: the demo first, then the pipeline in the order data flows
through it, then analysis, then the workspace groups.
"""

# Library chatter (TensorFlow, Prefect) reads its settings when first imported: set them here,
# where the CLI process starts, before any command module imports anything heavy.
import inspect

from musicdata import logs

logs.set_base_environment()

# importing a module registers its commands
from musicdata.cli import (  # noqa: E402, F401
    audio,
    catalog,
    encodings,
    metrics,
    pipeline,
    publish,
    report,
    train,
    variations,
)
from musicdata.cli.common import ANALYSE, MODELS, PIPELINE, WORKSPACE, app  # noqa: E402

START = "Start here"
ORDER = {
    "demo": START,
    "ingest": PIPELINE,
    "transcribe": PIPELINE,
    "tokenize": PIPELINE,
    "train": MODELS,
    "evaluate": MODELS,
    "generate": MODELS,
    "variations": MODELS,
    "metrics": ANALYSE,
    "report": ANALYSE,
    "publish": ANALYSE,
    "catalog": WORKSPACE,
    "encodings": WORKSPACE,
}


def _name(info: object) -> str:
    name = getattr(info, "name", None)
    if name:
        return str(name)
    callback = getattr(info, "callback", None)
    return getattr(callback, "__name__", "").replace("_", "-")


def _reflow(doc: str | None) -> str | None:
    """A docstring as help: paragraphs kept, the line breaks inside them dropped (typer's rich
    help prints them as they are written)."""
    if not doc:
        return doc
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _order() -> None:
    rank = {name: i for i, name in enumerate(ORDER)}
    for typer_app in [app, *(g.typer_instance for g in app.registered_groups)]:
        for command in typer_app.registered_commands:
            if command.help is None and command.callback is not None:
                command.help = _reflow(command.callback.__doc__)
    app.registered_commands.sort(key=lambda c: rank.get(_name(c), len(rank)))
    app.registered_groups.sort(key=lambda g: rank.get(_name(g), len(rank)))
    for info in [*app.registered_commands, *app.registered_groups]:
        panel = ORDER.get(_name(info))
        if panel:
            info.rich_help_panel = panel


_order()

__all__ = ["app"]
