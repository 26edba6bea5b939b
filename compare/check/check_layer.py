"""``check_layer``: a user's layer (``forward(x)``, ``backward(dout)`` → dx) against any ``torch.nn.Module``.

Per step, on the same input and the same upstream gradient (seeded random unless given):

* ``forward``: ``out``, the layer's output;
* ``grad``: each parameter gradient (``dW``, ``db``, ... in the user's names, in torch's layout), then
  ``dx`` (skipped for integer inputs, an Embedding's indices);
* ``state``: each buffer the user keeps (``running_mean``, ``running_var``); one the user does not keep
  is not compared, and the report says so. One the user's layer creates on its first step (``None``
  before it) is compared at step 1 when torch's rule from torch's start gives it; else torch takes the
  user's value after step 1 (its start named as a convention when it is a usual one, zeros for ones:
  ``compare.check.diagnosis.initial_values``) and its update is compared from step 2: two steps by default.

A layer that keeps its gradients until flushed (numpy-ml's ``flush_gradients()``, or ``zero_grad()``) is
flushed before each step, as its training loop does after each update.

The torch module is a copy holding the user's parameter values (copied, never shared); the user's
layer is a copy too, so the user's own object is left as it was.
"""

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.forms.arguments as arguments
import compare.check.forms.layer_loss as forms
import compare.check.forms.shapes as shapes
import compare.check.sandbox.guard as guard
from compare.check.diagnosis import initial_values, numerical, several
from compare.check.diagnosis.known_mistakes import diagnose_layer
from compare.check.forms import torch_tensors as tensors
from compare.check.forms.access import Access
from compare.check.forms.mapping import BUFFER_NAMES, Link, resolve
from compare.check.report import Report
from compare.check.sandbox.isolated import entry_point
from compare.core import scales, spread
from compare.core.checks import Checks
from torch_ref import InjectedMasks


@dataclass
class LayerRun:
    """What one step of the user's layer produced, in torch's layout (kept for the diagnosis)."""

    x: np.ndarray
    dout: np.ndarray
    mask: np.ndarray | None  # a dropout layer's mask (the user's draw, which torch applies too)
    # "out", "dx", torch's parameter keys ("weight", "bias") for their gradients, buffer keys → user's value
    tensors: dict[str, Any] = field(default_factory=dict)


def torch_copy(module: nn.Module, dtype: str) -> nn.Module:
    """A training-mode copy in ``dtype``; a Dropout applies the user's mask (``torch_ref.InjectedMasks``:
    torch's RNG cannot draw NumPy's mask, and torch still builds its own scale from it)."""
    twin = copy.deepcopy(module)
    if any(p.is_floating_point() for p in twin.parameters()) or any(b.is_floating_point() for b in twin.buffers()):
        twin = twin.to(getattr(torch, dtype))
    if isinstance(twin, nn.Dropout):
        twin.injected = InjectedMasks(nn.Sequential(twin))
    return twin.train()


def dropout_mask(layer: Any, module: nn.Module, x: np.ndarray, out: np.ndarray | None) -> np.ndarray | None:
    """The units the user's dropout kept (``kept_units``); ``None`` when ``module`` is no dropout."""
    if not isinstance(module, nn.Dropout):
        return None
    return kept_units(layer, x, out)


