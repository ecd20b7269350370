"""`musicdata` command line: a thin layer over the library; pipeline commands run as Prefect flows.

Each command group lives in its own module and registers itself on the shared typer `app`.
"""

# importing a module registers its commands
from musicdata.cli import (  # noqa: F401
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
from musicdata.cli.common import app

__all__ = ["app"]
