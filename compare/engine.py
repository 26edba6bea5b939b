"""The lockstep engine: one batch to both twins, then every tensor compared, stage by stage.

Stages, in the order a step computes them (the first failure is the earliest in this order):

* ``forward``: every layer's output, ``<i>.out`` for layer ``i`` of the Sequential;
* ``loss``: the scalar loss;
* ``grad``: in chain-rule order from the loss down, dL/d``<i>.out`` and each layer's
  ``<i>.weight`` / ``<i>.bias`` gradient; with clipping, then ``total_norm`` and every
  ``<param>.clipped`` gradient;
* ``state``: every optimizer-state tensor after the update, ``<param>.<key>``
  (``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ``step``);
* ``state``: also the learning rate used (``lr``) and BatchNorm's ``running_mean``,
  ``running_var`` and ``num_batches_tracked``;
* ``param``: every parameter after the update;
* ``eval`` (models with Dropout or BatchNorm only): every layer's output in evaluation mode,
  on the same batch, after the update.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from compare import scales
from compare.metrics import TensorDiff, diff, worst_elements
from compare.tolerances import STAGES, tolerance
from manual import schedules as manual_schedules
from manual.clip import clip_grad_norm as manual_clip_grad_norm
from manual.layers import Dropout
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from manual.spec import MLPSpec
from torch_ref import InjectedMasks, build_loss, build_model, build_optimizer, load_weights
from torch_ref import schedules as torch_schedules
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
    """Both twins and their optimizers (and optional schedules and clipping), advanced together."""

    def __init__(
        self,
        manual_model: MLP,
        manual_optimizer,
        torch_model: nn.Sequential,
        torch_loss: nn.Module,
        torch_optimizer: torch.optim.Optimizer,
        dtype: str,
        manual_schedule=None,
        torch_schedule=None,
        clip_grad_norm: float | None = None,
    ) -> None:
        self.manual_model = manual_model
        self.manual_optimizer = manual_optimizer
        self.manual_state = manual_optimizer.init(manual_model.named_parameters())
        self.torch_model = torch_model
        self.torch_loss = torch_loss
        self.torch_optimizer = torch_optimizer
        self.dtype = dtype
        self.manual_schedule = manual_schedule
        self.torch_schedule = torch_schedule
        self.clip_grad_norm = clip_grad_norm
        self.manual_clip = manual_clip_grad_norm  # replaceable, like the manual optimizer
        self.masks = InjectedMasks(torch_model)
        self.device = next(torch_model.parameters()).device
        # A textbook variant keeps some state torch has no counterpart for: compare only the rest.
        self.comparable_state = getattr(manual_optimizer, "comparable_state", None)

    def step(self, step: int, x: np.ndarray, y: np.ndarray) -> StepRecord:
        checks = Checks(step, self.dtype)
        model, tmodel = self.manual_model, self.torch_model
        model.train()
        tmodel.train()
        outs = model.forward(x)
        loss_manual = model.loss.forward(outs[-1], y)
        douts = model.backward(model.loss.backward())
        for i, layer in enumerate(model.layers):
            if isinstance(layer, Dropout) and layer.mask is not None:
                self.masks.set(i, layer.mask, self.device)  # the mask NumPy drew, injected into torch

        self.torch_optimizer.zero_grad(set_to_none=True)
        touts = self._torch_forward(x, keep_grads=True)
        yt = torch.from_numpy(y).to(self.device)
        loss_torch = self.torch_loss(touts[-1], yt)
        loss_torch.backward()

        inputs = [torch.from_numpy(x), *touts[:-1]]  # what each torch module received
        for i, (a, b) in enumerate(zip(outs, touts, strict=True)):
            checks.add("forward", f"{i}.out", a, b, scales.forward_floor(tmodel[i], inputs[i]))
        checks.add("loss", "loss", np.float64(loss_manual), loss_torch.detach())
        manual_grads = model.named_grads()
        torch_params = dict(tmodel.named_parameters())
        for i in reversed(range(len(outs))):
            floor = 0.0 if i + 1 == len(outs) else scales.input_grad_floor(tmodel[i + 1], touts[i], touts[i + 1].grad)
            checks.add("grad", f"{i}.out", douts[i], touts[i].grad, floor)
            floors = scales.param_grad_floors(tmodel[i], inputs[i], touts[i].grad)
            for key in model.layers[i].params:
                name = f"{i}.{key}"
                checks.add("grad", name, manual_grads[name], torch_params[name].grad, floors[key])
        if self.clip_grad_norm is not None:
            norm_manual = self.manual_clip(manual_grads, self.clip_grad_norm)
            norm_torch = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), self.clip_grad_norm, foreach=False)
            checks.add("grad", "total_norm", np.float64(norm_manual), norm_torch)
            for name, grad in manual_grads.items():
                checks.add("grad", f"{name}.clipped", grad, torch_params[name].grad)

        lr_manual, lr_torch = float(self.manual_optimizer.lr), float(self.torch_optimizer.param_groups[0]["lr"])
        self.manual_optimizer.step(model.named_parameters(), manual_grads, self.manual_state)
        self.torch_optimizer.step()

        checks.add("state", "lr", np.float64(lr_manual), np.float64(lr_torch))
        torch_state = named_state(self.torch_optimizer, tmodel)
        for name, manual_entries in self.manual_state.items():
            keys = set(manual_entries) | set(torch_state[name])
            if self.comparable_state is not None:
                keys &= self.comparable_state
            for key in sorted(keys):
                checks.add_state(f"{name}.{key}", manual_entries.get(key), torch_state[name].get(key))
        torch_buffers = dict(tmodel.named_buffers())
        for name, buffer in model.named_buffers().items():
            checks.add_state(name, buffer.item() if buffer.dtype.kind == "i" else buffer, torch_buffers[name])
        for name, param in model.named_parameters().items():
            checks.add("param", name, param, torch_params[name].detach())

        if model.spec.mode_dependent:
            model.eval()
            tmodel.eval()
            with torch.no_grad():
                touts = self._torch_forward(x, keep_grads=False)
            inputs = [torch.from_numpy(x), *touts[:-1]]
            for i, (a, b) in enumerate(zip(model.forward(x), touts, strict=True)):
                checks.add("eval", f"{i}.out", a, b, scales.forward_floor(tmodel[i], inputs[i]))
        if self.manual_schedule is not None:
            self.manual_schedule.step()
            self.torch_schedule.step()
        return StepRecord(step, loss_manual, float(loss_torch.item()), lr_torch, checks.checks)

    def _torch_forward(self, x: np.ndarray, keep_grads: bool) -> list[torch.Tensor]:
        h = torch.from_numpy(x).to(self.device)
        outs = []
        for layer in self.torch_model:
            h = layer(h)
            if keep_grads:
                h.retain_grad()  # keep dL/d(layer output) for the grad stage
            outs.append(h)
        return outs


def twins(
    spec: MLPSpec,
    weights: dict[str, np.ndarray],
    optimizer: str,
    hyperparameters: dict,
    dtype: str,
    manual_optimizer=None,
    schedule: list | None = None,
    clip: float | None = None,
    seed: int = 0,
) -> Lockstep:
    """Both models from the same weights (copied into each) and both optimizers from one kwargs dict.

    ``manual_optimizer`` replaces the hand-written optimizer, e.g. with a rule under test;
    ``schedule`` is a parsed ``--lr-schedule``; ``seed`` seeds the manual side's dropout masks.
    """
    manual_model = MLP(spec, weights, np.random.default_rng(seed))
    manual_optimizer = manual_optimizer or OPTIMIZERS[optimizer](**hyperparameters)
    torch_model = build_model(spec, getattr(torch, dtype))
    load_weights(torch_model, spec, weights)
    torch_optimizer = build_optimizer(optimizer, torch_model, hyperparameters)
    schedules = (None, None)
    if schedule:
        schedules = (
            manual_schedules.build(schedule, manual_optimizer),
            torch_schedules.build(schedule, torch_optimizer),
        )
    return Lockstep(
        manual_model, manual_optimizer, torch_model, build_loss(spec), torch_optimizer, dtype, *schedules, clip
    )


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
        floor: float = 0.0,
    ) -> None:
        """``floor``: the magnitude of the terms that produced the tensor (see ``compare.scales``)."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
        if reference is None:
            reference = np.full(np.shape(manual), np.nan)  # torch produced no gradient at all
        self._record(stage, name, manual, reference, tolerance(self.dtype, stage).max_rel, floor)

    def add_state(self, name: str, manual, reference) -> None:
        """Optimizer state and buffers: arrays at the state tolerance, integer counters exactly."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
            reference = int(reference) if reference.dtype.kind == "i" else reference
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
