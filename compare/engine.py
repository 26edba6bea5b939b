"""The lockstep engine: one batch to both twins, then every tensor compared, stage by stage.

Stages, in the order a step computes them (the first failure is the earliest in this order):

* ``forward``: every layer's output, ``<i>.out`` for layer ``i`` of the Sequential;
* ``loss``: the scalar loss;
* ``grad``: in chain-rule order from the loss down, dL/d``<i>.out`` and each layer's
  ``<i>.weight`` / ``<i>.bias`` gradient;
* ``state``: every optimizer-state tensor after the update, ``<param>.<key>``
  (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``step``);
* ``param``: every parameter after the update.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from compare.metrics import TensorDiff, diff, worst_elements
from compare.tolerances import STAGES, tolerance
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from manual.spec import MLPSpec
from torch_ref import build_loss, build_model, build_optimizer, load_weights
from torch_ref.optim import named_state


@dataclass(frozen=True)
class Check:
    """One tensor compared at one step and stage."""

    step: int
    stage: str
    tensor: str
    diff: TensorDiff
    max_rel: float  # the tolerance it was held to
    worst: tuple[dict, ...] = ()  # side-by-side elements, filled only when it fails

    @property
    def passed(self) -> bool:
        return self.diff.within(self.max_rel)


@dataclass
class StepRecord:
    step: int
    loss_manual: float
    loss_torch: float
    lr: float
    checks: list[Check]

    @property
    def first_failure(self) -> Check | None:
        return next((check for check in self.checks if not check.passed), None)

    def worst_by_stage(self) -> dict[str, Check]:
        """For each stage, the check with the largest ``max_rel`` (ties: the earliest)."""
        worst: dict[str, Check] = {}
        for check in self.checks:
            if check.stage not in worst or check.diff.max_rel > worst[check.stage].diff.max_rel:
                worst[check.stage] = check
        return worst


class Lockstep:
    """Both twins and their optimizers, advanced together one batch at a time."""

    def __init__(
        self,
        manual_model: MLP,
        manual_optimizer,
        torch_model: nn.Sequential,
        torch_loss: nn.Module,
        torch_optimizer: torch.optim.Optimizer,
        dtype: str,
    ) -> None:
        self.manual_model = manual_model
        self.manual_optimizer = manual_optimizer
        self.manual_state = manual_optimizer.init(manual_model.named_parameters())
        self.torch_model = torch_model
        self.torch_loss = torch_loss
        self.torch_optimizer = torch_optimizer
        self.dtype = dtype
        self.device = next(torch_model.parameters()).device

    def step(self, step: int, x: np.ndarray, y: np.ndarray) -> StepRecord:
        checks = Checks(step, self.dtype)
        model = self.manual_model
        outs = model.forward(x)
        loss_manual = model.loss.forward(outs[-1], y)
        douts = model.backward(model.loss.backward())

        self.torch_optimizer.zero_grad(set_to_none=True)
        h = torch.from_numpy(x).to(self.device)
        touts = []
        for layer in self.torch_model:
            h = layer(h)
            h.retain_grad()  # keep dL/d(layer output) for the grad stage
            touts.append(h)
        loss_torch = self.torch_loss(touts[-1], torch.from_numpy(y).to(self.device))
        loss_torch.backward()

        activation = [not layer.params for layer in model.layers]
        for i, (a, b) in enumerate(zip(outs, touts, strict=True)):
            node_input = touts[i - 1] if activation[i] else None  # activations: the input's scale counts too
            checks.add("forward", f"{i}.out", a, b.detach(), node_input)
        checks.add("loss", "loss", np.float64(loss_manual), loss_torch.detach())
        manual_grads = model.named_grads()
        torch_params = dict(self.torch_model.named_parameters())
        for i in reversed(range(len(outs))):
            passed_through = touts[i + 1].grad if i + 1 < len(outs) and activation[i + 1] else None
            checks.add("grad", f"{i}.out", douts[i], touts[i].grad, passed_through)
            for key in model.layers[i].params:
                name = f"{i}.{key}"
                checks.add("grad", name, manual_grads[name], torch_params[name].grad)

        self.manual_optimizer.step(model.named_parameters(), manual_grads, self.manual_state)
        self.torch_optimizer.step()

        torch_state = named_state(self.torch_optimizer, self.torch_model)
        for name, manual_entries in self.manual_state.items():
            for key in sorted(set(manual_entries) | set(torch_state[name])):
                checks.add_state(f"{name}.{key}", manual_entries.get(key), torch_state[name].get(key))
        for name, param in model.named_parameters().items():
            checks.add("param", name, param, torch_params[name].detach())
        lr = float(self.torch_optimizer.param_groups[0]["lr"])
        return StepRecord(step, loss_manual, float(loss_torch.item()), lr, checks.checks)


def twins(
    spec: MLPSpec,
    weights: dict[str, np.ndarray],
    optimizer: str,
    hyperparameters: dict,
    dtype: str,
    manual_optimizer=None,
) -> Lockstep:
    """Both models from the same weights (copied into each) and both optimizers from one kwargs dict.

    ``manual_optimizer`` replaces the hand-written optimizer, e.g. with a rule under test.
    """
    manual_model = MLP(spec, weights)
    manual_optimizer = manual_optimizer or OPTIMIZERS[optimizer](**hyperparameters)
    torch_model = build_model(spec, getattr(torch, dtype))
    load_weights(torch_model, spec, weights)
    torch_optimizer = build_optimizer(optimizer, torch_model, hyperparameters)
    return Lockstep(manual_model, manual_optimizer, torch_model, build_loss(spec), torch_optimizer, dtype)


@dataclass
class Checks:
    """Collects the checks of one step, each held to its dtype-and-stage tolerance."""

    step: int
    dtype: str
    checks: list[Check] = field(default_factory=list)

    def add(
        self,
        stage: str,
        name: str,
        manual: np.ndarray,
        reference: torch.Tensor | np.ndarray | None,
        other_side: torch.Tensor | None = None,
    ) -> None:
        """``other_side``: the reference tensor across an activation node, whose scale also counts."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
        if reference is None:
            reference = np.full(np.shape(manual), np.nan)  # torch produced no gradient at all
        floor = 0.0 if other_side is None else float(other_side.detach().abs().max())
        self._record(stage, name, manual, reference, tolerance(self.dtype, stage).max_rel, floor)

    def add_state(self, name: str, manual, reference) -> None:
        """Optimizer state: arrays at the state tolerance, the integer ``step`` exactly."""
        if manual is None and reference is None:
            return
        if manual is None or reference is None:
            side = "manual" if manual is None else "torch"
            self.checks.append(Check(self.step, "state", name, TensorDiff(np.inf, np.inf, (), f"missing:{side}"), 0.0))
            return
        exact = isinstance(manual, int | np.integer) or isinstance(reference, int | np.integer)
        max_rel = 0.0 if exact else tolerance(self.dtype, "state").max_rel
        self._record("state", name, np.asarray(manual), np.asarray(reference), max_rel)

    def _record(
        self, stage: str, name: str, manual: np.ndarray, reference: np.ndarray, max_rel: float, floor: float = 0.0
    ) -> None:
        result = diff(manual, reference, floor)
        check = Check(self.step, stage, name, result, max_rel)
        if not check.passed:
            check = Check(self.step, stage, name, result, max_rel, tuple(worst_elements(manual, reference)))
        self.checks.append(check)


