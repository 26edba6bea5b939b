"""The values before a step, kept so that a departure is judged by the departing step itself.

A free-running departure is adjudicated by one step from identical values (``compare.core.adjudication``).
That step must be the departing step: started from torch's values *before* it, on its batch. A step
started from torch's values after it is in effect the next step, where a rule that acts at a single step
(a threshold on the step count such as ρ_t > 4 instead of > 5, a warm-up's end, an averaging start)
agrees again, and the departure would read as drift.

So before every step that may be adjudicated (free-running, adjudication on, no wrong rule found yet), the
engine keeps:

* a clone of the manual side, for what only it holds: its schedule's position, its dropout generator,
  a rule's own counters. The state and parameters are replaced by torch's when it is used, so a side with
  ``clone_for_rewind`` (``ManualSide``) copies none of the arrays ``load`` will overwrite (its gradients are
  copied: a side that never zeroes them adds the step's to them);
* the reference side's own copy of itself, ``kept()``: torch's model, optimizer and schedule ``state_dict``
  (parameters, buffers, the optimizer's state with its step counters and its groups' learning rates, the
  schedule's position; ``TorchSide.kept``), or the JAX side whole (its values are immutable).

On a departure, ``sides`` builds the scratch pair: the reference's ``restored(kept)`` (it then stands where
it stood before the step) and the kept manual clone holding its values. Both take
the departing step's batch. The cost is a copy of each side's parameters and optimizer state a step,
paid only on steps that may be adjudicated.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Before:
    """Both sides as they stood before step ``step``."""

    step: int
    manual: Any  # a clone of the manual side (``clone()`` or ``clone_for_rewind()``), valid once loaded
    reference: Any  # what the reference side's ``kept()`` copied


def keep(step: int, manual: Any, reference: Any) -> Before | None:
    """Both sides before ``step``, or ``None`` when the manual side cannot be cloned or loaded."""
    if not (hasattr(manual, "clone") and hasattr(manual, "load")):
        return None
    clone_for_rewind = getattr(manual, "clone_for_rewind", None)
    if clone_for_rewind is None:
        return Before(step, manual.clone(), reference.kept())
    # only what load() will not overwrite is copied: the names and state entries the reference holds now
    return Before(step, clone_for_rewind(reference.values().keys(), reference.state()), reference.kept())


def sides(before: Before, reference: Any) -> tuple[Any, Any] | None:
    """The scratch pair at the reference's values before the step (the kept manual clone, used once), or
    ``None`` when the reference cannot be copied (it is then not adjudicated)."""
    try:
        scratch = reference.restored(before.reference)
    except Exception:  # as adjudication.scratch_reference: a reference that cannot be copied is not adjudicated
        return None
    manual = before.manual
    manual.load(scratch.values(), scratch.state())
    return manual, scratch
