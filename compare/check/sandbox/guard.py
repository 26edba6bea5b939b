"""Safety around other people's code: copies in, exceptions and time limits out as findings.

Everything handed to user code is a fresh copy the checker never compares against afterwards, so a
backward that writes into ``dout`` (a textbook ReLU's ``dout[self.mask] = 0``) cannot change what torch
receives or what is compared. An exception raised inside user code becomes ``UserCodeError``, which the
``check_*`` functions turn into the report's first failure: step, stage and where, the exception in one
line, the traceback kept.

Time limits: every ``call`` into user code under a ``check_*`` decorated with ``limited`` has
``time_limit`` seconds (default ``DEFAULT_TIME_LIMIT``); one that runs past it becomes the finding
``timeout: <call>, step N, <stage>`` and the check ends there. The mechanism is ``SIGALRM`` (an interval
timer) on the main thread: its handler raises at the next Python bytecode, which stops a Python loop
and interrupts ``time.sleep`` and other blocking system calls. It cannot stop C code that never returns
to the interpreter (one huge NumPy or torch operation ends first, then the timeout is raised; a C
extension spinning forever is not stopped), nor user code that catches ``BaseException`` and carries on
(in a sandboxed child the parent stops those from outside: ``compare.check.sandbox.watchdog``).
Off the main thread (a signal can only be handled there) no limit is enforced, and the report's notes
say so.
"""

import contextlib
import copy
import functools
import inspect
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from compare.check.report import Failure
from compare.check.sandbox.misbehaviour import FIXES


class UserCodeError(Exception):
    """User code raised; ``failure`` says where and what."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.line())
        self.failure = failure


def fresh(value: Any) -> Any:
    """A copy the user's code may do anything with (arrays copied, containers copied deeply)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    return copy.deepcopy(value)


def one_line(error: BaseException) -> str:
    text = str(error).replace("\r", "\\r").replace("\n", " ")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


DEFAULT_TIME_LIMIT = 60.0  # seconds per call into user code: generous, a tiny check takes milliseconds
# The longest limit: a week. The interval timer takes seconds as a C time value, and a limit far past any
# run (1e308) overflows it; a week is longer than any check and far inside every platform's range.
MAX_TIME_LIMIT = 7 * 24 * 3600.0


class TimedOut(BaseException):
    """Raised by the alarm inside a call past its limit (a ``BaseException``, so that a user's
    ``except Exception`` does not swallow it)."""


class _Limits(threading.local):
    seconds: float | None = None  # the limit of the check running on this thread (None: none)
    armed: bool = False  # a call on the main thread is under the alarm now
    fired: bool = False  # the alarm went off in the current call (torch may rewrap TimedOut raised in a hook)
    unenforced: bool = False  # a call ran where no alarm can be set (off the main thread)


_limits = _Limits()


def _on_alarm(signum: int, frame: object) -> None:
    if _limits.armed:
        _limits.fired = True
        raise TimedOut


