"""The stages of a step, one function each, in the order ``Lockstep.step`` calls them: the order of
``compare.core.tolerances.STAGES``, the one list by which a step's first failure is found
(``compare.core.records.StepRecord.first_failure``) and reports and TensorBoard list the stages:

* ``forward``: every layer's output, ``<i>.out`` (skipped when the manual side exposes none);
* ``loss``: the scalar loss;
* ``grad``: in chain-rule order from the loss down, dL/d``<i>.out`` and each layer's parameter
  gradients (``<i>.weight``, ``<i>.bias``); with clipping, then ``total_norm`` and every
  ``<param>.clipped`` gradient;
* ``state``: the learning rate used (``lr``), every optimizer-state tensor after the update,
  ``<param>.<key>`` (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``step``, ...),
  and the buffers (BatchNorm's ``running_mean``, ``running_var``, ``num_batches_tracked``);
* ``param``: every parameter after the update;
* ``eval`` (models whose output depends on the mode: Dropout, BatchNorm): every layer's output in
  evaluation mode, on the same batch, after the update.
"""

import math

import numpy as np

from compare.core import scales
from compare.core.checks import Checks
from compare.core.metrics import TensorDiff
from compare.core.records import Check
from compare.core.side import Pass, Side
from compare.core.torch_side import ReferencePass, TorchSide

DROPOUT_IMPROBABLE = 1e-9  # a keep fraction less likely than this under 1 − p fails


def forward(checks: Checks, manual: Pass, reference: ReferencePass) -> None:
    if manual.outputs is None:
        return
    for name, out in reference.outputs.items():
        checks.add("forward", name, manual.outputs.get(name), out, reference.floors["forward"][name])


def dropout_keep(checks: Checks, masks: dict, reference: TorchSide, counts: dict[int, list[int]]) -> None:
    """The manual side's dropout masks, counted over the run so far (torch applies them, so a mask drawn
    with the keep and drop probabilities swapped would otherwise pass): ``k`` kept of ``n`` elements
    against torch's keep probability ``q = 1 − p``. By Hoeffding's inequality
    ``P(|k/n − q| ≥ t) ≤ 2·exp(−2nt²)`` for a correct draw; the fraction fails, as ``<i>.mask``, once
    that bound drops below ``DROPOUT_IMPROBABLE`` (about 1e-9 of the runs, at most, fail wrongly; a
    swapped 0.3 is caught after about 70 elements)."""
    for index, mask in masks.items():
        if mask is None:
            continue
        count = counts.setdefault(index, [0, 0])
        count[0] += int(np.count_nonzero(mask))
        count[1] += int(np.size(mask))
        kept, total = count
        keep = reference.keep_probability(index)
        gap = abs(kept / total - keep)
        if 2.0 * math.exp(-2.0 * total * gap * gap) < DROPOUT_IMPROBABLE:
            problem = f"dropout-keep:{kept}/{total} kept, 1-p={keep:g}"
            failure = TensorDiff(gap, gap / max(keep, 1e-300), (), problem)
            checks.collect().append(Check(checks.step, "forward", f"{index}.mask", failure, 0.0))


def loss(checks: Checks, manual: Pass, reference: ReferencePass) -> None:
    checks.add("loss", "loss", np.float64(manual.loss), reference.loss, reference.floors["loss"]["loss"])


def grad(checks: Checks, manual: Pass, reference: ReferencePass) -> dict[str, float]:
    """The gradients in chain-rule order; returns each parameter's conditioning (how much its gradient
    cancelled, ≥ 1), which its optimizer state inherits."""
    conditioning = {}
    floors = reference.floors["grad"]
    for name in reference.grad_order:
        if name in reference.output_grads:
            if manual.output_grads is not None:
                checks.add("grad", name, manual.output_grads.get(name), reference.output_grads[name], floors[name])
            continue
        checks.add("grad", name, manual.grads.get(name), reference.grads[name], floors[name])
        conditioning[name] = scales.conditioning(floors[name], reference.grads[name])
    return conditioning


def clipped(checks: Checks, manual: Side, reference: TorchSide, max_norm: float, floors: dict[str, float]) -> None:
    """Both sides clip their gradients in place; the total norm and every clipped gradient compared.
    A clipped gradient is its gradient times c = min(max_norm / (norm + 1e-6), 1), so its floor is the
    gradient's floor (``floors``, the grad stage's) times c: cancellation survives the scaling."""
    total = np.float64(reference.clip(max_norm))
    checks.add("grad", "total_norm", np.float64(manual.clip(max_norm)), total)
    coefficient = min(max_norm / (float(total) + 1e-6), 1.0) if np.isfinite(total) else 1.0
    reference_grads = reference.grads()
    for name, value in manual.grads().items():
        floor = floors.get(name, 0.0) * coefficient
        checks.add("grad", f"{name}.clipped", value, reference_grads.get(name), floor)


def state(
    checks: Checks, manual: Side, reference: TorchSide, lrs: tuple[float, float], conditioning: dict[str, float]
) -> None:
    """The lr used, the optimizer state after the update, the buffers. A side whose ``state()`` is
    ``None`` does not expose its state: it is not compared. The manual side's ``state_keys``, when set, limits
    the keys compared."""
    checks.add("state", "lr", np.float64(lrs[0]), np.float64(lrs[1]))
    manual_state, reference_state = manual.state(), reference.state()
    if manual_state is not None:
        allowed = getattr(manual, "state_keys", None)
        for name, reference_entries in reference_state.items():
            manual_entries = manual_state.get(name, {})
            keys = set(manual_entries) | set(reference_entries)
            for key in sorted(keys if allowed is None else keys & allowed):
                amplification = scales.state_amplification(key, conditioning.get(name, 1.0))
                checks.add_state(f"{name}.{key}", manual_entries.get(key), reference_entries.get(key), amplification)
    manual_buffers = manual.buffers()
    for name, buffer in reference.buffers().items():
        checks.add_state(name, manual_buffers.get(name), buffer)


def param(checks: Checks, manual: Side, reference: TorchSide) -> None:
    """Every parameter after the update, each with the floor the reference gives it (``param_floors``)."""
    manual_params = manual.parameters()
    floors = reference.param_floors()
    for name, value in reference.parameters().items():
        checks.add("param", name, manual_params.get(name), value, floors.get(name, 0.0))


def evaluation(checks: Checks, manual: Side, reference: TorchSide, x: np.ndarray) -> None:
    if not reference.mode_dependent:
        return
    manual_outs = manual.eval_outputs(x)
    if manual_outs is None:
        return
    outs, floors = reference.eval_pass(x)
    for name, out in outs.items():
        checks.add("eval", name, manual_outs.get(name), out, floors[name])
