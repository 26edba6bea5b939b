"""``check_optimizer``: a user's optimizer against a ``torch.optim`` class, on a stream of real gradients.

Accepted forms (told apart by their methods):

* textbook: ``update(params, grads)`` changing the arrays of ``params`` in place (or rebinding them in
  the dict); ``lr`` an attribute;
* optax-style: ``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``,
  applied as ``params + updates``;
* this package's: ``init(params) -> state`` and ``step(params, grads, state)``, state in torch's keys.

Parameters are a dict keyed by torch's names (``0.weight``, ``0.bias``, ...), torch's layout. Per step:
``state``: the ``lr`` used (when the optimizer has an ``lr`` attribute), each optimizer-state tensor the
user maps onto a torch key (``state_map={"exp_avg": "m", "exp_avg_sq": "v"}``: ``optimizer.m[name]``,
or for optax-style ``state["m"][name]``; a function ``(optimizer or state, name) -> array`` also
works), all of it for this package's optimizers; ``param``: every parameter after the update. State
the user does not map is not compared, and the report says so: never a failure.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import compare.check.guard as guard
from compare.check.diagnose import diagnose_optimizer
from compare.check.report import Report
from compare.check.stream import GradientStream
from compare.core import scales
from compare.core.checks import Checks
from compare.errors import InputError
from manual import schedules as manual_schedules
from torch_ref import schedules as torch_schedules


@dataclass
class OptimizerRun:
    """The inputs and the user's results, step by step (the diagnosis replays candidates on them)."""

    start: dict[str, np.ndarray]
    parsed: list | None
    grads: list[dict[str, np.ndarray]] = field(default_factory=list)
    params: list[dict[str, np.ndarray]] = field(default_factory=list)  # the user's, after each step
    lrs: list[float | None] = field(default_factory=list)  # the user's lr at each step


def form_of(optimizer: Any) -> str:
    if callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "step", None)):
        return "package"
    if callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None)):
        return "optax"
    if callable(getattr(optimizer, "update", None)):
        return "textbook"
    raise InputError("the optimizer has neither update(params, grads), init/update (optax-style) nor init/step")


