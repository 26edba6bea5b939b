"""The parent's side of the sandbox: the user's code runs in a child process, and its death is a finding.

``backprop-parity check FILE.py`` runs the whole check (loading the file included) in a child started
with ``subprocess`` (a fresh interpreter: nothing of the parent's state is shared, unlike a ``fork``),
in a process group of its own, under an address-space limit (``RLIMIT_AS``: an allocation past it raises
``MemoryError`` in the child, which the check reports as an exception) and with the per-call time limit
enforced inside it (``compare.check.sandbox.guard``) and, should that fail, from here
(``compare.check.sandbox.watchdog``: a call past its bound, the group killed). The child writes the report
as an unsandboxed check does and ends with its own exit status. When it ends any other way (``os._exit``,
a signal, killed), the parent reads the last call into user code from the trail
(``compare.check.sandbox.trail``) and returns the finding: one line, the report in the run directory. When
the wait ends, however it ends, the child's process group is killed: nothing the user's code started
outlives the check.
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compare.check.sandbox import trail, watchdog
from compare.check.sandbox.misbehaviour import FIXES

GIB = 1 << 30
DEFAULT_MEMORY_GIB = 16.0  # the child's address space: torch's CPU libraries map about 0.7 GiB before any tensor
MAX_MEMORY_GIB = 1024.0  # past the address space any machine here has: a typo, not a limit


@dataclass(frozen=True)
class Ended:
    """How the child ended: ``status`` as ``subprocess`` gives it (negative: the signal that killed it),
    ``finished`` when it reached its orderly end (its status then stands), and the last call into user code
    (``<step>\\t<stage>\\t<where>``) when it did not."""

    status: int
    finished: bool
    last_call: str | None
    run_dir: Path | None  # the run directory the child made, if it got that far
    overdue: float | None = None  # the time limit of the call this process killed the child for (None: none)
    stopped: BaseException | None = None  # what ended this process's wait instead (a signal's): the child killed

    def how(self) -> str:
        """How the process ended, in words."""
        if self.overdue is not None:
            return (
                f"did not return within {self.overdue:g} s (time_limit), nor stop at its alarm (SIGALRM ignored, or "
                "C code that never returns): the checker killed its process"
            )
        if self.status < 0:
            name = signal.Signals(-self.status).name if -self.status in signal.valid_signals() else str(-self.status)
            return f"was killed by {name}"
        return f"ended the process with exit status {self.status} (os._exit, or exit in C code)"

    def call(self) -> tuple[str, str, str]:
        """The last call into user code: (step, stage, where), empty strings when there was none."""
        step, stage, where = [*(self.last_call or "").split("\t"), "", "", ""][:3]
        return step, stage, where

    def line(self, file: str) -> str:
        """The finding in one line."""
        step, stage, where = self.call()
        if self.overdue is not None:
            return f"FAIL: timeout: {where or file}, step {step or 0}, {stage}: {self.how()}; fix: {FIXES['timeout']}"
        if not where:
            return f"FAIL: {file}: the checker's process {self.how()} before any call into your code"
        if stage == "load":
            return f"FAIL: {file} {self.how()} while loading"
        return f"FAIL: your {where} {self.how()}, at step {step}, stage {stage}"

    def to_dict(self) -> dict:
        step, stage, where = self.call()
        number = int(step) if step.isdigit() else None
        problem = "died" if self.overdue is None else "timeout"
        return {"problem": problem, "status": self.status, "how": self.how(), "step": number, "stage": stage,
                "where": where, "time_limit": self.overdue}  # fmt: skip


SIGNALS = {signal.SIGINT, signal.SIGTERM}  # held while the child starts: delivered once it is ours to kill


def run(argv: list[str], memory_gib: float, time_limit: float | None) -> Ended:
    """``python -m compare <argv>`` in a child, its address space capped at ``memory_gib``, each call into user
    code bounded from here (``watchdog.bound(time_limit)``); the child's output is written to this process's
    stdout and stderr when it ends. A signal that reaches this process meanwhile kills the child's group and is
    returned as ``stopped``, for the caller to say what was kept."""
    with tempfile.TemporaryDirectory(prefix="backprop-parity-trail-") as name:
        folder = Path(name)
        # the child imports what this process can: its sys.path (a notebook's, a test's) as the child's PYTHONPATH
        imports = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        environment = {**os.environ, trail.TRAIL: str(folder / "trail"), "PYTHONPATH": imports}
        environment["PYTHONUNBUFFERED"] = "1"  # what it printed is in the files even when its group is killed
        with open(folder / "stdout", "w+b") as out, open(folder / "stderr", "w+b") as err:
            held = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            process = _start(argv, environment, int(memory_gib * GIB), (out, err), held)
            stopped: BaseException | None = None
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a signal held while it started is raised here
                watched = watchdog.supervise(process.pid, trail.Watch(folder / "trail"), time_limit)
            except BaseException as error:  # a signal's KeyboardInterrupt, say: the caller decides
                watchdog.kill_group(process.pid)
                watched, stopped = watchdog.Watched(False, None), error
            process.wait()
            for stream, file in ((sys.stdout, out), (sys.stderr, err)):  # through this process's streams: a
                file.seek(0)  # notebook or a test sees them
                stream.write(file.read().decode("utf-8", "replace"))
        read = trail.read(folder / "trail")
    status = process.returncode if watched.exited or read.status is None else read.status
    finished = read.done and watched.overdue is None
    last = None if finished else read.last_call
    return Ended(status, finished, last, read.run_dir, watched.overdue, stopped)


def _start(argv: list[str], environment: dict, limit: int, streams: tuple, held: set) -> subprocess.Popen:
    def in_child() -> None:  # after the fork, before the interpreter starts
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

    try:
        return subprocess.Popen(
            [sys.executable, "-m", "compare", *argv],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=streams[0],
            stderr=streams[1],
            preexec_fn=in_child,
            start_new_session=True,  # its own process group: killed whole when the wait ends
        )
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
