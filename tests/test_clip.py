"""Gradient-norm clipping against torch.nn.utils.clip_grad_norm_: the returned norm and the clipped gradients.

Tolerances, relative (reference: torch): the per-tensor norms are sums of squares that torch's
``vector_norm`` and NumPy's BLAS dot accumulate in different orders, a few ulps apart, and the clip
coefficient inherits that. float64: 1e-14 (ulp 2.2e-16); float32: 1e-6 (ulp 1.2e-7; measured 2e-7).
A convention slip (no 1e-6, clipping only above max_norm, the mean of norms) shows at 1e-7 or far more.
"""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from test_optimizers import max_rel

from manual.clip import clip_grad_norm

SHAPES = {"0.weight": (7, 3), "0.bias": (7,), "2.weight": (4, 7), "2.bias": (4,)}  # non-square, biases too
MAX_REL = {"float64": 1e-14, "float32": 1e-6}


@dataclass(frozen=True)
class Case:
    name: str
    scale: float  # the random gradients times this
    max_norm: float | None  # None: exactly the gradients' norm (as float64 computes it)
    dtype: str
    clips: bool  # whether the gradients must change


CASES = [
    Case("clips", 1.0, 0.5, "float64", True),
    Case("clips_hard", 100.0, 1e-3, "float64", True),
    Case("does_not_clip", 1.0, 1e3, "float64", False),
    Case("max_norm_equal_to_norm_still_scales", 1.0, None, "float64", True),  # by 1 − 1e-6/N
    Case("norm_below_max_norm_but_tiny_still_scales", 1e-8, 1e-7, "float64", True),  # 1e-7/(N + 1e-6) < 1
    Case("clips_float32", 1.0, 0.5, "float32", True),
    Case("does_not_clip_float32", 1.0, 1e3, "float32", False),
    Case("zero_gradients", 0.0, 1.0, "float64", False),
]


def gradients(case: Case) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {name: (rng.standard_normal(shape) * case.scale).astype(case.dtype) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_clip_grad_norm_matches_torch(case: Case) -> None:
    grads = gradients(case)
    before = {name: g.copy() for name, g in grads.items()}
    dtype = getattr(torch, case.dtype)
    params = {name: torch.nn.Parameter(torch.zeros(g.shape, dtype=dtype)) for name, g in grads.items()}
    for name, param in params.items():
        param.grad = torch.tensor(grads[name])  # a copy
    norm64 = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values())))
    max_norm = case.max_norm if case.max_norm is not None else norm64

    arrays = dict(grads)  # the caller's array objects
    reference = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
    total_norm = clip_grad_norm(grads, max_norm)

    tolerance = MAX_REL[case.dtype]
    assert type(total_norm) is float
    assert abs(total_norm - reference.item()) <= tolerance * abs(reference.item())
    assert all(grads[name] is arrays[name] for name in arrays), "clipped in place, in the caller's arrays"
    for name, g in grads.items():
        expected = params[name].grad.numpy()
        assert g.dtype == expected.dtype, name
        assert max_rel(g, expected) <= tolerance, name
        assert np.array_equal(g, before[name]) != case.clips, f"{name}: clipped={case.clips} expected"


def test_clipped_norm_is_max_norm_up_to_the_epsilon() -> None:
    grads = gradients(CASES[0])
    clip_grad_norm(grads, 0.5)
    clipped = clip_grad_norm(grads, 1e3)  # not clipping: only measures
    assert clipped == pytest.approx(0.5, rel=1e-5)  # 0.5 · N/(N + 1e-6)
    assert clipped < 0.5


def test_no_gradients_has_norm_zero() -> None:
    assert clip_grad_norm({}, 1.0) == 0.0
