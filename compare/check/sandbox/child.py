"""The parent's side of the sandbox: the user's code runs in a child process, and its death is a finding.

``backprop-parity check FILE.py`` runs the whole check (loading the file included) in a child started
with ``subprocess`` (a fresh interpreter: nothing of the parent's state is shared, unlike a ``fork``),
under an address-space limit (``RLIMIT_AS``: an allocation past it raises ``MemoryError`` in the child,
which the check reports as an exception) and with the per-call time limit enforced inside it
(``compare.check.sandbox.guard``). The child writes the report as an unsandboxed check does and ends with its
own exit status. When it ends any other way (``os._exit``, a signal, killed), the parent reads the last
call into user code from the trail (``compare.check.sandbox.trail``) and returns the finding: one line,
the report in the run directory.
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compare.check.sandbox import trail

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

    def how(self) -> str:
        """How the process ended, in words."""
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
        if not where:
            return f"FAIL: {file}: the checker's process {self.how()} before any call into your code"
        if stage == "load":
            return f"FAIL: {file} {self.how()} while loading"
        return f"FAIL: your {where} {self.how()}, at step {step}, stage {stage}"

    def to_dict(self) -> dict:
        step, stage, where = self.call()
        number = int(step) if step.isdigit() else None
        return {"status": self.status, "how": self.how(), "step": number, "stage": stage, "where": where}


def run(argv: list[str], memory_gib: float) -> Ended:
    """``python -m compare <argv>`` in a child, its address space capped at ``memory_gib``; the child's
    output is written to this process's stdout and stderr when it ends."""
    with tempfile.TemporaryDirectory(prefix="backprop-parity-trail-") as folder:
        path = Path(folder) / "trail"
        # the child imports what this process can: its sys.path (a notebook's, a test's) as the child's PYTHONPATH
        imports = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        environment = {**os.environ, trail.TRAIL: str(path), "PYTHONPATH": imports}
        limit = int(memory_gib * GIB)
        completed = subprocess.run(
            [sys.executable, "-m", "compare", *argv],
            env=environment,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
            check=False,
            capture_output=True,
            text=True,
            errors="replace",
        )
        read = trail.read(path)
    sys.stdout.write(completed.stdout)  # through this process's streams: a notebook or a test sees them
    sys.stderr.write(completed.stderr)
    return Ended(completed.returncode, read.done, None if read.done else read.last_call, read.run_dir)
