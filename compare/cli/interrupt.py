"""Ctrl-C and SIGTERM from the first instruction on.

While the program starts (``python -m compare`` from its first line, ``main`` from its first, through the
imports of every command: torch takes seconds), nothing has been written, so a signal ends the process
at once: one line, exit 130 (SIGINT) or 143 (SIGTERM). Nothing is raised into the imports: an exception
in the middle of a C extension's import leaves it half-loaded, and the next import of it fails with an
unrelated error. Once the commands are imported, ``arm`` makes a signal raise (``KeyboardInterrupt``,
``Terminated``), which ``main`` turns into the same line and status, until a command installs its own
handlers (``run``'s ``StopRequest`` ends the run at the next step boundary and writes the report).

The handlers are set whatever the inherited disposition: a process started in the background by a
non-interactive shell inherits SIGINT ignored, and would otherwise run to its end through a ``kill -INT``.
``restore`` puts back the handlers found, so that ``main(argv)`` called in-process leaves its caller's
handlers as they were, unless a command replaced them on purpose (a stop under way ignores further ones).
"""

import os
import signal
import threading
from typing import Any

from compare.cli import PROG

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM after start-up, before a command's own handler: a ``BaseException``, as ``KeyboardInterrupt``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _exit_now(signum: int, frame: object) -> None:
    line = f"{PROG}: interrupted ({signal.Signals(signum).name}) while starting; nothing was written\n"
    os.write(2, line.encode())
    os._exit(128 + signum)


def _raise(signum: int, frame: object) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _set(handler) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # no handler can be set off the main thread
    return {sig: signal.signal(sig, handler) for sig in SIGNALS}


def hold() -> dict[int, Any]:
    """Start-up: a signal ends the process at once. Returns the handlers found."""
    found = _set(_exit_now)
    return {sig: signal.SIG_DFL if handler in (_exit_now, _raise) else handler for sig, handler in found.items()}


def arm() -> None:
    """After start-up: a signal raises, for ``main`` to turn into its status."""
    _set(_raise)


def restore(previous: dict[int, Any]) -> None:
    """The handlers ``hold`` found, where ours are still in place."""
    for sig, handler in previous.items():
        if signal.getsignal(sig) in (_exit_now, _raise):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
