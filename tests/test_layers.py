"""Every hand-written backward, node by node: against torch autograd and against finite differences.

Each layer is checked on ``L = Σ forward(x) · dout`` with a random upstream gradient ``dout``,
so ``backward(dout)`` must return exactly ∂L/∂x (and fill ∂L/∂W, ∂L/∂b). Each loss is checked on
its own scalar. All in float64. Letters: N batch, I input width, O output width.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.nn import functional as nnf

from compare.core import mlp_pair
from conftest import max_rel
from manual import ACTIVATION_NAMES, LOSS_NAMES, CrossEntropyLoss, MLPSpec, MSELoss, init_state_dict
from manual.layers import BATCHNORM_EPS, LEAKY_RELU_SLOPE, BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from manual.losses import BCEWithLogitsLoss

BATCH, WIDTH_IN, WIDTH_OUT = 5, 4, 3  # N, I, O: non-square, so a transposed W or a wrong sum axis changes a shape

# Same formula on both sides in float64: they differ only by summation order inside BLAS and the
# libm/ATen versions of exp/tanh, a few ulps (measured ≤ 2.2e-16 relative). 1e-12 leaves 1000x
# headroom, while a wrong formula (a slope, a missing 1/N, a transpose) is off by 1e-2 or more.
TORCH_MAX_REL = 1e-12

# Central differences: the error is O(h²) truncation (h²/6·f''' ≈ 1e-13 here) plus O(eps/h) rounding
# (eps·|L|/h ≈ 2e-16·10/1e-6 ≈ 2e-9, as L sums N·O ≈ 15 terms of order 1). h = 1e-6 keeps both small;
# measured ≤ 1.1e-9 relative. 1e-6 sits ~1000x above that and ~10^4x below a real formula error
# (a wrong slope or a missing factor 2 is off by 1e-2 or more).
FD_STEP = 1e-6
FD_MAX_REL = 1e-6


class Layer(Protocol):
    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def backward(self, dout: np.ndarray) -> np.ndarray: ...


class Loss(Protocol):
    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float: ...

    def backward(self) -> np.ndarray: ...


def to_torch(a: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    """A torch COPY of ``a`` (``torch.tensor`` never shares memory), so neither side can touch the other."""
    return torch.tensor(a, requires_grad=requires_grad)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """N(0, 1) pushed at least 0.1 from 0: far from ReLU's kink compared with FD_STEP."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.where(x >= 0, 1.0, -1.0)


def central_difference(f: Callable[[], float], a: np.ndarray) -> np.ndarray:
    """∂f/∂a by central differences, nudging ``a`` in place one entry at a time and restoring it."""
    grad = np.empty_like(a)
    for index in np.ndindex(a.shape):
        original = a[index]
        a[index] = original + FD_STEP
        f_plus = f()
        a[index] = original - FD_STEP
        f_minus = f()
        a[index] = original
        grad[index] = (f_plus - f_minus) / (2.0 * FD_STEP)
    return grad


# ---------------------------------------------------------------------------------------------
# The tables: one row per node, each naming the manual builder and the torch twin of its forward.


def make_linear(rng: np.random.Generator) -> Linear:
    weight = rng.standard_normal((WIDTH_OUT, WIDTH_IN))  # (O, I) torch layout
    bias = rng.uniform(0.5, 1.5, WIDTH_OUT) * rng.choice([-1.0, 1.0], WIDTH_OUT)  # (O,) |b| ≥ 0.5: never zero
    return Linear(weight, bias)


def make_batchnorm(rng: np.random.Generator) -> BatchNorm1d:
    gamma = rng.uniform(0.5, 1.5, WIDTH_IN)  # (I,) not 1: a missing γ in backward must show
    beta = rng.uniform(-1.0, 1.0, WIDTH_IN)  # (I,)
    return BatchNorm1d(gamma, beta, np.zeros(WIDTH_IN), np.ones(WIDTH_IN), np.array(0))


def torch_batchnorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Training mode: normalise with the batch's own (biased) statistics."""
    return nnf.batch_norm(x, None, None, weight, bias, training=True, eps=BATCHNORM_EPS)


@dataclass(frozen=True)
class LayerCase:
    name: str
    make: Callable[[np.random.Generator], Layer]
    torch_forward: Callable[..., torch.Tensor]  # (x, **params) with params named as the manual layer's


