"""SIGTERM (TPU VM maintenance, spot-VM preemption) as a request to stop at the next safe point.

`watch()` is called as early as possible (the CLI does it first thing; the trainer again when
it starts training), so a SIGTERM that arrives while a run is still setting up (reading data,
building a vocabulary) is not lost: training then stops before its first step, saving a
checkpoint as it would at any other step. This module imports nothing heavy.
"""

from __future__ import annotations

import logging
import signal

log = logging.getLogger(__name__)

# The exit code of a command that stopped for SIGTERM after saving a checkpoint (128 + 15).
EXIT_PREEMPTED = 143

_requested = False


def _on_sigterm(signum, frame) -> None:
    global _requested
    log.warning("received SIGTERM: saving a checkpoint after the current steps, then stopping")
    _requested = True


def watch() -> bool:
    """Installs the handler; returns False where signals cannot be handled (another thread)."""
    try:
        if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return False
    return True


def requested() -> bool:
    return _requested


def reset() -> None:
    """Forgets a request (after the run that honoured it has stopped)."""
    global _requested
    _requested = False
