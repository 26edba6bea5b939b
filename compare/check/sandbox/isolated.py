"""``check_*(..., isolate=True)``: the check in a child process, for a notebook whose kernel must outlive
the user's code.

The check runs in a child started by ``multiprocessing``'s *spawn* context (a fresh interpreter: no
copy of the parent's threads or locks, as a ``fork`` would make), under an address-space limit
(``memory_limit``, GiB: ``RLIMIT_AS``, past which an allocation raises ``MemoryError``, an exception
finding) and the check's own per-call ``time_limit`` (``compare.check.sandbox.guard``, enforced on the child's
main thread). Its arguments travel pickled, so the user's objects must be picklable by reference: a class
defined in a notebook cell lives in ``__main__``, which the child cannot import; that is said in one line
(a ``ValueError``), never a hang. The ``Report`` comes back through a pipe. A child that dies instead
(``os._exit``, a crash, a signal) is the report's first failure, problem ``died``, naming the last call
into user code from the trail (``compare.check.sandbox.trail``).
"""

import functools
import importlib
import multiprocessing
import os
import pickle
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compare.check.report import Failure, Report
from compare.check.sandbox import trail
from compare.check.sandbox.child import DEFAULT_MEMORY_GIB, GIB, MAX_MEMORY_GIB, Ended


def isolatable(check: Callable) -> Callable:
    """``check`` with two more keywords: ``isolate`` (run it in a child process) and ``memory_limit`` (GiB)."""

    @functools.wraps(check)
    def wrapper(*args: Any, isolate: bool = False, memory_limit: float = DEFAULT_MEMORY_GIB, **kwargs: Any) -> Report:
        if not isolate:
            return check(*args, **kwargs)
        return run_isolated(check, args, kwargs, memory_limit)

    return wrapper


def run_isolated(check: Callable, args: tuple, kwargs: dict, memory_gib: float) -> Report:
    """``check(*args, **kwargs)`` in a spawned child; its ``Report``, or one whose first failure says how it died."""
    if not 0 < memory_gib <= MAX_MEMORY_GIB:
        most = f"at most {MAX_MEMORY_GIB:g}"
        raise ValueError(f"memory_limit must be a positive number of GiB, {most}, got {memory_gib!r}")
    payload = pickle.dumps((args, kwargs))
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    with tempfile.TemporaryDirectory(prefix="backprop-parity-trail-") as folder:
        path = Path(folder) / "trail"
        where = (check.__module__, check.__name__)
        process = context.Process(target=_child, args=(where, payload, send, str(path), memory_gib), daemon=True)
        process.start()
        send.close()
        try:
            answer = receive.recv()
        except EOFError:  # the child died without answering
            answer = None
        process.join()
        read = trail.read(path)
    if isinstance(answer, Report):
        return answer
    if isinstance(answer, str):
        raise ValueError(answer)
    ended = Ended(process.exitcode if process.exitcode is not None else -9, False, read.last_call, None)
    step, stage, call = ended.call()
    kind = check.__name__.removeprefix("check_")
    message = f"died: {ended.line('your code').removeprefix('FAIL: ')}"
    failure = Failure(int(step) if step.isdigit() else 0, stage, call, np.inf, np.inf, problem="died", message=message)
    return Report(kind, error=failure)


def _child(where: tuple[str, str], payload: bytes, send: Any, path: str, memory_gib: float) -> None:
    """The child's side: the address-space limit, the trail, the check, the report sent back."""
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
    send.send(check(*args, **kwargs))
