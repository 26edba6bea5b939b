"""Discontinuous decisions on rounding noise: the reference's branch followed, counted and said.

A rule that branches on the sign of a value turns a difference of rounding into a difference of rule when
that value lies within rounding of 0. Where an element's exact gradient is 0 (a BatchNorm β behind a unit
in one regime over the whole batch, a saturated tanh in float32), each side's gradient is rounding noise;
a rule that steps by sign(g) then moves θ by +Δ on one side and −Δ on the other, and one that grows or
shrinks a step size by the sign of g·p parts it by η+/η−. No tolerance can excuse that, and no step from
identical values removes it: the rounding is in the step itself.

So before the manual update, for a rule that declares such branches (``manual.optim.rule.Rule.branch_state``
and ``branch_values``, read from the rule registered for the reference's optimizer class, i.e. torch's
branches), every element is read on both sides. An element's branch is *undecidable* when

* each input to the decision (the gradient, the state keys named) differs between the sides by no more
  than its noise floor (``compare.core.noise``: the very bound by which the checker calls them equal), and
* the signs of the branch values, computed by the same formula from each side's inputs, still differ.

For those elements only, the manual side is handed torch's inputs (its gradient element and state
elements are overwritten by torch's, each within noise of its own), and then the manual side runs its own
rule, on every element. This keeps the sides honest: the manual side never receives a decision, only
inputs it could itself have computed, so a wrong rule (η+ and η− swapped, a step against the gradient)
still decides wrongly from them and fails where it acts; every other element is decided on the manual
side's own values. The elements followed are counted per step and the verdict says so
("3 sign decisions on rounding noise followed torch's").

Branches that are continuous in their inputs need no referee: a max (AMSGrad's max_exp_avg_sq, the
infinity norm's u), a clamp (step-size bounds) or a ReLU's output differ on either side of the branch point
by no more than their inputs did, which the tolerance already covers. A branch on the step count (the
rectified rule's ρ_t > 5) reads an integer that both sides hold exactly: it is decided alike or wrongly,
never on noise (``compare.core.adjudication`` judges the departing step itself, from torch's values).

Only a side that hands out its live arrays (``refereed = True``, the package's ``ManualSide``) is
refereed; any other side decides on its own values throughout.
"""

from collections.abc import Callable

import numpy as np

from compare.core import noise, scales
from compare.core.checks import Checks
from compare.core.side import Side
from compare.core.torch_side import ReferencePass, TorchSide
from manual.optim import REGISTRY

Branches = tuple[tuple[str, ...], Callable[..., tuple[np.ndarray, ...]]]


def declared(manual: Side, reference: TorchSide) -> Branches | None:
    """The state keys and branch values of the rule registered for torch's optimizer class, if it has any and
    ``manual`` is refereed (``refereed = True``); asked once a run (``compare.core.engine.Lockstep``), so a rule
    without a branch costs its steps nothing. A JAX reference (``compare.core.jax_side``) has none: optax
    cannot express the rules that declare a branch, and a run that asks for it is refused before it starts."""
    if not getattr(manual, "refereed", False) or not isinstance(reference, TorchSide):
        return None
    torch_class = type(reference.optimizer).__name__
    for entry in REGISTRY.values():
        if entry.torch_class == torch_class and entry.rule.branch_state is not None:
            return entry.rule.branch_state, entry.rule.branch_values
    return None


def follow(
    branches: Branches,
    checks: Checks,
    manual: Side,
    reference: TorchSide,
    reference_pass: ReferencePass,
    conditioning: dict[str, float],
) -> int:
    """Hands the manual side torch's inputs wherever a declared branch (``declared``) is undecidable; returns
    how many elements were handed. Called after the gradients are compared and before either side's update."""
    keys, values = branches
    manual_grads, reference_grads = manual.grads(), reference.grads()
    manual_state, reference_state = manual.state(), reference.state()
    followed = 0
    for name, g_torch in reference_grads.items():
        g_manual = manual_grads.get(name)
        if g_manual is None or np.shape(g_manual) != np.shape(g_torch):
            continue  # a missing or misshapen gradient is the grad stage's finding
        own = {key: manual_state.get(name, {}).get(key) for key in keys}
        if any(not isinstance(value, np.ndarray) or value.shape != np.shape(g_torch) for value in own.values()):
            continue  # state the manual side does not keep as torch does: the state stage's finding
        theirs = {key: reference_state.get(name, {}).get(key, np.zeros_like(g_torch)) for key in keys}
        mask = _undecidable(checks, name, (g_manual, own), (g_torch, theirs), reference_pass, conditioning, values)
        if mask is None:
            continue
        if not followed:
            checks.collect()  # the gradients judged (in the background too) before they are handed over
        np.copyto(g_manual, g_torch, where=mask, casting="same_kind")
        for key in keys:
            np.copyto(own[key], theirs[key], where=mask, casting="same_kind")
        followed += int(np.count_nonzero(mask))
    return followed


def _undecidable(checks, name, manual_inputs, reference_inputs, reference_pass, conditioning, values):
    """The mask of ``name``'s undecidable elements, or ``None`` when there is none."""
    (g_manual, own), (g_torch, theirs) = manual_inputs, reference_inputs
    grad_noise = noise.floor(g_torch, checks.dtype, "grad", checks.device, reference_pass.floors["grad"].get(name, 0.0))
    close = noise.within(g_manual, g_torch, grad_noise)
    for key, value in theirs.items():
        amplification = scales.state_amplification(key, conditioning.get(name, 1.0))
        bound = noise.floor(value, checks.dtype, "state", checks.device, 0.0, amplification)
        close &= noise.within(own[key], value, bound)
    differ = np.zeros(np.shape(g_torch), dtype=bool)
    for mine, torch_value in zip(values(g_manual, own), values(g_torch, theirs), strict=True):
        differ |= np.sign(mine) != np.sign(torch_value)
    mask = close & differ
    return mask if mask.any() else None