LAYER_CASES = [
    LayerCase("linear", make_linear, nnf.linear),
    LayerCase("relu", lambda rng: ReLU(), nnf.relu),
    LayerCase("leaky_relu", lambda rng: LeakyReLU(), nnf.leaky_relu),  # torch's default slope, not ours
    LayerCase("sigmoid", lambda rng: Sigmoid(), torch.sigmoid),
    LayerCase("tanh", lambda rng: Tanh(), torch.tanh),
    LayerCase("batchnorm", make_batchnorm, torch_batchnorm),
]


@dataclass(frozen=True)
class LossCase:
    name: str
    make: Callable[[], Loss]
    target: Callable[[np.random.Generator], np.ndarray]
    torch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # reduction="mean", torch's default


LOSS_CASES = [
    LossCase("cross_entropy", CrossEntropyLoss, lambda rng: rng.integers(0, WIDTH_OUT, size=BATCH), nnf.cross_entropy),
    LossCase("mse", MSELoss, lambda rng: rng.standard_normal((BATCH, WIDTH_OUT)), nnf.mse_loss),
    LossCase(
        "bce",
        BCEWithLogitsLoss,
        lambda rng: rng.uniform(0.0, 1.0, (BATCH, WIDTH_OUT)),  # probabilities, not only 0/1
        nnf.binary_cross_entropy_with_logits,
    ),
]


def by_name(cases: list) -> dict:
    return {"argvalues": cases, "ids": [case.name for case in cases]}


def layer_inputs(case: LayerCase, seed: int) -> tuple[Layer, np.ndarray, np.ndarray]:
    """The layer, an input x (N, I) away from the kink, and a random upstream gradient dout (N, O or I)."""
    rng = np.random.default_rng(seed)
    layer = case.make(rng)
    x = away_from_zero(rng, (BATCH, WIDTH_IN))  # (N, I)
    dout = rng.standard_normal(layer.forward(x).shape)  # (N, O) for Linear, (N, I) for activations
    return layer, x, dout


def manual_layer_grads(layer: Layer, x: np.ndarray, dout: np.ndarray) -> dict[str, np.ndarray]:
    """``{"x": dx, **dparams}`` copied out of the manual layer after one forward and backward."""
    layer.forward(x)
    dx = layer.backward(dout)
    return {"x": dx.copy(), **{name: grad.copy() for name, grad in layer.grads.items()}}


# ---------------------------------------------------------------------------------------------
# Layers


@pytest.mark.parametrize("case", **by_name(LAYER_CASES))
def test_layer_backward_matches_torch_autograd(case: LayerCase) -> None:
    layer, x, dout = layer_inputs(case, seed=1)
    y = layer.forward(x)
    manual = manual_layer_grads(layer, x, dout)

    x_t = to_torch(x, requires_grad=True)
    params_t = {name: to_torch(value, requires_grad=True) for name, value in layer.params.items()}
    y_t = case.torch_forward(x_t, **params_t)
    y_t.backward(to_torch(dout))
    reference = {"x": x_t.grad, **{name: p.grad for name, p in params_t.items()}}

    assert max_rel(y, y_t.detach().numpy()) <= TORCH_MAX_REL, "forward"
    assert manual.keys() == reference.keys()
    for name, grad in manual.items():
        assert max_rel(grad, reference[name].numpy()) <= TORCH_MAX_REL, f"d{name}"


@pytest.mark.parametrize("case", **by_name(LAYER_CASES))
def test_layer_backward_matches_central_differences(case: LayerCase) -> None:
    layer, x, dout = layer_inputs(case, seed=2)
    manual = manual_layer_grads(layer, x, dout)

    def objective() -> float:
        return float(np.sum(layer.forward(x) * dout))  # L = Σ y·dout, so ∂L/∂y = dout

    wrt = {"x": x, **layer.params}  # the live arrays: nudging them changes what forward computes
    assert manual.keys() == wrt.keys()
    for name, array in wrt.items():
        numeric = central_difference(objective, array)
        assert max_rel(manual[name], numeric) <= FD_MAX_REL, f"d{name}"


