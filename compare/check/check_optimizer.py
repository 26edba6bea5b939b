"""``check_optimizer``: a user's optimizer against a ``torch.optim`` class, on a stream of real gradients.

Accepted forms (told apart by their methods):

* textbook: ``update(params, grads)`` changing the arrays of ``params`` in place (an array rebound in the
  dict is the finding ``replaced``: a network's layers would keep the old one); ``lr`` an attribute; its
  state in dicts keyed by parameter name, often created by its first update (``self.v = None`` until
  then, as in "Deep Learning from Scratch"): compared from the step that creates it, as torch creates its own;
* optax-style: ``init(params) -> state`` and ``update(grads, state, params) -> (updates, state)``,
  applied as ``params + updates``;
* this package's: ``init(params) -> state`` and ``step(params, grads, state)``, state in torch's keys;
* a function ``update(w, dw, config) -> (next_w, config)`` (``config=``), or an object whose
  ``update(param, grad, name)`` takes one parameter at a time: their settings and state under the
  textbook names, mapped to torch's and compared without a ``state_map`` (``compare.check.forms.optimizer``).

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

import compare.check.forms.arguments as arguments
import compare.check.forms.optimizer as forms
import compare.check.sandbox.guard as guard
from compare.check.diagnosis import numerical, several
from compare.check.diagnosis.optimizer_mistakes import diagnose_optimizer
from compare.check.forms import torch_tensors as tensors
from compare.check.forms.layer_loss import found
from compare.check.gradient_stream import GradientStream
from compare.check.report import Failure, Report
from compare.check.sandbox.isolated import entry_point
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
    kept: dict = field(default_factory=dict)  # the first failing step's pairs (``Checks(keep=)``), measured


OPTIMIZER_FORMS = (
    "update(params, grads) changing params; init(params) with update(grads, state, params) -> (updates, state) "
    "(optax-style); init/step (this package's); a function update(w, dw, config) -> (next_w, config); or an "
    "object with update(param, grad, name) per parameter"
)


def form_of(optimizer: Any) -> str:
    if forms.is_function(optimizer):
        return "function"
    if forms.is_per_parameter(optimizer):
        return "per_param"
    if callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "step", None)):
        return "package"
    if callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None)):
        return "optax"
    if callable(getattr(optimizer, "update", None)):
        return "textbook"
    raise InputError(f"the optimizer is {found(optimizer)}; accepted: {OPTIMIZER_FORMS}")


class UserOptimizer:
    """The user's optimizer (a copy) in any of the three forms, stepped on a params dict it owns."""

    def __init__(
        self,
        optimizer: Any,
        params: dict[str, np.ndarray],
        config: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        torch_class: str = "",
    ) -> None:
        optimizer = tensors.numpy_side(optimizer if form_of(optimizer) == "function" else guard.fresh(optimizer))
        self.form = form_of(optimizer)
        self.opt = optimizer
        self.params = params
        self.state = None
        self.torch_class = torch_class
        self.configs: dict[str, dict] | None = None
        if self.form == "function":
            start = dict(config) if config is not None else forms.textbook_config(hyperparameters or {})
            self.configs = {name: guard.fresh(start) for name in params}
        elif config is not None:
            raise InputError("config= is for an optimizer function update(w, dw, config) -> (next_w, config)")
        self.handle = forms.LrHandle(self.opt, self.configs)
        self.first_grads: dict[str, np.ndarray] = {}
        self.scales: dict[str, float] = {}
        if self.form in ("package", "optax"):
            self.state = guard.call(1, "state", "init(params)", self.opt.init, guard.fresh(params))

    def step(self, step: int, grads: dict[str, np.ndarray], copy: bool = True) -> None:
        """``copy``: hand the user's code copies (False: ``grads`` are the user's own arrays already)."""
        grads = {name: g.copy() for name, g in grads.items()} if copy else dict(grads)
        if step == 1:
            self.first_grads = {name: np.array(g, copy=True) for name, g in grads.items()}
        arrays = {name: id(value) for name, value in self.params.items()}  # updated in place, by the protocol
        if self.form in ("function", "per_param"):
            self._per_parameter(step, grads)
        elif self.form == "textbook":
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

    def _per_parameter(self, step: int, grads: dict[str, Any]) -> None:
        for name in self.params:
            if name not in grads:
                continue
            if self.form == "function":
                call = (self.opt, self.params[name], grads[name], self.configs[name])
                result = guard.call(step, "param", f"update(w, dw, config) of {name}", *call)
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise guard.UserCodeError(returned(step, name, result))
                next_w, config = result
                self.configs[name] = config if isinstance(config, dict) else self.configs[name]
            else:
                call = (self.opt.update, self.params[name], grads[name], name)
                next_w = guard.call(step, "param", f"update(param, grad, '{name}')", *call)
            if next_w is not None:
                self.params[name] = guard.as_array(next_w)

    def lr(self) -> float | None:
        return self.handle.lr

    def settings(self) -> dict[str, Any]:
        """The user's settings under torch's names (lr, eps, betas, momentum, alpha, weight_decay)."""
        if self.configs is not None:
            return forms.torch_settings(next(iter(self.configs.values()), {}))
        return forms.object_settings(self.opt)

    def mapped_state(self, state_map: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
        """``{torch key: value}`` of parameter ``name``: all of a package optimizer's (limited to its
        ``comparable_state`` when it has one), else what ``state_map`` points at."""
        if self.form in ("function", "per_param", "textbook") and state_map is None:
            return self._textbook_state(name)  # a textbook object's state may be created by its first update
        if self.form == "package" and state_map is None:
            allowed = getattr(self.opt, "comparable_state", None)
            entries = self.state.get(name, {})
            return {key: value for key, value in entries.items() if allowed is None or key in allowed}
        found = {}
        holder = {"textbook": self.opt, "per_param": self.opt}.get(self.form, self.state)
        if self.configs is not None:
            holder = self.configs[name]  # a function's state lives in each parameter's config
        for key, where in (state_map or {}).items():
            if callable(where):
                value = where(holder, name)
            else:
                container = holder.get(where) if isinstance(holder, Mapping) else getattr(holder, where, None)
                value = container.get(name) if isinstance(container, Mapping) else container
            found[key] = value
        return found

    def _textbook_state(self, name: str) -> dict[str, Any]:
        holder = self.configs[name] if self.configs is not None else self.opt
        found = {}
        for key, (_, value) in forms.torch_state(forms.state_entries(holder, name), self.torch_class).items():
            if key == "momentum_buffer":  # the textbook velocity v ← μv − γg is torch's buffer × (−γ)
                if name not in self.scales:
                    self.scales[name] = forms.velocity_scale(np.asarray(value), self.first_grads.get(name), self.lr())
                value = np.asarray(value) * self.scales[name]
            found[key] = value
        return found


def returned(step: int, name: str, result: Any) -> Failure:
    message = f"update(w, dw, config) must return (next_w, config); it returned a {type(result).__name__}"
    return Failure(step, "param", f"update of {name}", np.inf, np.inf, problem="exception", message=message)


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


@entry_point  # report_dir=, isolate=, memory_limit=, time_limit, small: one thread
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
    config: Mapping[str, Any] | None = None,
    dtype: str = "float64",
    seed: int = 0,
    diagnose: bool = True,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Check ``optimizer`` against ``torch_optimizer_class(params, **hyperparameters)`` for ``steps`` steps.

    ``lr_schedule``: the CLI's ``--lr-schedule`` text (``"step:20:0.1"``), setting the user's ``lr``
    attribute before each step as torch's scheduler sets torch's. ``params`` and ``gradients`` (one
    dict per step) replace the default stream of the package's MLP training on the spirals."""
    arguments.twin_second("optimizer", optimizer, torch_optimizer_class)
    arguments.a_dict("optimizer", "hyperparameters", hyperparameters, "{'lr': 0.01} (torch's keyword arguments)")
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
        user = UserOptimizer(
            optimizer, {k: v.copy() for k, v in start.items()}, config, hyperparameters, torch_optimizer_class.__name__
        )
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
        settings = user.settings() if "user" in locals() else {}
        report.diagnosis = (
            diagnose_optimizer(torch_optimizer_class, hyperparameters, run, dtype, settings, reference.defaults)
            or several.optimizer_pairs(torch_optimizer_class, hyperparameters, run, dtype)
            or _measured(report, run)
        )
        report.diagnosed = True
    return report


def _measured(report: Report, run: OptimizerRun):
    """What the departure of the first failing step's updates says (``compare.check.diagnosis.numerical``):
    each parameter's update, the user's against torch's, from the values the user's had before the step."""
    failing = [c for c in report.checks if not c.passed and c.stage == "param"]
    if not failing:
        return None
    step = failing[0].step
    before = run.start if step == 1 else run.params[step - 2]
    pairs = []
    for check in failing:
        if check.step == step and (step, "param", check.tensor) in run.kept:
            mine, theirs = run.kept[(step, "param", check.tensor)]
            pairs.append((f"the update of {check.tensor}", mine - before[check.tensor], theirs - before[check.tensor]))
    return numerical.diagnose(pairs, numerical.Context(update=True))


def _user_schedule(parsed: list | None, user: UserOptimizer):
    if parsed is None:
        return None
    if user.lr() is None:
        raise InputError(
            "lr_schedule needs an optimizer with an 'lr' attribute (the schedule sets it before each step)"
        )
    return manual_schedules.build(parsed, user.handle)


def _set_grads(tensors: dict[str, torch.Tensor], grads: Mapping[str, np.ndarray], dtype: str) -> dict:
    arrays = {name: np.asarray(grads[name], dtype=dtype) for name in tensors}
    for name, tensor in tensors.items():
        tensor.grad = torch.from_numpy(arrays[name].copy())
    return arrays


def _step(step, user: UserOptimizer, reference, tensors, grads, state_map, report: Report, run, dtype) -> None:
    checks = Checks(step, dtype, keep=run.kept)
    lrs = (user.lr(), float(reference.param_groups[0]["lr"]))
    user.step(step, grads)
    reference.step()
    if user.form == "function":  # a config holds the lr it used (a default is set by the first call)
        lrs = (user.lr(), lrs[1])
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
