"""Where library chatter goes: into the log, shown on the terminal only with `--verbose`.

TensorFlow, basic-pitch (which calls `logging.warning` on the root logger), `pkg_resources`
deprecations, MidiTok's UserWarnings and Prefect all write to stderr, often from worker processes,
and land in the middle of progress bars. `configure` routes Python warnings into logging
(`logging.captureWarnings`) and puts one stderr handler on the root logger that, unless verbose,
lets through only musicdata's own warnings (the ones written for the user, such as a learned
vocabulary trained on too few pieces) and errors. Worker processes (`musicdata.isolate`) call
`configure_worker`, which reads the verbosity the CLI left in the environment; the same environment
quiets TensorFlow's C++ logging and Prefect before they are imported.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

VERBOSE_ENV = "MUSICDATA_VERBOSE"

# Read by the libraries at import, so they are set before anything imports them; a value the
# user set wins (setdefault).
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO/WARNING/ERROR lines
    "TF_ENABLE_ONEDNN_OPTS": "0",  # and its oneDNN notice
    "PREFECT_LOGGING_LEVEL": "WARNING",
}
ALWAYS_ENV = {
    # No telemetry (this project runs offline), a quiet ephemeral server (its shutdown races log
    # at ERROR), and time for a first SQLite migration on 2 cores.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}

_OURS = "musicdata"


class _TerminalFilter(logging.Filter):
    """Quiet: musicdata's warnings and anyone's errors. Verbose: everything at INFO and up."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return record.levelno >= logging.INFO
        if record.name == "py.warnings":  # a library's warnings.warn: the log, not the terminal
            return False
        ours = record.name == _OURS or record.name.startswith(_OURS + ".")
        return record.levelno >= (logging.WARNING if ours else logging.ERROR)


class _Handler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    musicdata = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def set_base_environment() -> None:
    """Prefect's settings, before anything imports Prefect (verbose or not)."""
    for name, value in ALWAYS_ENV.items():
        os.environ.setdefault(name, value)


def set_environment(verbose: bool) -> None:
    """Environment for this process and every process it starts (workers, Prefect)."""
    set_base_environment()
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def configure(verbose: bool = False) -> logging.Handler:
    """Route warnings into logging and show only what the user needs on stderr (idempotent: a
    second call replaces the handler, so `--verbose` can be turned on in-process)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "musicdata", False)]:
        root.removeHandler(h)
    handler = _Handler()
    handler.addFilter(_TerminalFilter(verbose))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    # INFO reaches the handler (which filters); libraries' own loggers keep their levels.
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger(_OURS).setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)
    if verbose:
        warnings.simplefilter("default")  # every distinct warning once, into the log
    for name in ("tensorflow", "absl", "h5py", "numba"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        sys.unraisablehook = _unraisable_to_log
    return handler


def configure_worker() -> None:
    """In a worker process: the verbosity the CLI chose (quiet when none was chosen, e.g. when
    a notebook runs a stage: a worker's stderr is the user's terminal)."""
    configure(os.environ.get(VERBOSE_ENV) == "1")


def _unraisable_to_log(unraisable: Any) -> None:
    """Errors in finalizers at exit (TensorFlow's `AtomicFunction.__del__`) go to the log."""
    logging.getLogger("py.unraisable").debug(
        "exception ignored in %r: %s", unraisable.object, unraisable.exc_value
    )
