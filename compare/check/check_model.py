"""``check_model``: a user's whole network trained in lockstep with its torch twin by the engine
(``compare.core.engine.Lockstep``), on the user's data and batches, every step compared stage by stage."""

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.forms.arguments as arguments
import compare.check.forms.model as model_forms
import compare.check.forms.shapes as shapes
import compare.check.sandbox.guard as guard
from compare.check.check_optimizer import UserOptimizer, parse
from compare.check.diagnosis import initial_values
from compare.check.diagnosis.model import ModelDiagnoser
from compare.check.forms import torch_tensors as tensors
from compare.check.forms.mapping import Link, resolve
from compare.check.model_side import UserModelSide, last_layer, ordered_layers
from compare.check.report import Report
from compare.check.sandbox.isolated import entry_point
from compare.core import engine
from compare.core.records import RunResult, StepRecord
from compare.core.side import Pass
from compare.core.torch_side import TorchSide
from compare.core.verdict import passed_or_failed
from compare.errors import InputError
from compare.output.rundir import REPORT_HTML
from compare.output.tensorboard import RunWriters
from manual import schedules as manual_schedules
from manual.optim import SGD
from torch_ref import TorchTwin
from torch_ref import schedules as torch_schedules

DEFAULT_LR = 0.1  # plain SGD on both sides when no optimizer is given
LOG_EVERY = 25  # histograms and reference lines every K steps: a run's default --log-every


class ModuleSide(TorchSide):
    """The torch side for the user's own model (``TorchSide`` compares the parameters of nested blocks
    too): the twin is the user's code, so an exception in it is a finding."""

    steps_begun = 0
    _floors: dict[str, float] = {}  # noqa: RUF012 (replaced, never mutated)
    user_outputs: Callable[[], Mapping[str, np.ndarray]] = dict  # the user's layers' outputs, when compared

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None):
        """torch's pass; each parameter's update floor is taken from it before the update changes anything."""
        reference = super().train_pass(x, y, masks)
        self._floors = update_floors(self.model, reference.floors.get("grad", {}), self.optimizer)
        return reference

    def measured_floors(self, grad_floors: Mapping[str, float]) -> None:
        """The update floors again, from gradient floors that now include measured ones (``compare.core.spread``),
        before the update (the engine calls it before torch's step)."""
        self._floors = update_floors(self.model, grad_floors, self.optimizer)

    def param_floors(self) -> dict[str, float]:
        """The magnitude of the terms of each parameter's update, its floor in the param stage."""
        return self._floors

    def forward_backward(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]):
        """torch's forward and backward; the twin is the user's code too, so an exception is a finding."""
        self.steps_begun += 1
        with shapes.layer_shapes(self.model, self.user_outputs(), self.steps_begun):  # each layer's shape first
            return guard.call(self.steps_begun, "forward", "torch_model(x)", super().forward_backward, x, y, masks)


class ScalarLossSide(UserModelSide):
    """The user's side (``UserModelSide``), a loss returned as a 1-element array (``np.array([[0.7]])``) read as
    the number it holds, as ``check_loss`` reads it (``arguments.scalar_loss``: noted in ``notes``; a loss of
    more numbers is the finding ``shape``, torch's loss being one number)."""

    notes: list[str]

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> Pass:
        done = super().train_pass(x, y, masks)
        self.loss = arguments.scalar_loss(np.asarray(self.loss), self.notes, self.step)  # torch's: one number
        done.loss = np.float64(self.loss)
        return done


ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad)


