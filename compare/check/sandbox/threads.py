"""Small checks run single-threaded: torch's intra-op threads and NumPy's BLAS threads cost more than they
give on a small layer, loss, optimizer or network, and a suite of checks under pytest-xdist (or any other busy
process) turns spare threads into oversubscription. A check whose arrays and modules hold fewer than
``LARGE`` elements runs with one torch thread and one BLAS thread (threadpoolctl); both are restored after.
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

LARGE = 1 << 20  # elements: from about a million (a 784-512-512-10 network at batch 256) threads pay again


def size_of(value: Any) -> int:
    """How many numbers an argument holds: an array, a module's parameters, a dict or list of arrays."""
    if isinstance(value, np.ndarray | torch.Tensor):
        return int(np.prod(value.shape))
    if isinstance(value, nn.Module):
        return sum(p.numel() for p in value.parameters())
    if isinstance(value, dict):
        return sum(size_of(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(size_of(item) for item in value[:1000])
    params = getattr(value, "params", None)
    return size_of(params) if isinstance(params, dict) else 0


@contextmanager
def limited(elements: int) -> Iterator[None]:
    """One torch and one BLAS thread while the block runs, when ``elements`` is below ``LARGE``."""
    if elements >= LARGE:
        yield
        return
    before = torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def small_check(check: Callable) -> Callable:
    """``check`` run single-threaded when its arguments are small (``limited``)."""

    @functools.wraps(check)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with limited(sum(size_of(value) for value in (*args, *kwargs.values()))):
            return check(*args, **kwargs)

    return wrapped
