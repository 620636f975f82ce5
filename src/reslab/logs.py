"""reslab's one logger, ``logging.getLogger("reslab")``, and the handler the CLI puts on it.

The library never prints: training lines, run headers, warnings and experiment progress are
records on this logger (or a child, ``reslab.train`` ...).  Like any library it attaches only
a :class:`logging.NullHandler`, so an application decides where records go
(``logging.basicConfig(level=logging.INFO)`` shows them).  The ``reslab`` command runs
under :func:`cli_handler`: plain messages on stderr, as the command always printed them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("reslab")
logger.addHandler(logging.NullHandler())


class StderrHandler(logging.StreamHandler):
    """Messages as written, on the current ``sys.stderr``, through ``tqdm.write`` so that a
    progress bar on the same terminal is redrawn below them instead of broken."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's contract: a failing handler reports, never raises
            self.handleError(record)


@contextmanager
def _info_on_stderr() -> Iterator[None]:
    """reslab's INFO records and up on stderr while the block runs; handler and level restored after."""
    handler, level = StderrHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def cli_handler() -> Iterator[None]:
    """While a ``reslab`` command runs: INFO and up on stderr, plain format.  Removed after,
    so a program that calls :func:`reslab.cli.main` keeps its own logging as it was."""
    with _info_on_stderr():
        yield


def configured(log: logging.Logger = logger) -> bool:
    """Whether the application (or :func:`cli_handler`) put a handler on ``log`` or above it."""
    node: logging.Logger | None = log
    while node is not None:
        if any(not isinstance(h, logging.NullHandler) for h in node.handlers):
            return True
        node = node.parent if node.propagate else None
    return False


@contextmanager
def shown(quiet: bool) -> Iterator[None]:
    """While a call with ``quiet=False`` runs (``reslab.train`` in a notebook or script that
    set up no logging), show reslab's INFO records on stderr; with ``quiet=True``, or when the
    application configured logging (then its levels and handlers decide), change nothing."""
    if quiet or configured():
        yield
        return
    with _info_on_stderr():
        yield


def progress() -> Callable[[str], None]:
    """An experiment's ``say`` callback: one INFO record per message, with the elapsed time."""
    start = time.perf_counter()

    def say(msg: str) -> None:
        logger.info(f"[{time.perf_counter() - start:7.1f}s] {msg}")

    return say