@dataclass
class RunResult:
    """What a lockstep run found; ``complete`` is False when it was interrupted."""

    records: list[StepRecord] = field(default_factory=list)
    first_failure: Check | None = None
    failed_steps: int = 0
    complete: bool = False

    @property
    def passed(self) -> bool:
        return self.first_failure is None and self.complete

    def worst_by_stage(self) -> dict[str, Check]:
        worst: dict[str, Check] = {}
        for record in self.records:
            for stage, check in record.worst_by_stage().items():
                if stage not in worst or check.diff.max_rel > worst[stage].diff.max_rel:
                    worst[stage] = check
        return {stage: worst[stage] for stage in STAGES if stage in worst}


def run(
    lockstep: Lockstep,
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    steps: int,
    stop_at_first_failure: bool,
    on_step: Callable[[StepRecord], None],
    result: RunResult | None = None,
) -> RunResult:
    """Advance both twins ``steps`` times; ``result`` is filled as it goes, so an interrupted run
    still holds every step it finished."""
    result = result if result is not None else RunResult()
    for step in range(1, steps + 1):
        x, y = next(batches)
        record = lockstep.step(step, x, y)
        result.records.append(record)
        on_step(record)
        failure = record.first_failure
        if failure is not None:
            result.failed_steps += 1
            result.first_failure = result.first_failure or failure
            if stop_at_first_failure:
                break
    result.complete = True
    return result
