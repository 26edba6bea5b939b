"""The parent's watch over a child running user code: a wall-clock bound on each call, and the process group.

The child's own alarm (``compare.check.sandbox.guard``) ends a call past ``time_limit`` from inside, except
where it cannot: user code that ignores or swallows ``SIGALRM`` (``signal.signal(signal.SIGALRM,
signal.SIG_IGN)``), C code that never returns to the interpreter, code that catches ``BaseException`` and
carries on. The parent bounds the same thing from outside. The trail (``compare.check.sandbox.trail``)
marks each call into user code as it begins and as it returns; a call still running ``bound(time_limit)``
seconds after the parent saw it begin is killed, the child's whole process group with ``SIGKILL``, and
that is the finding ``timeout``. The bound is per call, as the limit is, not a total: the number of calls
is not known before the check runs (a model's ``steps``), and a total budget would be too tight for a long
check or far too long for a stuck one. The checker's own work between calls (importing torch, torch's side
of a step, writing the report) is the checker's, and not bounded; Ctrl-C ends it.

The child runs in a process group of its own, and whenever the wait ends (the child exited, was killed, or a
signal reached the parent) that group is killed: a process the user's code forked cannot outlive the check.
A child that finished its check but does not exit (a thread the user's code started keeps the interpreter
alive) is given ``LINGER`` seconds. The child is not reaped before its group is killed (``WNOWAIT``), so its
process id cannot have been given to another process.
"""

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from compare.check.sandbox.trail import Watch

POLL = 0.05  # seconds between looks at the child: a bound is acted on within this of its expiry
LINGER = 2.0  # seconds a child that finished its check has to exit before its group is killed


def bound(limit: float) -> float:
    """The wall-clock bound on one call under ``limit`` seconds: the limit, then 1 s and a tenth of the limit more,
    so that the child's own alarm, which waits for one long NumPy or torch operation to finish, ends the call
    and reports the timeout itself wherever it can."""
    return limit + 1.0 + limit / 10


@dataclass(frozen=True)
class Watched:
    """How the wait ended: ``exited`` when the child ended by itself (its exit status stands), ``overdue`` the
    time limit of the call the parent killed it for (``None``: none)."""

    exited: bool
    overdue: float | None


def exited(pid: int) -> bool:
    """Whether the child ``pid`` has ended, without reaping it (its id stays its own until it is waited for)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def kill_group(pid: int) -> None:
    """``SIGKILL`` to the child and to its process group (what the user's code forked); gone ones are fine."""
    for kill, target in ((os.kill, pid), (os.killpg, pid)):  # the child first: it may not have its group yet
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def supervise(pid: int, watch: Watch, limit: float | None, answered: Callable[[], bool] = lambda: False) -> Watched:
    """Wait for the child ``pid`` (leader of its own process group), its calls bounded (``bound(limit)``; ``None``:
    no bound), until it exits, or finished (the trail's ``done``, or ``answered()``) and lingers past ``LINGER``;
    then kill its group. A signal (``KeyboardInterrupt``) while waiting kills the group too, and propagates."""
    try:
        return _wait(pid, watch, limit, answered)
    finally:
        kill_group(pid)


def _wait(pid: int, watch: Watch, limit: float | None, answered: Callable[[], bool]) -> Watched:
    finished_at = None
    while not exited(pid):
        watch.poll()
        now = time.monotonic()
        if limit is not None and watch.open_since is not None and now - watch.open_since > bound(limit):
            return Watched(False, limit)
        if finished_at is None and (watch.finished or answered()):
            finished_at = now
        if finished_at is not None and now - finished_at > LINGER:
            return Watched(False, None)
        time.sleep(POLL)
    watch.poll()
    return Watched(True, None)
