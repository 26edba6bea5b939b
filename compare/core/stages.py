"""The stages of a step, in the order they run: ``STEPS``, each stage its name and the function that
computes it. The lockstep engine (``compare.core.engine.Lockstep``) runs them in this order, and their
names in this order, ``STAGES``, rank the first failure and worst checks (``compare.core.records``),
key the tolerance table (``compare.core.tolerances``) and order the stages in reports and TensorBoard.
A new stage is one function here and one ``Stage`` in ``STEPS``, in its place.

* ``forward``: both sides' training passes, then every layer's output, ``<i>.out`` (skipped when the
  manual side exposes none), and the fraction each dropout mask kept, ``<i>.mask``;
* ``loss``: the scalar loss;
* ``grad``: in chain-rule order from the loss down, dL/d``<i>.out`` and each layer's parameter
  gradients (``<i>.weight``, ``<i>.bias``); with clipping, then ``total_norm`` and every
  ``<param>.clipped`` gradient;
* ``state``: both optimizers step, then the learning rate used (``lr``), every optimizer-state tensor
  after the update, ``<param>.<key>`` (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``,
  ``max_exp_avg_sq``, ``step``, ...), and the buffers (BatchNorm's ``running_mean``, ``running_var``,
  ``num_batches_tracked``); a gradient of the wrong shape ends the step here (only torch steps);
* ``param``: every parameter after the update;
* ``eval`` (models whose output depends on the mode: Dropout, BatchNorm): every layer's output in
  evaluation mode, on the same batch, after the update.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from compare.core import scales
from compare.core.metrics import TensorDiff

if TYPE_CHECKING:
    from compare.core.checks import Checks
    from compare.core.engine import Lockstep
    from compare.core.gradcheck import Witness
    from compare.core.side import Pass, Side
    from compare.core.torch_side import ReferencePass, TorchSide

DROPOUT_IMPROBABLE = 1e-9  # a keep fraction less likely than this under 1 − p fails


@dataclass
class Work:
    """One step in progress, handed from stage to stage: the batch, its checks, and what a stage computes
    for later ones (the training passes, the gradients' conditioning, the lrs) or for the step's record."""

    step: int
    x: np.ndarray
    y: np.ndarray
    checks: "Checks"
    before: dict | None = None  # the manual side before the step, for finite differences (``Options.gradcheck``)
    manual: "Pass | None" = None  # the training passes (forward)
    reference: "ReferencePass | None" = None
    conditioning: dict[str, float] = field(default_factory=dict)  # per parameter (grad), for its state
    witnesses: "list[Witness]" = field(default_factory=list)  # finite differences (grad)
    lrs: tuple[float, float] = (math.nan, math.nan)  # the lr each side used: manual, torch (state)
    stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # norms (state), when logged
    followed: int = 0  # sign decisions on rounding noise that followed torch's (state: compare.core.decisions)
    ended: bool = False  # a stage ended the step: the stages after it do not run


@dataclass(frozen=True)
class Stage:
    """A named step of the engine: ``compute(engine, work)`` adds the stage's checks to ``work.checks``."""

    name: str
    compute: Callable[["Lockstep", Work], None]


def forward(engine: "Lockstep", work: Work) -> None:
    """The training passes (torch applies the manual side's dropout masks, ``Options.inject_masks``), then
    every layer's output and every dropout mask's keep fraction."""
    if engine.options.gradcheck:
        work.before = engine.manual.snapshot()
    manual = work.manual = engine.manual.train_pass(work.x, work.y, {})
    masks = manual.masks if engine.options.inject_masks else {}
    reference = work.reference = engine.reference.train_pass(work.x, work.y, masks)
    if manual.outputs is not None:
        for name, out in reference.outputs.items():
            work.checks.add("forward", name, manual.outputs.get(name), out, reference.floors["forward"][name])
    dropout_keep(work.checks, manual.masks, engine.reference, engine.kept)


def dropout_keep(checks: "Checks", masks: dict, reference: "TorchSide", counts: dict[int, list[int]]) -> None:
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
            checks.fail("forward", f"{index}.mask", TensorDiff(gap, gap / max(keep, 1e-300), (), problem))


def loss(engine: "Lockstep", work: Work) -> None:
    manual, reference = work.manual, work.reference
    work.checks.add("loss", "loss", np.float64(manual.loss), reference.loss, reference.floors["loss"]["loss"])


def grad(engine: "Lockstep", work: Work) -> None:
    """The gradients in chain-rule order, each parameter's conditioning (how much its gradient cancelled,
    ≥ 1, which its optimizer state inherits) kept; then the finite-difference witnesses
    (``Options.gradcheck``), then the clipped gradients (``Options.clip_grad_norm``)."""
    checks, manual, reference = work.checks, work.manual, work.reference
    floors = reference.floors["grad"]
    for name in reference.grad_order:
        if name in reference.output_grads:
            if manual.output_grads is not None:
                checks.add("grad", name, manual.output_grads.get(name), reference.output_grads[name], floors[name])
            continue
        checks.add("grad", name, manual.grads.get(name), reference.grads[name], floors[name])
        work.conditioning[name] = scales.conditioning(floors[name], reference.grads[name])
    work.witnesses = engine.witnesses(work)
    if engine.options.clip_grad_norm is not None:
        clipped(checks, engine.manual, engine.reference, engine.options.clip_grad_norm, floors)


def clipped(
    checks: "Checks", manual: "Side", reference: "TorchSide", max_norm: float, floors: dict[str, float]
) -> None:
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


def state(engine: "Lockstep", work: Work) -> None:
    """The lr each side uses, both optimizers' steps (``Lockstep.update``), then the lr, the optimizer state
    after the update and the buffers compared. A side whose ``state()`` is ``None`` does not expose its
    state: it is not compared. The manual side's ``state_keys``, when set, limits the keys compared.

    A gradient of the wrong shape cannot update its parameter: the finding is recorded and the step ends
    here. torch, the reference, still takes its step (its data-parallel replicas take theirs)."""
    manual, reference, checks = engine.manual, engine.reference, work.checks
    work.lrs = (manual.lr(), reference.lr())
    if checks.wrong_shape:
        reference.update()
        work.ended = True
        return
    engine.update(work)
    checks.add("state", "lr", np.float64(work.lrs[0]), np.float64(work.lrs[1]))
    manual_state, reference_state = manual.state(), reference.state()
    if manual_state is not None:
        allowed = getattr(manual, "state_keys", None)
        for name, reference_entries in reference_state.items():
            manual_entries = manual_state.get(name, {})
            keys = set(manual_entries) | set(reference_entries)
            for key in sorted(keys if allowed is None else keys & allowed):
                amplification = scales.state_amplification(key, work.conditioning.get(name, 1.0))
                checks.add_state(f"{name}.{key}", manual_entries.get(key), reference_entries.get(key), amplification)
    manual_buffers = manual.buffers()
    for name, buffer in reference.buffers().items():
        checks.add_state(name, manual_buffers.get(name), buffer)


def param(engine: "Lockstep", work: Work) -> None:
    """Every parameter after the update, each with the floor the reference gives it (``param_floors``)."""
    manual_params = engine.manual.parameters()
    floors = engine.reference.param_floors()
    for name, value in engine.reference.parameters().items():
        work.checks.add("param", name, manual_params.get(name), value, floors.get(name, 0.0))


def evaluation(engine: "Lockstep", work: Work) -> None:
    if not engine.reference.mode_dependent:
        return
    manual_outs = engine.manual.eval_outputs(work.x)
    if manual_outs is None:
        return
    outs, floors = engine.reference.eval_pass(work.x)
    for name, out in outs.items():
        work.checks.add("eval", name, manual_outs.get(name), out, floors[name])


STEPS = (
    Stage("forward", forward),
    Stage("loss", loss),
    Stage("grad", grad),
    Stage("state", state),
    Stage("param", param),
    Stage("eval", evaluation),
)
STAGES = tuple(stage.name for stage in STEPS)  # the order, by name: the tolerance table's keys, the ranks
STAGE_RANK = {name: rank for rank, name in enumerate(STAGES)}
