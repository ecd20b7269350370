"""`musicdata` command line: a thin layer over the library; pipeline commands run as Prefect flows.

Each command group lives in its own module and registers itself on the shared typer `app`.
"""

from musicdata.cli import catalog, pipeline  # noqa: F401  (import registers the commands)
from musicdata.cli.common import app

__all__ = ["app"]
