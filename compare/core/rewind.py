"""The values before a step, kept so that a departure is judged by the departing step itself.

A free-running departure is adjudicated by one step from identical values (``compare.core.adjudication``).
That step must be the departing step: started from torch's values *before* it, on its batch. A step
started from torch's values after it is in effect the next step, where a rule that acts at a single step
(a threshold on the step count such as ρ_t > 4 instead of > 5, a warm-up's end, an averaging start)
agrees again, and the departure would read as drift.

So before every step that may be adjudicated (free-running, adjudication on, no wrong rule found yet), the
engine keeps:

* a clone of the manual side, for what only it holds: its schedule's position, its dropout generator,
  a rule's own counters (the state and parameters are replaced by torch's when it is used);
* torch's model, optimizer and schedule ``state_dict``, copied: parameters, buffers, the optimizer's state
  with its step counters and its groups' learning rates, the schedule's position.

On a departure, ``sides`` builds the scratch pair: a copy of the torch side with those state dicts loaded
(it then stands where torch stood before the step) and the kept manual clone holding its values. Both take
the departing step's batch. The cost is a copy of each side's parameters and optimizer state a step,
paid only on steps that may be adjudicated.
"""

import copy
from dataclasses import dataclass
from typing import Any

import torch

from compare.core import adjudication
from compare.core.torch_side import TorchSide


@dataclass(frozen=True)
class Before:
    """Both sides as they stood before step ``step``."""

    step: int
    manual: Any  # a clone of the manual side (``clone()``)
    model: dict  # torch's parameters and buffers, copied
    optimizer: dict  # torch's optimizer state_dict, copied
    schedule: dict | None  # torch's schedule's state_dict, or None without a schedule
    reference: Any = None  # a JAX reference kept whole (``scratch()``: its values are immutable), else None


def keep(step: int, manual: Any, reference: TorchSide) -> Before | None:
    """Both sides before ``step``, or ``None`` when the manual side cannot be cloned or loaded."""
    if not (hasattr(manual, "clone") and hasattr(manual, "load")):
        return None
    if not isinstance(reference, TorchSide):  # the JAX side (compare.core.jax_side): a copy of it is its state
        return Before(step, manual.clone(), {}, {}, None, reference.scratch())
    twin = reference.twin
    model = {name: tensor.detach().clone() for name, tensor in twin.model.state_dict().items()}
    schedule = None if twin.schedule is None else copy.deepcopy(twin.schedule.state_dict())
    return Before(step, manual.clone(), model, _copied(twin.optimizer.state_dict()), schedule)


def _copied(state_dict: dict) -> dict:
    """An optimizer's ``state_dict`` with its tensors cloned (a deep copy of the whole costs 5x more)."""
    state = {
        index: {key: _clone(value) for key, value in entries.items()} for index, entries in state_dict["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(state_dict["param_groups"])}


def sides(before: Before, reference: TorchSide) -> tuple[Any, TorchSide] | None:
    """The scratch pair at torch's values before the step (the kept manual clone, used once), or ``None``."""
    if before.reference is not None:
        manual = before.manual
        manual.load(before.reference.values(), before.reference.state())
        return manual, before.reference
    scratch = adjudication.scratch_reference(reference)
    if scratch is None:
        return None
    scratch.model.load_state_dict(before.model)
    scratch.optimizer.load_state_dict(before.optimizer)
    if scratch.schedule is not None and before.schedule is not None:
        scratch.schedule.load_state_dict(before.schedule)
    manual = before.manual
    manual.load(scratch.values(), scratch.state())
    return manual, scratch


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
