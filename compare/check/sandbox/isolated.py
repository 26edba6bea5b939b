"""``check_*(..., isolate=True)``: the check in a child process, for a notebook whose kernel must outlive
the user's code.

The check runs in a child started by ``multiprocessing``'s *spawn* context (a fresh interpreter: no
copy of the parent's threads or locks, as a ``fork`` would make), in a process group of its own, under an
address-space limit (``memory_limit``, GiB: ``RLIMIT_AS``, past which an allocation raises ``MemoryError``,
an exception finding) and the check's own per-call ``time_limit`` (``compare.check.sandbox.guard``, enforced
on the child's main thread, and from the parent should that fail: ``compare.check.sandbox.watchdog``, the
finding ``timeout``). When the parent's wait ends (an answer, a death, a call past its bound, a
``KeyboardInterrupt``) the child's process group is killed, with anything the user's code forked. Its
arguments travel pickled, so the user's objects must be picklable by reference: a class defined in a
notebook cell lives in ``__main__``, which the child cannot import; that is said in one line (a
``ValueError``), never a hang. The ``Report`` (or the ``InputError`` the check raised there) comes back
through a pipe. A child that dies instead (``os._exit``, a crash, a signal) is the report's first failure,
problem ``died``, naming the last call into user code from the trail (``compare.check.sandbox.trail``).

``entry_point`` is the one decorator each ``check_*`` takes: ``isolatable`` with ``report_dir=``, the
time limit and the single thread of a small check.
"""

import functools
import importlib
import inspect
import multiprocessing
import os
import pickle
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compare.check.report import Failure, Report, saves_report
from compare.check.sandbox import guard, trail, watchdog
from compare.check.sandbox.child import DEFAULT_MEMORY_GIB, GIB, MAX_MEMORY_GIB, Ended
from compare.check.sandbox.threads import small_check
from compare.errors import InputError


def isolatable(check: Callable) -> Callable:
    """``check`` with two more keywords: ``isolate`` (run it in a child process) and ``memory_limit`` (GiB)."""

    @functools.wraps(check)
    def wrapper(*args: Any, isolate: bool = False, memory_limit: float = DEFAULT_MEMORY_GIB, **kwargs: Any) -> Report:
        if not isolate:
            return check(*args, **kwargs)
        return run_isolated(check, args, kwargs, memory_limit)

    return wrapper


def entry_point(check: Callable[..., Report] | None = None, *, single_threaded: bool = True) -> Any:
    """A ``check_*`` entry point's one decorator: ``report_dir=`` (``compare.check.report.saves_report``),
    ``isolate=``/``memory_limit=`` (``isolatable``), its ``time_limit`` on each call (``guard.limited``) and,
    unless ``single_threaded=False``, one thread when its arguments are small (``threads.small_check``).
    ``@entry_point`` or ``@entry_point(single_threaded=False)``."""

    def decorate(check: Callable[..., Report]) -> Callable[..., Report]:
        inner = guard.limited(small_check(check) if single_threaded else check)
        return saves_report(isolatable(inner))

    return decorate if check is None else decorate(check)


def run_isolated(check: Callable, args: tuple, kwargs: dict, memory_gib: float) -> Report:
    """``check(*args, **kwargs)`` in a spawned child; its ``Report``, or one whose first failure says how it died
    (or that a call ran past its bound, ``compare.check.sandbox.watchdog``, and the child was killed for it)."""
    if not 0 < memory_gib <= MAX_MEMORY_GIB:
        most = f"at most {MAX_MEMORY_GIB:g}"
        raise ValueError(f"memory_limit must be a positive number of GiB, {most}, got {memory_gib!r}")
    parameter = inspect.signature(check).parameters.get("time_limit")
    limit = kwargs.get("time_limit", parameter.default if parameter is not None else None)
    guard.check_time_limit(limit)  # here, not in the child: a bad limit is the caller's ValueError
    payload = pickle.dumps((args, kwargs))
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    with tempfile.TemporaryDirectory(prefix="backprop-parity-trail-") as folder:
        path = Path(folder) / "trail"
        where = (check.__module__, check.__name__)
        process = context.Process(target=_child, args=(where, payload, send, str(path), memory_gib), daemon=True)
        process.start()
        inbox = Inbox(receive)
        try:
            send.close()
            watched = watchdog.supervise(process.pid, trail.Watch(path), limit, inbox.answered)
            inbox.answered()  # what it sent before it exited
        finally:  # a KeyboardInterrupt (the notebook's stop button) ends the child's group too
            watchdog.kill_group(process.pid)
            process.join()
        read = trail.read(path)
    if isinstance(inbox.answer, Report):
        return inbox.answer
    if isinstance(inbox.answer, InputError):
        raise inbox.answer
    if isinstance(inbox.answer, str):
        raise ValueError(inbox.answer)
    status = process.exitcode if process.exitcode is not None else -9
    ended = Ended(status, False, read.last_call, None, watched.overdue)
    return Report(check.__name__.removeprefix("check_"), error=_failure(ended))


def _failure(ended: Ended) -> Failure:
    """The child's death (or the call it was killed for) as the report's first failure."""
    step, stage, call = ended.call()
    line = ended.line("your code").removeprefix("FAIL: ")
    problem, message = ("timeout", line) if ended.overdue is not None else ("died", f"died: {line}")
    return Failure(int(step) if step.isdigit() else 0, stage, call, np.inf, np.inf, problem=problem, message=message)


class Inbox:
    """What the child sends, read as it comes (a report larger than the pipe's buffer would block the child until
    it is read): ``answer``, ``None`` until one came."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.answer: Any = None
        self._closed = False

    def answered(self) -> bool:
        if self.answer is None and not self._closed and self.connection.poll():
            try:
                self.answer = self.connection.recv()
            except EOFError:  # the child died without answering
                self._closed = True
        return self.answer is not None


def _child(where: tuple[str, str], payload: bytes, send: Any, path: str, memory_gib: float) -> None:
    """The child's side: a process group of its own, the address-space limit, the trail, the check, the report
    sent back."""
    os.setpgid(0, 0)  # what the user's code forks is in it: the parent kills the group when its wait ends
    limit = int(memory_gib * GIB)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ[trail.TRAIL] = path
    trail.start()
    try:
        args, kwargs = pickle.loads(payload)
    except Exception as error:
        send.send(
            f"isolate=True could not rebuild your objects in the child process ({type(error).__name__}: {error}); "
            "define their classes in a module file and import them, or check without isolate"
        )
        return
    check = getattr(importlib.import_module(where[0]), where[1])
    try:
        answer = check(*args, **kwargs)
    except InputError as error:  # bad input (a check that compared nothing, say): the caller's one line
        answer = error
    send.send(answer)
