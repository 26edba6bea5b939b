"""The start of a running statistic that the user's layer creates on its first step (``None`` before it).

torch updates a running statistic as ``new = (1 − μ)·old + μ·batch`` (``momentum`` μ; with ``momentum=None``
the cumulative average, μ = 1/n after its n-th batch): linear in the old value, so torch's value after the
first step, had it started at ``c`` instead of its own start ``s``, is ``after + (1 − μ)·(c − s)``. The
user's value after the first step therefore tells which start it had: torch's own (it is then compared as
at any other step), one of the usual others (zeros, ones: a convention, ``INITIAL_BUFFER``, named), or none
of them (its update rule departs too: it is compared from the step after, where both sides start from the
user's value, and the diagnosis tries each start with each known mistake).
"""

import copy
import itertools
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from compare.check.diagnosis.conventions import INITIAL_BUFFER
from compare.core.metrics import diff
from compare.core.tolerances import tolerance

RUNNING_STATISTICS = ("running_mean", "running_var")  # the buffers torch's rule above updates
USUAL_STARTS = (0.0, 1.0)  # zeros (Keras' and the textbooks' running_var too, often), ones (torch's running_var)
LATE_STEPS = 2  # the step that creates the state, and the one after it, where its update rule is compared


def carry(module: nn.Module) -> float:
    """1 − μ: the share of the old value that ``module``'s running statistics keep at a step (after the step:
    with ``momentum=None``, 1 − 1/n after the n-th batch, 0 after the first)."""
    momentum = getattr(module, "momentum", None)
    if momentum is None:
        tracked = getattr(module, "num_batches_tracked", None)
        n = int(tracked) if tracked is not None else 1
        return 1.0 - 1.0 / max(n, 1)
    return 1.0 - float(momentum)


def torch_starts(model: nn.Module) -> dict[str, tuple[np.ndarray, float, str]]:
    """Each running statistic of ``model`` (its name in ``named_buffers``) → (its value now, the carry of its
    module, the module's class): what torch starts from, taken before the first step."""
    found = {}
    for name, buffer in model.named_buffers():
        prefix, _, key = name.rpartition(".")
        if key in RUNNING_STATISTICS:
            module = model.get_submodule(prefix) if prefix else model
            found[name] = (buffer.detach().cpu().numpy().copy(), carry(module), type(module).__name__)
    return found


def _close(mine: np.ndarray, theirs: np.ndarray, dtype: str) -> bool:
    return diff(np.asarray(mine), np.asarray(theirs)).within(tolerance(dtype, "state").max_rel)


def start_of(mine: np.ndarray, after: np.ndarray, start: np.ndarray, keep: float, dtype: str) -> np.ndarray | None:
    """The start (torch's own ``start`` first, then each of ``USUAL_STARTS``) from which torch's rule gives
    the user's value ``mine`` after the first step (``after``: torch's, from ``start``; ``keep``: 1 − μ), or
    ``None`` when none does."""
    start = np.asarray(start, dtype=np.float64)
    for candidate in [start, *(np.full(start.shape, value) for value in USUAL_STARTS)]:
        if np.shape(mine) == start.shape and _close(mine, np.asarray(after) + keep * (candidate - start), dtype):
            return candidate
    return None


def described(value: np.ndarray) -> str:
    """``zeros``, ``ones``, ``0.5 everywhere``, or ``other values``."""
    flat = np.asarray(value).reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return {0.0: "zeros", 1.0: "ones"}.get(float(flat[0]), f"{float(flat[0]):g} everywhere")
    return "other values"


def convention_note(key: str, found: np.ndarray, start: np.ndarray, torch_name: str, where: str) -> str | None:
    """The ``INITIAL_BUFFER`` convention's line when the user's start ``found`` is not torch's ``start``;
    ``where``: the twin's buffer as Python (``twin.running_var``, ``twin[1].running_var``)."""
    if np.array_equal(np.asarray(found), np.asarray(start, dtype=np.float64)):
        return None
    number = float(np.asarray(found).reshape(-1)[0]) if np.size(found) else 0.0
    words = {"key": key, "value": described(found), "default": described(start), "torch": torch_name}
    return INITIAL_BUFFER.note(**words, where=where, number=number)


def beside(key: str, found: np.ndarray, start: np.ndarray) -> str:
    """The convention's words appended to the diagnosis of a mistake in the statistic's update."""
    starts = f"starts at {described(found)}, torch's at {described(start)}"
    return f"; and convention:{INITIAL_BUFFER.name}: your {key} {starts}"


def undetermined_note(key: str) -> str:
    """The line for a statistic created on the first step whose value no start explains."""
    return (
        f"your {key} did not exist before the first step and torch's rule from no usual start (torch's, zeros, "
        "ones) gives its value after it: torch took that value after step 1 and its update is compared from step 2"
    )


def torch_like_note(key: str) -> str:
    """The line for a statistic created on the first step as torch's rule from torch's start gives it."""
    return f"your {key} did not exist before the first step and starts as torch's does (its value after it agrees)"


def uncompared_note(keys: list[str]) -> str:
    """The line for statistics created on the first step of a one-step check: their update is compared nowhere."""
    return (
        f"your {', '.join(keys)} did not exist before the first step: torch took {'it' if len(keys) == 1 else 'them'} "
        f"after it, and in one step {'its' if len(keys) == 1 else 'their'} update is compared at no step (pass "
        f"steps={LATE_STEPS} or more)"
    )


def starts_to_try(origin: nn.Module, found: Mapping[str, np.ndarray | None]) -> list[tuple[nn.Module, dict]]:
    """Copies of ``origin`` with each late statistic (``found``: its start told from step 1, or ``None``: not
    told) set to a start to replay from: the one told, else torch's own, zeros, ones; every combination, the
    one closest to torch's first. Each with the starts that differ from torch's."""
    buffers = dict(origin.named_buffers())
    choices = []
    for key, start in found.items():
        own = buffers[key].detach().cpu().numpy().astype(np.float64)
        values = [start] if start is not None else [own, *(np.full(own.shape, value) for value in USUAL_STARTS)]
        values = [value for i, value in enumerate(values) if not any(np.array_equal(value, v) for v in values[:i])]
        choices.append([(key, value, not np.array_equal(value, own)) for value in values])
    tried = []
    for combination in itertools.product(*choices):
        module = copy.deepcopy(origin)
        named = dict(module.named_buffers())
        with torch.no_grad():
            for key, value, _ in combination:
                named[key].copy_(torch.as_tensor(value, dtype=named[key].dtype))
        tried.append((module, {key: value for key, value, differs in combination if differs}))
    return tried