def update_floors(model: nn.Module, grad_floors: Mapping[str, float], optimizer: torch.optim.Optimizer) -> dict:
    """θ' = θ − γ·u(g): the terms are |θ| and γ·|u|. For SGD, u's terms are g's floor (÷ (1 − μ) with
    momentum); an adaptive rule divides g by its own scale, so u's rounding is g's relative rounding
    amplified by κ = g's floor / |g| (a parameter whose exact gradient is 0 updates by amplified noise,
    which this floor lets pass; a real difference in the rule is of the size of γ and still fails)."""
    group = optimizer.param_groups[0]
    lr, momentum = float(group["lr"]), float(group.get("momentum", 0.0) or 0.0)
    floors = {}
    for name, param in model.named_parameters():
        floor = grad_floors.get(name, 0.0)
        grad = 0.0 if param.grad is None else float(param.grad.detach().abs().max())
        if isinstance(optimizer, ADAPTIVE):
            tiny = floor * float(torch.finfo(param.dtype).eps)  # κ at most 1/ε: a finite floor
            update = floor / max(grad, tiny) if floor > 0 else 1.0
        else:
            update = floor / (1.0 - momentum) if momentum < 1 else floor
        floors[name] = float(param.detach().abs().max()) + lr * update
    return floors


def _torch_optimizer(torch_optimizer: Any, model: nn.Module) -> torch.optim.Optimizer:
    """A fresh optimizer of the user's kind on the checker's copy of the model."""
    if torch_optimizer is None:
        return torch.optim.SGD(model.parameters(), lr=DEFAULT_LR)
    if isinstance(torch_optimizer, torch.optim.Optimizer):
        return type(torch_optimizer)(model.parameters(), **torch_optimizer.defaults)
    if isinstance(torch_optimizer, tuple):
        cls, hyperparameters = torch_optimizer
        return cls(model.parameters(), **hyperparameters)
    raise InputError("torch_optimizer: a torch.optim.Optimizer, or (its class, its hyperparameters)")


def _torch_copy(torch_model: nn.Module, dtype: str) -> nn.Sequential:
    model = copy.deepcopy(torch_model).to(getattr(torch, dtype)).train()
    return model if isinstance(model, nn.Sequential) else nn.Sequential(model)


def _dropout_layers(model: nn.Sequential, per_layer: bool) -> list[int]:
    """The twin's dropout layers, whose masks are the user's layers' (found as ``check_layer`` finds them)."""
    indices = [i for i, module in enumerate(model) if isinstance(module, nn.Dropout)]
    if indices and not per_layer:
        raise InputError(
            "your network has dropout, but its masks can only be taken from your layers: expose them as `layers` "
            "(a list or ordered dict, as many as the torch twin's) with `last_layer`, or check with p = 0"
        )
    return indices


def _load(model: nn.Module, params: Mapping[str, np.ndarray], links: Mapping[str, Link]) -> None:
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            value = links[name].to_torch(np.asarray(params[links[name].user]))
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _cast(value: Any, dtype: str) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(dtype) if value.dtype.kind == "f" else value


