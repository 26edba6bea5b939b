"""The reference's own rounding spread, measured from the computation itself, where a comparison fails.

The tolerance is relative to a tensor's scale: ``max|manual − torch| ≤ max_rel · max(max|torch|, floor)``
(``compare.core.metrics``), and the floor, the magnitude of the terms that produced the tensor, is known
only for the modules ``compare.core.scales`` recognises. A tensor whose exact value is 0 (the gradient of a
bias that a BatchNorm right after it removes: Σ_batch dL/dx̂ · ∂x̂/∂b = 0 for every input) is, on both sides,
rounding noise of the size ε·terms; measured against its own scale, noise over noise is ~1, a false alarm,
whenever the floor is not known (a user's own ``nn.Module``, a hand-written function).

So a check that fails is re-judged against the reference's own spread for that tensor, measured by computing
the reference again: every floating input and parameter multiplied by ``1 + u·ε`` (``u`` uniform in [−1, 1],
ε the dtype's epsilon: each moved by at most one ulp), ``SPREAD_SAMPLES`` times with different draws, after
once with nothing moved, which must reproduce the reference bit for bit (a twin with random draws of its own,
or a nondeterministic kernel, differs by more than rounding and is never measured). By backward
error analysis, what the reference computed is the exact result on inputs perturbed by a few ulps; moving
them by an ulp both re-draws the rounding of every operation and moves the exact result by as much as the
inputs' rounding can, so ``|r − r'|`` is a sample of the reference's own rounding error. A tensor that is
exact 0 for every input stays 0, and the recomputation yields a fresh draw of its noise. Per element the
spread is the *smallest* distance over the samples (a branch flipped in one recomputation, an argmax tie, a
ReLU within an ulp of its kink, does not inflate it), and the tensor's spread ``S`` is the largest of those
over its elements. The check then passes if ``max|manual − torch| ≤ SPREAD_FACTOR · S`` (the spread
becomes the tensor's floor, ``SPREAD_FACTOR · S / max_rel``; see ``compare.core.tolerances``): a wrong
formula is off by a fraction of the terms, O(terms), while ``S`` is O(ε · terms), so it still fails.

Only failing checks are re-judged, so a passing run computes nothing here; a re-judged check that passes
records its spread (``Check.spread``) and the report says how many tensors passed at their measured spread.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from compare.core.tolerances import SPREAD_FACTOR, SPREAD_SAMPLES

# What a recomputation returns: the reference's tensors by (stage, name), as the checks named them.
Recompute = Callable[[int], Mapping[tuple[str, str], Any]]


def eps(dtype: Any) -> float:
    """The machine epsilon of a floating NumPy or torch dtype."""
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps)
    return float(np.finfo(dtype).eps)


class Perturbation:
    """Recomputation ``k``'s draws: each floating array or tensor handed to it comes back multiplied by
    ``1 + u·ε`` (``u`` uniform in [−1, 1], drawn afresh for each element, ε its dtype's epsilon), computed in
    float64 and rounded back to its dtype; integers (labels, indices) come back unchanged."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.rng = np.random.default_rng(k)

    def __call__(self, value: Any) -> Any:
        if self.k == 0:  # recomputation 0 moves nothing: it shows whether the reference reproduces itself
            return value
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or value.numel() == 0:
                return value
            u = torch.from_numpy(self.rng.uniform(-1.0, 1.0, tuple(value.shape))).to(value.device)
            return (value.detach().double() * (1.0 + u * eps(value.dtype))).to(value.dtype)
        array = np.asarray(value)
        if array.dtype.kind != "f" or array.size == 0:
            return value
        u = self.rng.uniform(-1.0, 1.0, array.shape)
        return (array.astype(np.float64) * (1.0 + u * eps(array.dtype))).astype(array.dtype)


def numpy(value: Any) -> np.ndarray:
    """A reference's tensor as a NumPy array (torch's on any device, JAX's, NumPy's)."""
    if isinstance(value, torch.Tensor):  # floating values in float64, which holds bfloat16's (NumPy has none)
        value = value.detach().cpu()
        return (value.double() if value.is_floating_point() else value).numpy()
    return np.asarray(value)


def measure(reference: np.ndarray, again: Sequence[Any]) -> float:
    """``S = max_i min_k |reference_i − again[k]_i|``: the reference's rounding spread; NaN when it cannot be
    measured (no recomputation, another shape, a value that is not finite)."""
    reference = np.asarray(reference, dtype=np.float64)
    samples = [numpy(value) for value in again]
    if not samples or any(np.shape(sample) != reference.shape for sample in samples):
        return float("nan")
    if reference.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        distances = np.stack([np.abs(reference - np.asarray(sample, dtype=np.float64)) for sample in samples])
    nearest = distances.min(axis=0)
    if not np.all(np.isfinite(nearest)):
        return float("nan")
    return float(nearest.max())


def measured_floor(spread: float, max_rel: float) -> float:
    """The floor at which ``max_rel · floor = SPREAD_FACTOR · spread``: the check passes when its largest
    difference is within ``SPREAD_FACTOR`` times the reference's measured spread."""
    return SPREAD_FACTOR * spread / max_rel if max_rel > 0 else 0.0


def recomputations(recompute: Recompute) -> list[Mapping[tuple[str, str], Any]] | None:
    """Recomputation 0 (nothing moved) then ``SPREAD_SAMPLES`` recomputations of the reference, or ``None``
    when it cannot be recomputed (a twin that raises on perturbed inputs is judged as before)."""
    try:
        return [recompute(k) for k in range(SPREAD_SAMPLES + 1)]
    except Exception:  # a reference outside its domain after an ulp: not measured, the check keeps its verdict
        return None


def spread_of(reference: np.ndarray, samples: Sequence[Any]) -> float:
    """The measured spread (``measure``) over ``samples[1:]``, provided ``samples[0]`` (nothing moved) is
    ``reference`` bit for bit: a reference that does not reproduce itself (its own random draws, a
    nondeterministic kernel) differs by more than rounding, and is not measured (NaN)."""
    if len(samples) < 2 or not np.array_equal(numpy(samples[0]), np.asarray(reference), equal_nan=False):
        return float("nan")
    return measure(reference, samples[1:])


def note(checks: Sequence[Any]) -> str | None:
    """The report's line for the checks that passed at their measured spread, or ``None`` when none did."""
    measured = [check for check in checks if getattr(check, "spread", None) is not None and check.passed]
    if not measured:
        return None
    names = sorted({check.tensor for check in measured})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"{len(measured)} comparison(s) passed at the measured rounding spread of {shown}: the reference computed "
        "again with its inputs moved by an ulp differs by as much, so the difference is rounding (an exact 0 "
        "computed as noise)"
    )


