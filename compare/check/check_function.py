"""``check_function``: a hand-written backward in torch (a custom ``torch.autograd.Function``, or any callable
whose backward is written by hand) against autograd's backward of the plain torch composition. A JAX ``fn``
(a ``jax.custom_vjp``, a ``jnp`` composition) or ``reference`` runs as a ``torch.autograd.Function`` whose
backward is ``jax.vjp`` (``compare.check.forms.jax_arrays.torch_facing``): a custom_vjp's ``bwd`` against
torch autograd of a torch reference, or against JAX's differentiation of a plain ``jnp`` one.

``torch.autograd.gradcheck`` needs float64 and finite differences; this asks instead "does my backward equal
autograd's backward of the reference, within what this dtype allows?". Per draw of the inputs (a step of
the report), in ``dtype`` on ``device``:

* ``forward``: ``out`` (``out0``, ``out1``, ... for a tuple);
* ``grad``: ``d<name>`` of every floating input (named as ``reference``'s arguments) and of every parameter
  when ``fn`` and ``reference`` are modules (``reference`` gets ``fn``'s values), on a seeded upstream gradient.

The draws (``DRAWS``): the inputs as given, then seeded ones of the same shapes: standard normal, zeros,
large magnitudes and the kink of a ReLU-like op (exact zeros and values just either side). Below float64,
both sides are re-run in float64 on the same (rounded) inputs, held to float64's tolerance and reported as
``<tensor> (float64)``: a formula error smaller than the dtype's rounding still fails there, and a failure
is diagnosed as ``only right in float64`` (rounding: the float64 re-run agrees) or ``wrong everywhere``.
"""

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.forms.arguments as arguments
import compare.check.forms.shapes as shapes
import compare.check.sandbox.guard as guard
from compare.check.diagnosis import numerical
from compare.check.forms import jax_arrays
from compare.check.report import Diagnosis, Report
from compare.check.sandbox.isolated import entry_point
from compare.core import spread
from compare.core.checks import Checks
from compare.core.graph_order import backward_order
from compare.core.witness64 import SUFFIX

DRAWS = ("given", "normal", "zeros", "large", "kink")
# |x| up to ~100: exp(x) overflows float16 (max 65504) from x = 11, x² from 256, so a formula that
# overflows where torch's composition does not (exp(-x) / (1 + exp(-x))² for a sigmoid) shows here.
LARGE = 30.0
KINK_SIDE = 1e-3  # the values beside an exact 0: representable in float16 (smallest normal 6.1e-5)

ONLY_FLOAT64 = Diagnosis(
    "only right in float64",
    "your backward agrees with autograd in float64 but not in this dtype: the formula is right and its "
    "rounding or range is not (overflow, cancellation); compute it in float32 inside, or rearrange it",
)
WRONG_EVERYWHERE = Diagnosis(
    "wrong everywhere",
    "your backward differs from autograd in float64 too: a formula error, not rounding",
    replayed=False,  # told from the float64 re-run; nothing was replayed
)


def input_names(reference: Callable, count: int) -> list[str]:
    """The reference's positional argument names (``x``, ``weight``, ...), else ``input0``, ``input1``, ...;
    torch.nn.functional's ``input`` reads ``x`` (gradients are ``dx``)."""
    try:
        parameters = inspect.signature(reference).parameters.values()
        names = [{"input": "x"}.get(p.name, p.name) for p in parameters if p.kind.name.startswith("POS")]
    except (TypeError, ValueError):
        names = []
    return names[:count] if len(names) >= count else [f"input{i}" for i in range(count)]


def draw(kind: str, given: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One input of the draw ``kind``, of ``given``'s shape, dtype and device."""
    if kind == "given":
        return given.detach().clone()
    values = rng.standard_normal(tuple(given.shape))
    if kind == "zeros":
        values = np.zeros_like(values)
    elif kind == "large":
        values = values * LARGE
    elif kind == "kink":
        flat = values.reshape(-1)
        flat[::3] = 0.0
        flat[1::3] = np.sign(flat[1::3]) * KINK_SIDE
    return torch.tensor(values, dtype=given.dtype, device=given.device)


def _as_tensor(value: Any, dtype: torch.dtype, device: str) -> Any:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value.copy())
    if isinstance(value, torch.Tensor):
        value = value.detach().to(device)
        return value.to(dtype) if value.is_floating_point() else value
    return value


