"""The child's side of the sandbox: every call into user code leaves a line in the trail, and so does its return.

``compare.check.sandbox.guard.call`` is the one door into user code; in a sandboxed child each call writes
``<step>\\t<stage>\\t<where>`` to the trail file when it begins and ``returned`` when it ends (opened, written
unbuffered and closed: some microseconds), the run directory it makes is noted, and the end of the check
writes ``done\\t<status>`` (``finish``). A child that dies without ``done`` (``os._exit``, a signal, the kernel's
out-of-memory killer) was last inside the call on the trail's last call line, which is what its parent reports
(``compare.check.sandbox.child``). The parent also reads the trail while the child runs (``Watch``): a call
begun and not returned is the call its wall-clock bound measures (``compare.check.sandbox.watchdog``).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from compare.check.sandbox import guard

TRAIL = "BACKPROP_PARITY_TRAIL"  # the environment variable naming the trail file: set in a sandboxed child
DONE = "done"  # the line's first field when the check ended in order (its status the second)
RETURNED = "returned"  # the line when the call last begun returned (or raised)
RUN_DIR = "run_dir"  # the line's first field when it names the run directory the child made


def inside() -> bool:
    """Whether this process is a sandboxed child."""
    return TRAIL in os.environ


def _write(*fields: object) -> None:
    line = "\t".join(str(field) for field in fields).replace("\n", " ") + "\n"
    descriptor = os.open(os.environ[TRAIL], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode("utf-8", "replace"))
    finally:
        os.close(descriptor)


def start() -> None:
    """Trace every call into user code from here on, its beginning and its return."""
    guard.on_call(_write, lambda: _write(RETURNED))


def made(run_dir: Path) -> None:
    """The run directory the child made (a parent whose child died writes its report there)."""
    _write(RUN_DIR, run_dir)


def finish(status: int) -> None:
    """The check ended in order with ``status``: the parent gives the process a moment to exit, then ends its
    process group (a thread the user's code left running would keep the interpreter alive)."""
    _write(DONE, status)


def _kind(line: str) -> str:
    """``DONE``, ``RETURNED``, ``RUN_DIR``, or ``""`` for a call's line."""
    head = line.split("\t", 1)[0]
    return head if head in (DONE, RETURNED, RUN_DIR) else ""


@dataclass(frozen=True)
class Read:
    """What a trail says: whether the child ended in order (and its status), its run directory, its last call
    into user code."""

    done: bool
    run_dir: Path | None
    last_call: str | None
    status: int | None = None  # the status ``finish`` wrote


def read(path: Path) -> Read:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    folders = [line.split("\t", 1)[1] for line in lines if _kind(line) == RUN_DIR]
    calls = [line for line in lines if not _kind(line)]
    ends = [line.split("\t", 1)[1:] for line in lines if _kind(line) == DONE]
    status = int(ends[0][0]) if ends and ends[0] and ends[0][0].lstrip("-").isdigit() else None
    return Read(bool(ends), Path(folders[-1]) if folders else None, calls[-1] if calls else None, status)


class Watch:
    """The parent's reading of a trail while the child writes it: since when the call open now has been
    open (as the parent saw it), and whether the check has finished. ``poll`` reads what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.open_since: float | None = None  # time.monotonic() when the outermost open call was seen to begin
        self.finished = False
        self._depth = 0  # calls open now (a call into user code may be made inside another)
        self._offset = 0

    def poll(self) -> None:
        try:
            with self.path.open("rb") as trail:
                trail.seek(self._offset)
                data = trail.read()
        except OSError:  # not written yet
            return
        whole = data[: data.rfind(b"\n") + 1]  # a line being written is read whole next time
        self._offset += len(whole)
        for line in whole.decode("utf-8", "replace").splitlines():
            self._see(_kind(line))

    def _see(self, kind: str) -> None:
        if kind == DONE:
            self.finished = True
        elif kind == RETURNED:
            self._depth = max(0, self._depth - 1)
            self.open_since = self.open_since if self._depth else None
        elif not kind:
            self.open_since = self.open_since if self._depth else time.monotonic()
            self._depth += 1
