"""Safety around other people's code: copies in, exceptions out as findings.

Everything handed to user code is a fresh copy the checker never compares against afterwards, so a
backward that writes into ``dout`` (a textbook ReLU's ``dout[self.mask] = 0``) cannot change what torch
receives or what is compared. An exception raised inside user code becomes ``UserCodeError``, which the
``check_*`` functions turn into the report's first failure: step, stage and where, the exception in one
line, the traceback kept.
"""

import copy
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from compare.check.report import Failure


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


def call(step: int, stage: str, where: str, function: Callable, *args, **kwargs) -> Any:
    """``function(*args, **kwargs)``; an exception becomes ``UserCodeError`` at (step, stage, where)."""
    try:
        return function(*args, **kwargs)
    except Exception as error:  # any exception in user code is a finding
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