@pytest.mark.parametrize("case", **by_name(LAYER_CASES))
def test_layer_backward_does_not_mutate_its_inputs(case: LayerCase) -> None:
    layer, x, dout = layer_inputs(case, seed=3)
    # Zeros and negatives in dout and x give a masking backward something to overwrite.
    dout[0] = 0.0
    x[1] = -np.abs(x[1])
    dout_before, x_before = dout.copy(), x.copy()
    layer.forward(x)
    first = layer.backward(dout).copy()
    second = layer.backward(dout)
    assert np.array_equal(dout, dout_before), "backward mutated dout"
    assert np.array_equal(x, x_before), "forward or backward mutated x"
    assert np.array_equal(first, second), "a second backward on the same cache gave another dx"


def test_relu_gradient_at_exactly_zero_is_zero_like_torch() -> None:
    x = np.array([[-1.0, 0.0, 2.0], [0.0, -0.0, 3.0]])  # (2, 3) with +0 and −0 on the kink
    dout = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    relu = ReLU()
    relu.forward(x)
    dx = relu.backward(dout)

    x_t = to_torch(x, requires_grad=True)
    nnf.relu(x_t).backward(to_torch(dout))

    assert np.array_equal(dx, [[0.0, 0.0, 3.0], [0.0, 0.0, 6.0]])
    assert np.array_equal(dx, x_t.grad.numpy())


def test_leaky_relu_slope_is_torch_default_001() -> None:
    assert LEAKY_RELU_SLOPE == 0.01
    assert LeakyReLU().negative_slope == torch.nn.LeakyReLU().negative_slope == 0.01
    x = np.array([[-2.0, 0.0, 3.0]])  # (1, 3): negative, kink, positive
    dout = np.array([[5.0, 7.0, 11.0]])
    leaky = LeakyReLU()
    y = leaky.forward(x)
    dx = leaky.backward(dout)

    x_t = to_torch(x, requires_grad=True)
    y_t = nnf.leaky_relu(x_t)
    y_t.backward(to_torch(dout))

    assert np.array_equal(y, [[-0.02, 0.0, 3.0]])
    assert np.array_equal(dx, [[0.05, 0.07, 11.0]])  # at exactly 0 the slope applies, as in torch
    assert np.array_equal(y, y_t.detach().numpy())
    assert np.array_equal(dx, x_t.grad.numpy())


# ---------------------------------------------------------------------------------------------
# Losses