@contextlib.contextmanager
def _alarm() -> Iterator[None]:
    """The current limit on the enclosed call: only the outermost guarded call sets the timer."""
    seconds = _limits.seconds
    if seconds is None or _limits.armed:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        _limits.unenforced = True
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    _limits.armed, _limits.fired = True, False
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _limits.armed = False  # first: an alarm delivered from here on is ignored
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_time_limit(seconds: float | None) -> None:
    if seconds is not None and not (isinstance(seconds, int | float) and 0 < seconds <= MAX_TIME_LIMIT):
        raise ValueError(
            f"time_limit must be a positive number of seconds, at most {MAX_TIME_LIMIT:g} (or None for none), "
            f"got {seconds!r}"
        )


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Each ``call`` made inside has ``seconds`` (``None``: no limit)."""
    check_time_limit(seconds)
    outer = (_limits.seconds, _limits.unenforced)
    _limits.seconds, _limits.unenforced = seconds, False
    try:
        yield
    finally:
        _limits.seconds, _limits.unenforced = outer


def limited(check: Callable) -> Callable:
    """For a ``check_*`` with a ``time_limit`` parameter: each ``call`` it makes has that many seconds."""
    default = inspect.signature(check).parameters["time_limit"].default

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        seconds = kwargs.get("time_limit", default)
        with time_limit(seconds):
            report = check(*args, **kwargs)
            if _limits.unenforced and hasattr(report, "notes"):
                report.notes.append(f"time_limit={seconds} s was not enforced: the check ran off the main thread")
        return report

    return wrapper


def misbehaved(step: int, stage: str, where: str, problem: str, detail: str) -> UserCodeError:
    """A misbehaviour (``compare.check.sandbox.misbehaviour``) as a finding: ``<problem>: <call>, step N, <stage>:
    <what happened>; fix: <what to do>``."""
    message = f"{problem}: {where}, step {step}, {stage}: {detail}; fix: {FIXES[problem]}"
    return UserCodeError(Failure(step, stage, where, np.inf, np.inf, problem=problem, message=message))


def returned(value: Any, step: int, stage: str, where: str, dtype: np.dtype | None = None) -> np.ndarray:
    """A value user code returned where an array is due: ``None``, a list or tuple, or an array of
    something other than numbers is a finding; anything else becomes a NumPy array (``as_array``)."""
    if value is None:
        raise misbehaved(step, stage, where, "none", "returned None where an array is due")
    if isinstance(value, list | tuple):
        raise misbehaved(step, stage, where, "type", f"returned a Python {type(value).__name__}, not an array")
    array = as_array(value, dtype)
    if array.dtype.kind not in "biuf":
        raise misbehaved(step, stage, where, "type", f"returned an array of {array.dtype}, not of numbers")
    return array


def left_alone(before: dict[str, np.ndarray], after: dict[str, Any], step: int, stage: str, where: str) -> None:
    """Arrays ``where`` must not change (a forward's parameters and input): each one changed is a finding."""
    for name, original in before.items():
        now = after.get(name)
        if isinstance(now, np.ndarray) and wrote_into(original, now):
            raise misbehaved(step, stage, where, "mutated", f"changed {name} (a forward only reads)")


def same_arrays(before: dict[str, int], params: dict[str, Any], step: int, stage: str, where: str) -> None:
    """``before``: ``id`` of each array of an in-place protocol; one replaced by a new array is a finding."""
    for name, identity in before.items():
        if id(params.get(name)) != identity:
            raise misbehaved(step, stage, where, "replaced", f"replaced {name} with a new array")


# told of every call into user code, as it begins and as it ends (a sandbox's trail)
_on_call: list[tuple[Callable[[int, str, str], None], Callable[[], None]]] = []


def on_call(begin: Callable[[int, str, str], None], end: Callable[[], None]) -> None:
    """``begin(step, stage, where)`` before every ``call`` from now on, in this process, and ``end()`` after it
    (``compare.check.sandbox.trail``: where a child that died was, and how long its call has been running)."""
    _on_call.append((begin, end))


def call(step: int, stage: str, where: str, function: Callable, *args, **kwargs) -> Any:
    """``function(*args, **kwargs)``; an exception becomes ``UserCodeError`` at (step, stage, where), and
    so does a call past the check's time limit, and ``sys.exit`` (the finding ``exit``)."""
    for begin, _ in _on_call:
        begin(step, stage, where)
    try:
        return _guarded(step, stage, where, function, *args, **kwargs)
    finally:
        for _, end in _on_call:
            end()


def _guarded(step: int, stage: str, where: str, function: Callable, *args, **kwargs) -> Any:
    started = time.monotonic()
    try:
        with _alarm():
            return function(*args, **kwargs)
    except UserCodeError:
        raise
    except SystemExit as error:  # sys.exit() or exit(): the check's finding, not the checker's exit status
        raise misbehaved(step, stage, where, "exit", f"called sys.exit({error.code!r})") from None
    except (TimedOut, Exception) as error:  # any exception in user code is a finding
        if isinstance(error, TimedOut) or _limits.fired:  # the alarm's (C++ code it passed may rewrap it)
            _limits.fired = False
            limit = _limits.seconds if _limits.seconds is not None else time.monotonic() - started
            raise misbehaved(step, stage, where, "timeout", f"did not return within {limit:g} s (time_limit)") from None
        failure = Failure(
            step, stage, where, np.inf, np.inf, problem="exception", message=one_line(error),
            traceback=traceback.format_exc(),
        )  # fmt: skip
        raise UserCodeError(failure) from error


def as_array(value: Any, dtype: np.dtype | None = None) -> np.ndarray | None:
    """User output as a NumPy array (a float, a list, a torch tensor), or ``None`` for none."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # a torch tensor handed back
        value = value.detach().cpu().numpy()
    array = np.array(value, copy=True)
    if dtype is not None and array.dtype.kind == "f":
        array = array.astype(dtype, copy=False)
    return array


def wrote_into(original: np.ndarray, handed: np.ndarray) -> bool:
    """Whether user code changed the copy it was handed (it is allowed to; the report notes it)."""
    return handed.shape != original.shape or not np.array_equal(handed, original, equal_nan=True)