def torch_again(
    k: int, reference: Callable, inputs: Sequence[Any], upstream: Sequence[Any]
) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor | None], dict[str, torch.Tensor | None]]:
    """A torch ``reference`` (a module or a function) computed again with its floating ``inputs``, its
    parameters and the ``upstream`` gradients moved by ``Perturbation(k)``: its outputs, the gradients of its
    floating inputs, and of its parameters by name. A module runs on moved copies of its parameters and
    copies of its buffers (``torch.func.functional_call``): the module itself, its running statistics and
    its gradients are left as they were."""
    moved = Perturbation(k)
    leaves = [moved(x).detach().requires_grad_(True) if _floating(x) else x for x in inputs]
    params: dict[str, torch.Tensor] = {}
    call = reference
    if isinstance(reference, torch.nn.Module):
        params = {name: moved(p).detach().requires_grad_(True) for name, p in reference.named_parameters()}
        state = {**params, **{name: b.clone() for name, b in reference.named_buffers()}}

        def call(*xs: Any) -> Any:
            return torch.func.functional_call(reference, state, xs)

    with torch.enable_grad():
        outs = call(*leaves)
        outs = tuple(outs) if isinstance(outs, list | tuple) else (outs,)
        wanted = [x for x in leaves if _floating(x)] + list(params.values())
        moved_upstream = [torch.as_tensor(moved(u)).to(out) for u, out in zip(upstream, outs, strict=True)]
        grads = torch.autograd.grad(outs, wanted, moved_upstream, allow_unused=True)
    floating = len(wanted) - len(params)
    return outs, list(grads[:floating]), dict(zip(params, grads[floating:], strict=True))


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()