class UserOptimizer:
    """The user's optimizer (a copy) in any of the three forms, stepped on a params dict it owns."""

    def __init__(self, optimizer: Any, params: dict[str, np.ndarray]) -> None:
        self.opt = guard.fresh(optimizer)
        self.form = form_of(self.opt)
        self.params = params
        self.state = None
        if self.form != "textbook":
            self.state = guard.call(1, "state", "init(params)", self.opt.init, guard.fresh(params))

    def step(self, step: int, grads: dict[str, np.ndarray], copy: bool = True) -> None:
        """``copy``: hand the user's code copies (False: ``grads`` are the user's own arrays already)."""
        grads = {name: g.copy() for name, g in grads.items()} if copy else dict(grads)
        arrays = {name: id(value) for name, value in self.params.items()}  # updated in place, by the protocol
        if self.form == "textbook":
            guard.call(step, "param", "update(params, grads)", self.opt.update, self.params, grads)
            guard.same_arrays(arrays, self.params, step, "param", "update(params, grads)")
        elif self.form == "package":
            guard.call(step, "param", "step(params, grads, state)", self.opt.step, self.params, grads, self.state)
            guard.same_arrays(arrays, self.params, step, "param", "step(params, grads, state)")
        else:
            call = (self.opt.update, grads, self.state, guard.fresh(self.params))
            updates, self.state = guard.call(step, "param", "update(grads, state, params)", *call)
            for name in self.params:
                self.params[name] = self.params[name] + guard.as_array(updates[name])

    def lr(self) -> float | None:
        lr = getattr(self.opt, "lr", None)
        return float(lr) if isinstance(lr, int | float | np.floating) else None

    def mapped_state(self, state_map: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
        """``{torch key: value}`` of parameter ``name``: all of a package optimizer's (limited to its
        ``comparable_state`` when it has one), else what ``state_map`` points at."""
        if self.form == "package" and state_map is None:
            allowed = getattr(self.opt, "comparable_state", None)
            entries = self.state.get(name, {})
            return {key: value for key, value in entries.items() if allowed is None or key in allowed}
        found = {}
        holder = self.state if self.form != "textbook" else self.opt
        for key, where in (state_map or {}).items():
            if callable(where):
                value = where(holder, name)
            else:
                container = holder.get(where) if isinstance(holder, Mapping) else getattr(holder, where, None)
                value = container.get(name) if isinstance(container, Mapping) else container
            found[key] = value
        return found


def _torch_side(start: Mapping[str, np.ndarray], stream: GradientStream | None) -> dict[str, torch.Tensor]:
    if stream is not None:
        return dict(stream.model.named_parameters())
    return {name: torch.nn.Parameter(torch.from_numpy(value.copy())) for name, value in start.items()}


def parse(lr_schedule: str | None) -> list | None:
    if lr_schedule is None:
        return None
    try:
        return manual_schedules.parse_schedule(lr_schedule)
    except ValueError as error:
        raise InputError(f"lr_schedule: {error}") from None


@guard.limited
def check_optimizer(
    optimizer: Any,
    torch_optimizer_class: type[torch.optim.Optimizer],
    hyperparameters: Mapping[str, Any],
    *,
    steps: int = 30,
    lr_schedule: str | None = None,
    state_map: Mapping[str, str | Callable] | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    gradients: Sequence[Mapping[str, np.ndarray]] | None = None,
    dtype: str = "float64",
    seed: int = 0,
    diagnose: bool = True,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Check ``optimizer`` against ``torch_optimizer_class(params, **hyperparameters)`` for ``steps`` steps.

    ``lr_schedule``: the CLI's ``--lr-schedule`` text (``"step:20:0.1"``), setting the user's ``lr``
    attribute before each step as torch's scheduler sets torch's. ``params`` and ``gradients`` (one
    dict per step) replace the default stream of the package's MLP training on the spirals."""
    parsed = parse(lr_schedule)
    stream = None if gradients is not None else GradientStream(dtype, seed)
    start = stream.start if stream is not None else {k: np.asarray(v, dtype=dtype) for k, v in (params or {}).items()}
    if gradients is not None and not start:
        raise InputError("gradients= needs params= (the starting values, keyed as the gradients are)")
    tensors = _torch_side(start, stream)
    reference = torch_optimizer_class(list(tensors.values()), **hyperparameters)
    torch_schedule = torch_schedules.build(parsed, reference) if parsed else None
    report = Report("optimizer", steps=len(gradients) if gradients is not None else steps)
    run = OptimizerRun({k: v.copy() for k, v in start.items()}, parsed)
    try:
        user = UserOptimizer(optimizer, {k: v.copy() for k, v in start.items()})
        user_schedule = _user_schedule(parsed, user)
        for step in range(1, report.steps + 1):
            grads = stream.next_grads() if stream is not None else _set_grads(tensors, gradients[step - 1], dtype)
            _step(step, user, reference, tensors, grads, state_map, report, run, dtype)
            if user_schedule is not None:
                user_schedule.step()
            if torch_schedule is not None:
                torch_schedule.step()
    except guard.UserCodeError as error:
        report.error = error.failure
    _state_note(report, user if "user" in locals() else None, reference, state_map)
    if diagnose and not report.passed and report.error is None:
        report.diagnosis = diagnose_optimizer(torch_optimizer_class, hyperparameters, run, dtype)
        report.diagnosed = True
    return report


def _user_schedule(parsed: list | None, user: UserOptimizer):
    if parsed is None:
        return None
    if user.lr() is None:
        raise InputError(
            "lr_schedule needs an optimizer with an 'lr' attribute (the schedule sets it before each step)"
        )
    return manual_schedules.build(parsed, user.opt)


def _set_grads(tensors: dict[str, torch.Tensor], grads: Mapping[str, np.ndarray], dtype: str) -> dict:
    arrays = {name: np.asarray(grads[name], dtype=dtype) for name in tensors}
    for name, tensor in tensors.items():
        tensor.grad = torch.from_numpy(arrays[name].copy())
    return arrays


def _step(step, user: UserOptimizer, reference, tensors, grads, state_map, report: Report, run, dtype) -> None:
    checks = Checks(step, dtype)
    lrs = (user.lr(), float(reference.param_groups[0]["lr"]))
    user.step(step, grads)
    reference.step()
    if lrs[0] is not None:
        checks.add("state", "lr", np.float64(lrs[0]), np.float64(lrs[1]))
    torch_state = reference.state
    for name, tensor in tensors.items():
        mine = user.mapped_state(state_map, name)
        for key, value in sorted(torch_state.get(tensor, {}).items()):
            if key in mine:
                theirs = int(value.item()) if key == "step" else value
                ours = int(mine[key]) if key == "step" and mine[key] is not None else guard.as_array(mine[key])
                checks.add_state(f"{name}.{key}", ours, theirs, scales.state_amplification(key, 1.0))
    params = {name: guard.as_array(value) for name, value in user.params.items()}
    for name, tensor in tensors.items():
        checks.add("param", name, params.get(name), tensor.detach())
    report.checks.extend(checks.collect())
    run.grads.append(grads)
    run.params.append(params)
    run.lrs.append(lrs[0])


def _state_note(report: Report, user: UserOptimizer | None, reference, state_map) -> None:
    keys = sorted({key for entries in reference.state.values() for key in entries})
    if not keys or user is None:
        return
    compared = {c.tensor.rpartition(".")[2] for c in report.checks if c.stage == "state" and c.tensor != "lr"}
    missing = [key for key in keys if key not in compared]
    if missing:
        report.notes.append(
            f"torch's optimizer state {', '.join(missing)} not compared: your optimizer does not say where it keeps "
            f"it (pass state_map={{'{missing[0]}': '<your attribute>'}} to compare it)"
        )