def _outputs(value: Any) -> tuple[torch.Tensor, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    """float64 on the CPU (NumPy has no bfloat16; float64 holds every float16/bfloat16 value exactly)."""
    return None if tensor is None else tensor.detach().to("cpu", torch.float64).numpy()


class Sides:
    """The user's ``fn`` and the reference, as copies in one dtype on one device (modules: parameters too)."""

    def __init__(self, fn: Any, reference: Any, dtype: torch.dtype, device: str) -> None:
        fn, reference = jax_arrays.torch_facing(fn), jax_arrays.torch_facing(reference)  # JAX: jax.vjp inside
        self.given = (fn, reference)
        if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
            fn = fn.apply
        self.fn, self.reference = fn, reference
        self.order: list[int] | None = None  # the gradients nearest the output first (the reference's graph)
        self.kept: dict = {}  # the first failing step's pairs (``Checks(keep=)``), for the measured diagnosis
        if isinstance(fn, nn.Module):
            self.fn = copy.deepcopy(fn).to(device=device, dtype=dtype)
        if isinstance(reference, nn.Module):
            self.reference = copy.deepcopy(reference).to(device=device, dtype=dtype)
            if isinstance(self.fn, nn.Module):
                self.reference.load_state_dict(self.fn.state_dict())

    def params(self, side: Any) -> dict[str, torch.Tensor]:
        """A side's parameters, compared when both sides are modules (else neither side's)."""
        paired = isinstance(self.fn, nn.Module) and isinstance(self.reference, nn.Module)
        return dict(side.named_parameters()) if paired else {}

    def run(self, step: int, who: str, inputs: Sequence[Any], upstream: list | None):
        """(outputs, the gradients of the floating inputs then of the parameters, the upstream gradients) of
        one side; ``upstream`` is drawn (seeded by the step) on the reference's call and reused for ``fn``'s."""
        side = self.fn if who == "fn" else self.reference
        leaves = [x.detach().clone().requires_grad_(True) if _floating(x) else x for x in inputs]
        params = self.params(side)
        for param in params.values():
            param.grad = None
        where = "fn(*inputs)" if who == "fn" else "reference(*inputs)"
        outs = _outputs(guard.call(step, "forward", where, side, *leaves))
        if upstream is not None:  # fn's outputs, against the reference's (upstream has their shapes)
            shapes.same_outputs(step, where, outs, upstream, self.given[1])
        if upstream is None:
            generator = torch.Generator().manual_seed(step)
            upstream = [torch.randn(o.shape, generator=generator, dtype=torch.float64).to(o) for o in outs]
        wanted = [x for x in leaves if _floating(x)] + list(params.values())
        where = "backward (your hand-written one)" if who == "fn" else "autograd backward of reference"
        if who == "reference" and self.order is None:
            self.order = backward_order(outs, wanted)
        grads = guard.call(step, "grad", where, torch.autograd.grad, outs, wanted, upstream, allow_unused=True)
        return outs, list(grads), upstream


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


@entry_point(single_threaded=False)  # report_dir=, isolate=, memory_limit=, time_limit
def check_function(
    fn: Any,
    reference: Callable,
    *inputs: Any,
    dtype: str = "float32",
    device: str | None = None,
    draws: Sequence[str] = DRAWS,
    seed: int = 0,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> Report:
    """Check ``fn`` (an ``autograd.Function``, its ``.apply``, or a callable or module with a hand-written
    backward) against ``reference`` (the plain torch composition) on ``inputs``, in ``dtype`` on ``device``
    (default: CUDA when present, else the CPU), over ``draws`` (see ``DRAWS``);
    each call into ``fn`` has ``time_limit`` seconds."""
    arguments.torch_dtype("function", dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    report = Report("function", steps=len(draws))
    given = [_as_tensor(x, getattr(torch, dtype), device) for x in inputs]
    names = input_names(reference, len(given))
    said = {name: x for name, x in zip(names, inputs, strict=True) if isinstance(x, torch.Tensor | np.ndarray)}
    report.notes.extend(filter(None, [arguments.dtype_note(said, dtype)]))
    grad_names = [f"d{n}" for n, x in zip(names, given, strict=True) if _floating(x)]
    sides = Sides(fn, reference, getattr(torch, dtype), device)
    grad_names += [f"d{n}" for n in sides.params(sides.reference)]
    rng = np.random.default_rng(seed)
    drawn = [[draw(k, x, rng) if _floating(x) else x for x in given] for k in draws]
    try:
        for step, (kind, values) in enumerate(zip(draws, drawn, strict=True), start=1):
            _draw_checks(step, kind, sides, values, grad_names, report, dtype, device)
    except guard.UserCodeError as error:
        report.error = error.failure
    if dtype != "float64" and report.error is None:
        _witness(sides, drawn, grad_names, report, device)
    if not report.passed and report.error is None:
        report.diagnosed = True
        report.diagnosis = _diagnosis(report, sides, drawn, dtype)
    return report


def _diagnosis(report: Report, sides: Sides, drawn: list, dtype: str) -> Diagnosis:
    """Only right in float64, or wrong everywhere: then measured (``compare.check.diagnosis.numerical``) on the
    float64 re-run when there is one (below float64, rounding blurs the law)."""
    witnessed = [c for c in report.checks if c.tensor.endswith(SUFFIX)]
    if dtype != "float64" and all(c.passed for c in witnessed):  # how closely the float64 re-run agrees
        return replace(ONLY_FLOAT64, max_rel=max((c.diff.max_rel for c in witnessed), default=0.0))
    lead = WRONG_EVERYWHERE.explanation
    if report.first_failure.stage == "forward":
        lead = "your forward differs from the reference's in float64 too"
    checks = witnessed or report.checks
    step = min(c.step for c in checks if not c.passed)
    values = [x.double() if witnessed and _floating(x) else x for x in drawn[step - 1]]
    measured = numerical.measure(checks, sides.kept, {step: _recomputed(sides.given[1], values, step)}, lead)
    return WRONG_EVERYWHERE if measured is None else measured


def _recomputed(reference: Any, values: list, step: int) -> "numerical.Context":
    """The draw's output and upstream gradient again, as the checks had them (``Sides.run``'s seed)."""
    try:
        with torch.no_grad():
            outs = _outputs(reference(*values))
    except Exception:  # a reference that cannot run in float64 (a module of another dtype): no context
        return numerical.Context()
    generator = torch.Generator().manual_seed(step)
    upstream = [torch.randn(o.shape, generator=generator, dtype=torch.float64).to(o) for o in outs]
    return _context(values, outs, upstream)


def _draw_checks(step, kind, sides: Sides, values, grad_names, report: Report, dtype: str, device: str, suffix=""):
    checks = Checks(step, dtype, device, keep=sides.kept)
    ref_outs, ref_grads, upstream = sides.run(step, "reference", values, None)
    if not all(bool(torch.isfinite(t).all()) for t in (*ref_outs, *ref_grads) if _floating(t)):
        # outside the reference's domain (log of a negative draw) or range (exp of a large one in float16)
        report.notes.append(f"draw {step} ({kind}): autograd's reference is not finite in {dtype}: not compared")
        return
    outs, grads, _ = sides.run(step, "fn", values, upstream)
    for i, ref in enumerate(ref_outs):
        name = "out" if len(ref_outs) == 1 else f"out{i}"
        mine = outs[i] if i < len(outs) else None
        checks.add("forward", name + suffix, _numpy(mine), _numpy(ref))
    order = sides.order if sides.order is not None else range(len(grad_names))
    for name, mine, ref in (((grad_names[i], grads[i], ref_grads[i])) for i in order):
        if ref is None and mine is None:
            continue  # the output depends on neither side's input: nothing to compare
        zero = np.zeros(tuple((mine if ref is None else ref).shape))  # autograd's None: a zero gradient
        checks.add("grad", name + suffix, zero if mine is None else _numpy(mine), zero if ref is None else _numpy(ref))
    checks.rejudge(lambda k: _again(k, sides, values, upstream, grad_names, suffix))  # at the reference's spread
    report.checks.extend(checks.collect())


def _again(k: int, sides: Sides, values: list, upstream: list, grad_names: list[str], suffix: str) -> dict:
    """The reference's outputs and gradients again, inputs moved by an ulp (``compare.core.spread``), as named."""
    outs, grads, params = spread.torch_again(k, sides.reference, values, upstream)
    grads = grads + [params[name] for name in sides.params(sides.reference)]
    names = ["out"] if len(outs) == 1 else [f"out{i}" for i in range(len(outs))]
    tensors = {("forward", name + suffix): out for name, out in zip(names, outs, strict=True)}
    return tensors | {("grad", name + suffix): grad for name, grad in zip(grad_names, grads, strict=False)}


def _context(values, ref_outs, upstream) -> "numerical.Context":
    """What the measured diagnosis knows of one draw: for one floating input and one output of its shape
    (an elementwise op), the input, the output and the upstream gradient; the batch size and width."""
    floating = [_numpy(x) for x in values if _floating(x)]
    x = floating[0] if len(floating) == 1 else None
    out, dout = _numpy(ref_outs[0]), _numpy(upstream[0])
    elementwise = x is not None and len(ref_outs) == 1 and out.shape == x.shape
    shape = floating[0].shape if floating else ()
    return numerical.Context(
        batch=shape[0] if len(shape) >= 2 else None,
        classes=shape[-1] if len(shape) >= 2 else None,
        x=x if elementwise else None,
        out=out if elementwise else None,
        dout=dout if elementwise else None,
    )


def _witness(outer: Sides, drawn, grad_names, report: Report, device: str) -> None:
    """Both sides again in float64 on the same rounded inputs, checks named ``<tensor> (float64)``; a
    function that cannot run in float64 is noted, not failed."""
    sides = Sides(outer.given[0], outer.given[1], torch.float64, device)
    sides.kept = outer.kept  # measured on, when the dtype's run fails
    try:
        for step, values in enumerate(drawn, start=1):
            values64 = [x.double() if _floating(x) else x for x in values]
            _draw_checks(step, "float64", sides, values64, grad_names, report, "float64", device, SUFFIX)
    except guard.UserCodeError as error:
        report.notes.append(f"not re-run in float64: {error.failure.line()}")