def _batches(X, y, batch_size: int | None, batches, seed: int, dtype: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches in the check's dtype (integer labels kept)."""
    if batches is not None:
        yield from ((_cast(bx, dtype), _cast(by, dtype)) for bx, by in batches)
        return
    X, y = _cast(X, dtype), _cast(y, dtype)
    rng = np.random.default_rng(seed)
    size = len(X) if batch_size is None else batch_size
    while True:
        order = rng.permutation(len(X))
        for start in range(0, len(X) - size + 1, size):
            index = order[start : start + size]
            yield X[index], y[index]


def _user_params(model: Any, form: str, params: Mapping | None, dtype: str) -> tuple[dict, Callable | None]:
    function = model if form == "function" else None
    if function is not None:
        if params is None:
            raise InputError("a model given as a function (params, x, y) -> (loss, grads) needs params=")
        return {name: np.array(value, dtype=dtype) for name, value in params.items()}, function
    wrong = {name: np.asarray(value).dtype for name, value in model.params.items()}
    wrong = {name: kind for name, kind in wrong.items() if kind != np.dtype(dtype)}
    if wrong:  # not cast: the user's layers hold these very arrays, and a cast would be a copy they never see
        named = ", ".join(f"{name} ({kind})" for name, kind in wrong.items())
        raise InputError(
            f"check_model: your params {named} are not in the check's dtype ({dtype}): pass "
            f"dtype='{next(iter(wrong.values()))}' to check them as they are (they are not cast: your layers hold them)"
        )
    return model.params, None


@entry_point  # report_dir=, isolate=, memory_limit=, time_limit, small: one thread
def check_model(
    model: Any,
    torch_model: nn.Module,
    torch_loss: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    optimizer: Any = None,
    torch_optimizer: Any = None,
    params: Mapping[str, np.ndarray] | None = None,
    mapping: Mapping[str, str] | None = None,
    layout: str | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    batches: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
    lr_schedule: str | None = None,
    dtype: str = "float64",
    seed: int = 0,
    tensorboard_dir: str | Path | None = None,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Train ``model`` and ``torch_model`` in lockstep for ``steps`` steps (default 20, or one per batch of
    ``batches``) and compare every step. ``optimizer``/``torch_optimizer``: the user's (any form
    ``check_optimizer`` takes) and torch's (an instance, or ``(class, hyperparameters)``); neither: plain
    SGD at lr 0.1 on both. ``tensorboard_dir``: curves written there as a ``run`` writes them (``manual/``,
    ``torch/``, ``parity/``), and the report as report.html (``Report.save_html``)."""
    arguments.model_arguments(model, torch_model, torch_loss, X, y, batches, batch_size)
    arguments.settings("model", dtype, steps)
    if (optimizer is None) != (torch_optimizer is None):
        raise InputError("pass both optimizer= and torch_optimizer= (or neither, for plain SGD on both)")
    model, params = tensors.numpy_side(guard.fresh(model), params), tensors.to_numpy(params)
    said_dtype = arguments.dtype_note(arguments.model_arrays(X, y, batches, params), dtype)
    model, form = model_forms.adapt(model, torch_loss)
    user_params, function = _user_params(model, form, params, dtype)
    torch_copy = _torch_copy(torch_model, dtype)
    layout = "out_in" if form == "column" and layout is None else layout  # columns: W x, weights (out, in)
    links = resolve({n: tuple(p.shape) for n, p in torch_copy.named_parameters()}, user_params, mapping, layout, True)
    _load(torch_copy, user_params, links)
    start = copy.deepcopy(torch_copy)  # the diagnosis replays from the starting values
    parsed = parse(lr_schedule)
    reference = _reference(torch_copy, torch_loss, torch_optimizer, parsed)
    user_optimizer = _user_optimizer(optimizer, user_params, reference.twin.optimizer)
    side = _user_side(model, function, user_params, links, user_optimizer, parsed, reference, start, dtype)
    per_layer = side.per_layer
    steps = steps if steps is not None else (len(list(batches)) if isinstance(batches, list) else 20)
    report = Report("model", steps=steps, notes=list(filter(None, [said_dtype])))
    lockstep = engine.Lockstep(side, reference, engine.Options(dtype=dtype))
    writers = _writers(tensorboard_dir, steps, dtype, user_optimizer)
    diagnoser = ModelDiagnoser(start, torch_loss, side, report, dtype, per_layer, reference)
    result = _train(lockstep, _batches(X, y, batch_size, batches, seed, dtype), steps, report, writers, diagnoser)
    report.checks = [check for record in result.records for check in record.checks]
    diagnoser.finish(reference.twin.optimizer, parsed)
    _notes(report, links, side)
    _finish(writers, report, tensorboard_dir)
    return report


def _user_side(
    model: Any,
    function: Callable | None,
    params: dict,
    links: dict,
    optimizer: UserOptimizer,
    parsed,
    reference,
    start: nn.Module,
    dtype: str,
) -> ScalarLossSide:
    """The user's side of the lockstep; when its layers are compared one by one (``per_layer_possible``),
    torch's modules are held to their outputs' shapes as they run (``ModuleSide.user_outputs``)."""
    per_layer = per_layer_possible(model, function, reference.model)
    side = ScalarLossSide(
        model, params, links, optimizer,
        schedule=manual_schedules.build(parsed, optimizer.handle) if parsed else None,
        per_layer=per_layer, function=function, reference_buffers=reference.buffers, reference_lr=reference.lr,
        reference_starts=initial_values.torch_starts(start), dtype=dtype,
    )  # fmt: skip
    side.dropout, side.notes = _dropout_layers(reference.model, per_layer), []
    if per_layer:
        reference.user_outputs = lambda: side.recorder.outputs
    return side


def _finish(writers: RunWriters | None, report: Report, tensorboard_dir) -> None:
    """Where the curves went, in the report's notes, and the report's text beside them (and as report.html)."""
    if writers is not None:
        report.notes.append(arguments.curves_note(tensorboard_dir))
        writers.finish(str(report), passed_or_failed(report.passed))
        report.save_html(Path(tensorboard_dir) / REPORT_HTML)


def _user_optimizer(optimizer: Any, params: dict, reference: torch.optim.Optimizer) -> UserOptimizer:
    """The user's optimizer (plain SGD when none), a function's config from torch's hyperparameters."""
    chosen = optimizer if optimizer is not None else SGD(lr=DEFAULT_LR)
    return UserOptimizer(chosen, params, hyperparameters=reference.defaults, torch_class=type(reference).__name__)


def _writers(tensorboard_dir, steps: int, dtype: str, user_optimizer: UserOptimizer) -> RunWriters | None:
    if tensorboard_dir is None:
        return None
    writers = RunWriters(Path(tensorboard_dir), dtype, LOG_EVERY)
    optimizer = getattr(user_optimizer.opt, "__name__", type(user_optimizer.opt).__name__)
    writers.start({"check": "model", "steps": steps, "dtype": dtype, "optimizer": optimizer})
    return writers


def per_layer_possible(model: Any, function: Callable | None, torch_copy: nn.Sequential) -> bool:
    layers = ordered_layers(model) if function is None else None
    return layers is not None and last_layer(model) is not None and len(layers) == len(torch_copy)


def _train(lockstep: engine.Lockstep, batches: Iterator, steps: int, report: Report, writers, diagnose) -> RunResult:
    """The engine's run; an exception in the user's code ends it as the report's finding."""
    result = RunResult()

    def on_step(record: StepRecord) -> None:
        if writers is not None:
            writers.log_step(record, lockstep)
        if diagnose is not None:
            diagnose(record)

    try:
        engine.run(lockstep, batches, steps, False, on_step, result)
    except guard.UserCodeError as error:
        report.error = error.failure
    return result


def _reference(torch_copy: nn.Sequential, torch_loss: nn.Module, torch_optimizer: Any, parsed) -> ModuleSide:
    reference_optimizer = _torch_optimizer(torch_optimizer, torch_copy)
    torch_schedule = torch_schedules.build(parsed, reference_optimizer) if parsed else None
    return ModuleSide(TorchTwin(torch_copy, torch_loss, reference_optimizer, torch_schedule))


def _notes(report: Report, links: Mapping[str, Link], side: ScalarLossSide) -> None:
    report.notes.extend(side.notes)
    report.notes.append("parameters: " + ", ".join(f"{name} ← {link.label()}" for name, link in links.items()))
    if not side.per_layer:
        layers = ordered_layers(side.model) if side.function is None else None
        why = "it exposes no layers list and last layer" if layers is None else "its layers do not match torch's"
        report.notes.append(f"layer outputs not compared: {why} (loss, gradients and parameters are)")
    if side.optimizer.lr() is None:
        report.notes.append("lr not compared: your optimizer has no lr attribute")
    report.notes.extend(side.late_notes.values())  # each statistic created on the first step: its start, and why
    mirrored = sorted(set(side.reference_buffers()) - set(side.kept_buffers))
    if mirrored:
        report.notes.append(f"torch's buffers {', '.join(mirrored)} not compared: your layers do not keep them")