def loss_inputs(case: LossCase, seed: int) -> tuple[Loss, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prediction = 2.0 * rng.standard_normal((BATCH, WIDTH_OUT))  # (N, O) logits or predictions
    return case.make(), prediction, case.target(rng)


@pytest.mark.parametrize("case", **by_name(LOSS_CASES))
def test_loss_backward_matches_torch_autograd(case: LossCase) -> None:
    loss, prediction, target = loss_inputs(case, seed=4)
    value = loss.forward(prediction, target)
    dprediction = loss.backward()

    prediction_t = to_torch(prediction, requires_grad=True)
    value_t = case.torch_loss(prediction_t, to_torch(target))
    value_t.backward()

    assert max_rel(np.array(value), value_t.detach().numpy()) <= TORCH_MAX_REL, "loss"
    assert max_rel(dprediction, prediction_t.grad.numpy()) <= TORCH_MAX_REL, "dprediction"


@pytest.mark.parametrize("case", **by_name(LOSS_CASES))
def test_loss_backward_matches_central_differences(case: LossCase) -> None:
    loss, prediction, target = loss_inputs(case, seed=5)
    loss.forward(prediction, target)
    dprediction = loss.backward().copy()
    numeric = central_difference(lambda: loss.forward(prediction, target), prediction)
    assert max_rel(dprediction, numeric) <= FD_MAX_REL


@pytest.mark.parametrize("case", **by_name(LOSS_CASES))
def test_loss_backward_does_not_mutate_its_inputs_or_cache(case: LossCase) -> None:
    loss, prediction, target = loss_inputs(case, seed=6)
    prediction_before, target_before = prediction.copy(), target.copy()
    loss.forward(prediction, target)
    first = loss.backward().copy()
    second = loss.backward()
    assert np.array_equal(prediction, prediction_before)
    assert np.array_equal(target, target_before)
    assert np.array_equal(first, second), "backward changed the forward cache it reads"


# ---------------------------------------------------------------------------------------------
# The whole MLP: random architectures, every parameter gradient against torch autograd.


@settings(max_examples=50, deadline=None)
@given(
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=5),
    activation=st.sampled_from(ACTIVATION_NAMES),
    loss_name=st.sampled_from(LOSS_NAMES),
    batch=st.integers(1, 6),
    batchnorm=st.booleans(),
    dropout=st.sampled_from([0.0, 0.5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_mlp_gradients_match_torch_for_random_architectures(
    widths: list[int], activation: str, loss_name: str, batch: int, batchnorm: bool, dropout: float, seed: int
) -> None:
    """One lockstep step of the checker itself: every layer output, the loss and every gradient agree.

    Its metric measures each tensor against the magnitude of the terms that produced it
    (``compare.core.scales``): BatchNorm makes some gradients cancel almost exactly (a width-1 layer
    before it is scale-invariant), and only the terms' size says how much rounding that leaves.
    """
    assume(batch >= 2 or not batchnorm)  # a batch of one has no variance to normalise by
    spec = MLPSpec(tuple(widths), activation, loss_name, dropout, batchnorm)
    rng = np.random.default_rng(seed)
    weights = init_state_dict(spec, rng)  # float64, non-zero biases
    x = rng.standard_normal((batch, spec.widths[0]))  # (N, D)
    if loss_name == "cross_entropy":
        target = rng.integers(0, spec.widths[-1], size=batch)  # (N,) class indices
    elif loss_name == "bce":
        target = rng.uniform(0.0, 1.0, (batch, spec.widths[-1]))  # (N, C) probabilities
    else:
        target = rng.standard_normal((batch, spec.widths[-1]))  # (N, C)
    lockstep = mlp_pair.twins(spec, weights, "sgd", {"lr": 0.1}, "float64", seed=seed)
    record = lockstep.step(1, x, target)
    checked = {check.tensor for check in record.checks if check.stage == "grad"}
    assert set(spec.parameter_shapes()) <= checked  # every parameter gradient was compared
    assert record.first_failure is None, record.first_failure


# ---------------------------------------------------------------------------------------------
# Dropout: its mask is random, so it is checked by its definition rather than against torch's RNG.


def test_dropout_is_inverted_and_its_backward_uses_the_same_mask() -> None:
    p = 0.3
    layer = Dropout(p, np.random.default_rng(0))
    x = away_from_zero(np.random.default_rng(1), (2000, WIDTH_IN))
    out = layer.forward(x)
    kept = out != 0
    assert np.allclose(out[kept], x[kept] / (1 - p))  # survivors scaled by 1/(1 − p) at training time
    assert abs(1 - kept.mean() - p) < 0.02  # drop rate p (8000 draws: std 0.005)
    dout = np.random.default_rng(2).standard_normal(x.shape)
    dx = layer.backward(dout)
    assert np.array_equal(dx != 0, kept)
    assert np.allclose(dx[kept], dout[kept] / (1 - p))


def test_dropout_is_the_identity_in_evaluation_mode() -> None:
    layer = Dropout(0.5, np.random.default_rng(0))
    layer.training = False
    x = np.random.default_rng(1).standard_normal((BATCH, WIDTH_IN))
    assert np.array_equal(layer.forward(x), x)
    assert np.array_equal(layer.backward(x), x)


# ---------------------------------------------------------------------------------------------
# BatchNorm's running statistics and evaluation mode, against nn.BatchNorm1d over several batches.


def test_batchnorm_running_statistics_and_eval_match_torch() -> None:
    rng = np.random.default_rng(7)
    layer = make_batchnorm(rng)
    module = torch.nn.BatchNorm1d(WIDTH_IN, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(to_torch(layer.params["weight"]))
        module.bias.copy_(to_torch(layer.params["bias"]))
    for _ in range(4):
        x = 3.0 + 2.0 * rng.standard_normal((BATCH, WIDTH_IN))  # mean and variance far from 0 and 1
        layer.forward(x)
        module(to_torch(x))
    assert max_rel(layer.buffers["running_mean"], module.running_mean.numpy()) <= TORCH_MAX_REL
    # torch keeps the UNBIASED batch variance in running_var; the biased one would be off by N/(N−1)
    assert max_rel(layer.buffers["running_var"], module.running_var.numpy()) <= TORCH_MAX_REL
    assert int(layer.buffers["num_batches_tracked"]) == int(module.num_batches_tracked) == 4
    layer.training = False
    module.eval()
    x = rng.standard_normal((BATCH, WIDTH_IN))
    assert max_rel(layer.forward(x), module(to_torch(x)).detach().numpy()) <= TORCH_MAX_REL
