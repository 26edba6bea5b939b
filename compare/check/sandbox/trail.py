"""The child's side of the sandbox: every call into user code leaves a line in the trail.

``compare.check.sandbox.guard.call`` is the one door into user code; in a sandboxed child each call writes
``<step>\\t<stage>\\t<where>`` to the trail file (opened, written unbuffered and closed: some
microseconds), the run directory it makes is noted, and the child's orderly end writes ``done``. A
child that dies without ``done`` (``os._exit``, a signal, the kernel's out-of-memory killer) was last
inside the call on the trail's last call line, which is what its parent reports
(``compare.check.sandbox.child``).
"""

import atexit
import os
from dataclasses import dataclass
from pathlib import Path

from compare.check.sandbox import guard

TRAIL = "BACKPROP_PARITY_TRAIL"  # the environment variable naming the trail file: set in a sandboxed child
DONE = "done"
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
    """Trace every call into user code from here on; ``done`` at the process's orderly end."""
    guard.on_call(_write)
    atexit.register(_write, DONE)


def made(run_dir: Path) -> None:
    """The run directory the child made (a parent whose child died writes its report there)."""
    _write(RUN_DIR, run_dir)


@dataclass(frozen=True)
class Read:
    """What a trail says: whether the child ended in order, its run directory, its last call into user code."""

    done: bool
    run_dir: Path | None
    last_call: str | None


def read(path: Path) -> Read:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    folders = [line.split("\t", 1)[1] for line in lines if line.startswith(RUN_DIR + "\t")]
    calls = [line for line in lines if line != DONE and not line.startswith(RUN_DIR + "\t")]
    return Read(DONE in lines[-1:], Path(folders[-1]) if folders else None, calls[-1] if calls else None)