def kept_units(layer: Any, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """The units a user's dropout layer kept: its ``mask`` attribute when it has one of the input's shape,
    else every unit whose output is not 0 (a unit whose input is 0 gives 0 either way)."""
    mask = getattr(layer, "mask", None)
    if isinstance(mask, np.ndarray) and mask.shape == x.shape:
        return mask.astype(bool)
    if out is None or np.shape(out) != x.shape:
        return np.ones(x.shape, dtype=bool)
    return (out != 0) | (x == 0)


def load_user_values(module: nn.Module, user: Access, links: Mapping[str, Link], late: Sequence[str] = ()) -> None:
    """The user's parameters (and the running statistics they start from) into the torch copy; not those in
    ``late``, which the user's layer created on its first step (they start from torch's start)."""
    params = user.params()
    buffers = {key: value for key, value in user.buffers().items() if key not in late}
    with torch.no_grad():
        for name, tensor in module.named_parameters():
            value = links[name].to_torch(np.asarray(params[links[name].user]))
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        for name, tensor in module.named_buffers():
            key = name.rpartition(".")[2]
            if key in buffers and np.shape(buffers[key]) == tuple(tensor.shape):
                tensor.copy_(torch.as_tensor(np.asarray(buffers[key])))


def _as_input(x: Any, dtype: str) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(dtype) if x.dtype.kind == "f" else x


UPSTREAM_STREAM = 0x75707374  # the default upstream gradient's own stream: no user seed draws these numbers


def upstream_rng(seed: int) -> np.random.Generator:
    """The default upstream gradient's generator: ``seed`` on a spawn key of its own, so it is independent of
    ``default_rng(seed)`` (a user's data drawn with the same seed would otherwise be dout itself)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(UPSTREAM_STREAM,)))


@dataclass
class Setup:
    """The torch copy and how it is tied to the user's arrays; ``links`` is ``None`` until the user's
    parameters exist (a layer that creates them on its first forward)."""

    user: Access
    module: nn.Module
    mapping: Mapping[str, str] | None
    layout: str | None
    dtype: str
    links: dict[str, Link] | None = None
    start: nn.Module | None = None  # the module as it started (the diagnosis replays from it)
    late_buffers: tuple[str, ...] = ()  # running statistics the user creates on the first step
    taken_late: bool = False  # torch took them after step 1: the diagnosis replays from step 2
    origin: nn.Module | None = None  # the module before step 1, when torch took late statistics after it
    late_starts: dict[str, np.ndarray | None] = field(default_factory=dict)  # each one's start, told at step 1
    taken: dict[str, str] = field(default_factory=dict)  # those torch took after step 1 → the report's note
    kept: dict = field(default_factory=dict)  # the first failing step's pairs, for the measured diagnosis
    contexts: dict[int, numerical.Context] = field(default_factory=dict)

    def tie(self) -> None:
        shapes = {n: tuple(p.shape) for n, p in self.module.named_parameters()}
        self.links = resolve(shapes, self.user.params(), self.mapping, self.layout)
        self.user.cast(np.dtype(self.dtype))
        load_user_values(self.module, self.user, self.links, self.late_buffers)
        self.start = copy.deepcopy(self.module)


@entry_point  # report_dir=, isolate=, memory_limit=, time_limit, small: one thread
def check_layer(
    layer: Any,
    torch_module: nn.Module,
    x: np.ndarray | Sequence[np.ndarray],
    *,
    params: Sequence[np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
    grad_output: np.ndarray | None = None,
    mapping: Mapping[str, str] | None = None,
    layout: str | None = None,
    steps: int | None = None,
    dtype: str = "float64",
    seed: int = 0,
    diagnose: bool = True,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Check ``layer`` against ``torch_module`` on ``x`` (one batch, or a list of batches: one per step).

    ``layer``: an object, or a ``(forward, backward)`` pair of functions with ``params`` (the arrays
    ``forward`` takes after x, in its order) and ``config`` (the dict it takes last), see
    ``compare.check.forms.layer_loss``. ``grad_output``: the upstream gradient dL/d(out) (default: standard normal on
    a stream of its own); ``mapping`` ``{torch_name: user_name}`` and ``layout`` as in
    ``compare.check.forms.mapping``. ``steps`` (one batch): default 1, or 2 when the layer creates its running
    statistics on the first step (the step after is where their update is compared)."""
    arguments.twin_second("layer", layer, torch_module)
    arguments.given("layer", "x", x, "the layer's input, a batch (N, ...), or a list of batches, one per step")
    arguments.settings("layer", dtype, steps)
    user_layer = forms.layer_of(layer, params, config)
    batches = [_as_input(b, dtype) for b in x] if isinstance(x, list | tuple) else [_as_input(x, dtype)] * (steps or 1)
    report = Report("layer", steps=len(batches))
    user = Access(tensors.numpy_side(guard.fresh(user_layer)))
    first = x[0] if isinstance(x, list | tuple) and x else x
    report.notes.extend(filter(None, [arguments.dtype_note({"x": first, **user.params()}, dtype)]))
    setup = Setup(user, torch_copy(torch_module, dtype), mapping, layout, dtype)
    setup.late_buffers = tuple(key for key in BUFFER_NAMES if key not in user.buffers())
    if user.params() or not any(True for _ in setup.module.parameters()):
        setup.tie()
    extend = steps is None and not isinstance(x, list | tuple)  # lazily created statistics: a second step
    runs = _run(setup, batches, grad_output, upstream_rng(seed), report, extend)
    report.steps = len(batches)
    taken = list(setup.taken)
    if taken and len(runs) < initial_values.LATE_STEPS and report.error is None:
        _note(report, initial_values.uncompared_note(taken))
    if diagnose and not report.passed and report.error is None and setup.start is not None:
        report.diagnosis = _diagnose(setup, runs, report)
        report.diagnosed = True
    return report


FLUSHES = ("flush_gradients", "zero_grad")  # numpy-ml's layers add each backward's gradients until flushed


def _run(setup: Setup, batches: list, grad_output, rng, report: Report, extend: bool) -> list[LayerRun]:
    """Every step (``batches`` grows to ``LATE_STEPS`` when ``extend`` and step 1 created running statistics);
    an exception in the user's code ends them as the report's finding."""
    runs: list[LayerRun] = []
    try:
        while len(runs) < len(batches):
            step = len(runs) + 1
            _flush(step, setup.user.obj)
            dout = None if grad_output is None else np.asarray(grad_output, dtype=setup.dtype)
            runs.append(_step(step, setup, batches[step - 1], dout, rng, report))
            if extend and setup.late_starts and len(batches) < initial_values.LATE_STEPS:
                batches.extend([batches[0]] * (initial_values.LATE_STEPS - len(batches)))
    except guard.UserCodeError as error:
        report.error = error.failure
    return runs


def _flush(step: int, layer: Any) -> None:
    """The layer's gradients emptied before a step (``FLUSHES``), when it has a method for it."""
    name = next((name for name in FLUSHES if callable(getattr(layer, name, None))), None)
    if name is not None:
        guard.call(step, "grad", f"{name}()", getattr(layer, name))


def _diagnose(setup: Setup, runs: list[LayerRun], report: Report):
    """The known mistake or convention that reproduces the user's layer, replayed from torch's start; where
    the user's layer created running statistics torch took after step 1, from each start they may have had
    (``initial_values.starts_to_try``: its convention named too), then from step 2 on."""
    dtype, tries = setup.dtype, [(setup.start, runs, {})]
    if setup.taken_late:
        tries = [(m, runs, starts) for m, starts in initial_values.starts_to_try(setup.origin, setup.late_starts)]
        tries.append((setup.start, runs[1:], {}))
    for start, replayed, starts in tries:
        found = diagnose_layer(start, replayed, report, dtype, setup.user.obj)
        found = found or several.layer_mistakes(start, replayed, dtype)
        if found is None:
            continue
        for key, value in starts.items():
            own = dict(setup.origin.named_buffers())[key].detach().cpu().numpy()
            line = initial_values.convention_note(key, value, own, type(setup.module).__name__, f"twin.{key}")
            report.notes = [line if note == setup.taken.get(key) else note for note in report.notes]
            found = replace(found, explanation=found.explanation + initial_values.beside(key, value, own))
        return found
    return numerical.measure(report.checks, setup.kept, setup.contexts)  # no known mistake: what the departure says


def _step(step: int, setup: Setup, x, dout, rng, report: Report) -> LayerRun:
    user, module, dtype = setup.user, setup.module, setup.dtype
    checks = Checks(step, dtype, keep=setup.kept)
    handed_x, params = guard.fresh(x), {name: value.copy() for name, value in user.params().items()}
    out = guard.call(step, "forward", "forward(x)", user.obj.forward, handed_x)
    out = guard.returned(out, step, "forward", "forward(x)", np.dtype(dtype))
    guard.left_alone({"x": x, **params}, {"x": handed_x, **user.params()}, step, "forward", "forward(x)")
    if setup.links is None:  # parameters created by the first forward: torch takes them now
        setup.tie()
    links = setup.links
    module.zero_grad(set_to_none=True)  # each step's gradients on their own, as a training loop zeroes them
    xt = torch.from_numpy(x.copy())
    if xt.is_floating_point():
        xt.requires_grad_(True)
    mask = dropout_mask(user.obj, module, x, out)
    if mask is not None:
        module.injected.set(0, mask, xt.device)
    out_t = shapes.reference_forward(step, module, xt)
    shapes.same_output(step, "forward(x)", "your layer's output", out, tuple(out_t.shape), module, x)
    checks.add("forward", "out", out, out_t, scales.forward_floor(module, xt))
    if dout is None:
        dout = rng.standard_normal(tuple(out_t.shape)).astype(dtype)
    run = LayerRun(x, dout, mask, {"out": out})
    setup.contexts[step] = _context(x, out_t, dout, mask)
    handed = dout.copy()
    dx = guard.call(step, "grad", "backward(dout)", user.obj.backward, handed)
    due = guard.returned if xt.is_floating_point() else lambda value, *where: guard.as_array(value)  # dx is due
    dx = due(dx, step, "grad", "backward(dout)", np.dtype(dtype))
    if guard.wrote_into(dout, handed):
        _note(report, "backward(dout) wrote into the dout it was handed (a copy: nothing compared was changed)")
    guard.call(step, "grad", "torch backward", out_t.backward, torch.from_numpy(dout))
    g = float(np.max(np.abs(dout))) if dout.size else 0.0
    floors = scales.param_grad_floors(module, xt, g)
    for name, param in module.named_parameters():
        link = links[name]
        value = guard.as_array(user.grad(link.user), np.dtype(dtype))
        value = None if value is None else link.to_torch(value)
        tensor = f"d{link.user}"
        run.tensors[name.rpartition(".")[2]] = value
        checks.add("grad", tensor, value, param.grad, floors.get(name.rpartition(".")[2], 0.0))
    if xt.is_floating_point():
        run.tensors["dx"] = dx
        checks.add("grad", "dx", dx, xt.grad, scales.input_grad_floor(module, xt, g))
    checks.rejudge(lambda k: _again(k, module, xt, dout, links))  # a failure re-judged at torch's spread
    _buffers(checks, setup, run, report, step)
    if setup.taken_late and step == 1:
        setup.origin, setup.start = setup.start, copy.deepcopy(module)
    report.checks.extend(checks.collect())
    return run


def _again(k: int, module: nn.Module, xt: torch.Tensor, dout: np.ndarray, links: dict) -> dict:
    """torch's forward and backward again, inputs moved by an ulp (``compare.core.spread``), as the checks name them."""
    (out,), dx, grads = spread.torch_again(k, module, [xt], [torch.from_numpy(dout)])
    tensors = {("forward", "out"): out, **({("grad", "dx"): dx[0]} if dx else {})}
    return tensors | {("grad", f"d{links[name].user}"): grad for name, grad in grads.items()}


def _context(x: np.ndarray, out_t: torch.Tensor, dout: np.ndarray, mask: np.ndarray | None) -> numerical.Context:
    out = out_t.detach().numpy()
    return numerical.Context(
        batch=x.shape[0] if x.ndim >= 2 else None, classes=out.shape[-1] if out.ndim >= 2 else None,
        x=x if x.dtype.kind == "f" else None, out=out, dout=dout,
        masks={} if mask is None else {"dropout's mask": np.broadcast_to(mask, x.shape).astype(bool)},
    )  # fmt: skip


def _buffers(checks: Checks, setup: Setup, run: LayerRun, report: Report, step: int) -> None:
    kept = setup.user.buffers()
    for name, buffer in setup.module.named_buffers():
        key = name.rpartition(".")[2]
        if key not in kept:
            _note(report, f"torch's {name} is not compared: your layer keeps no '{key}'")
            continue
        if step == 1 and key in setup.late_buffers and np.shape(kept[key]) == tuple(buffer.shape):
            _created(checks, setup, run, report, key, buffer)
            continue
        value = kept[key]
        value = int(value) if np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iu" else guard.as_array(value)
        run.tensors[key] = value
        checks.add_state(key, value, buffer)


def _created(checks: Checks, setup: Setup, run: LayerRun, report: Report, key: str, buffer: torch.Tensor) -> None:
    """A statistic the user's layer created on step 1: compared when torch's rule from torch's own start gives
    it; else torch takes the user's value (its update compared from step 2), its start named when usual."""
    setup.user.cast(np.dtype(setup.dtype))  # made in its own dtype (np.zeros: float64): cast as the parameters were
    value = guard.as_array(setup.user.buffers()[key])
    run.tensors[key] = value  # the diagnosis replays step 1 from each start it may have had
    own = dict(setup.start.named_buffers())[key].detach().cpu().numpy()
    found = None
    if key in initial_values.RUNNING_STATISTICS:
        after, keep = buffer.detach().cpu().numpy(), initial_values.carry(setup.module)
        found = initial_values.start_of(value, after, own, keep, setup.dtype)
    setup.late_starts[key] = found
    if found is not None and np.array_equal(found, own):
        checks.add_state(key, value, buffer)  # created as torch's is: compared as at any step
        return
    with torch.no_grad():
        buffer.copy_(torch.as_tensor(np.asarray(value), dtype=buffer.dtype))
    setup.taken_late = True
    name = type(setup.module).__name__
    line = None if found is None else initial_values.convention_note(key, found, own, name, f"twin.{key}")
    setup.taken[key] = line or initial_values.undetermined_note(key)
    _note(report, setup.taken[key])


def _note(report: Report, note: str) -> None:
    if note not in report.notes:
        report.notes.append(note)
