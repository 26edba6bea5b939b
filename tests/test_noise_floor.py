"""A noise floor measured, not guessed (``compare.core.spread``): a gradient that is zero by construction (the
bias of a Linear right before BatchNorm, which the normalisation removes) is rounding noise on both sides; it
passes against torch's own measured rounding spread, in every dtype, with an ``nn`` twin and with a twin
written as the user's own ``nn.Module``; a real mistake still fails at the step and tensor where it acts."""

import numpy as np
import pytest
import torch
from torch import nn

from compare import check_function, check_layer, check_model
from compare.core import spread
from compare.core.checks import Checks
from manual.optim import Adam

V, E, B, H, N = 11, 4, 3, 10, 16  # vocabulary, embedding width, context, hidden units, batch: none square
NAMES = ("C", "W1", "b1", "bngain", "bnbias", "W2", "b2")  # the lecture's names
MAPPING = {"0.weight": "C", "2.weight": "W1.T", "2.bias": "b1", "3.weight": "bngain", "3.bias": "bnbias"}
MAPPING |= {"5.weight": "W2.T", "5.bias": "b2"}


def ninja(mistake: str | None = None):
    """The "backprop ninja" network (embedding, Linear with a bias, BatchNorm as tensor ops, tanh, Linear,
    cross-entropy), its backward written by hand in torch tensors."""

    def model(p, x, y):
        C, W1, b1, bngain, bnbias, W2, b2 = (p[name] for name in NAMES)
        n = x.shape[0]
        embcat = C[x].view(n, -1)
        hprebn = embcat @ W1 + b1
        bndiff = hprebn - hprebn.sum(0, keepdim=True) / n
        bnvar_inv = ((bndiff**2).sum(0, keepdim=True) / n + 1e-5) ** -0.5
        bnraw = bndiff * bnvar_inv
        h = torch.tanh(bngain * bnraw + bnbias)
        logits = h @ W2 + b2
        probs = torch.softmax(logits, 1)
        loss = -probs.log()[range(n), y].mean()
        dlogits = probs.clone()
        dlogits[range(n), y] -= 1
        dlogits /= n
        dhpreact = (1 - h**2) * (dlogits @ W2.T)
        if mistake == "BN backward without its mean term":
            dhprebn = bngain * bnvar_inv * (dhpreact - bnraw * (dhpreact * bnraw).mean(0))
        else:
            dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - bnraw * (dhpreact * bnraw).sum(0))
        db1 = dhprebn.sum(0) if mistake != "db1 taken before BatchNorm" else (bngain * dhpreact).sum(0)
        dembcat = dhprebn @ W1.T
        dC = torch.zeros_like(C).index_add_(0, x.reshape(-1), dembcat.view(-1, C.shape[1]))
        grads = (dC, embcat.T @ dhprebn, db1, (bnraw * dhpreact).sum(0, keepdim=True))
        grads += (dhpreact.sum(0, keepdim=True), h.T @ dlogits, dlogits.sum(0))
        return loss, dict(zip(NAMES, grads, strict=True))

    return model


class OwnTwin(nn.Module):
    """The same network as the user's own ``nn.Module``: its own W1, b1, ... and BatchNorm as tensor ops."""

    def __init__(self, params: dict) -> None:
        super().__init__()
        for name in NAMES:
            setattr(self, name, nn.Parameter(params[name].clone()))

    def forward(self, x):
        h = self.C[x].view(x.shape[0], -1) @ self.W1 + self.b1
        mean = h.mean(0, keepdim=True)
        var = ((h - mean) ** 2).mean(0, keepdim=True)
        return torch.tanh(self.bngain * (h - mean) * (var + 1e-5) ** -0.5 + self.bnbias) @ self.W2 + self.b2


@pytest.fixture(scope="module")
def lecture():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Embedding(V, E), nn.Flatten(), nn.Linear(E * B, H), nn.BatchNorm1d(H), nn.Tanh())
    seq.append(nn.Linear(H, V))
    values = (seq[0].weight, seq[2].weight.T, seq[2].bias, seq[3].weight[None], seq[3].bias[None])
    values += (seq[5].weight.T, seq[5].bias)
    params = {name: value.detach().clone() for name, value in zip(NAMES, values, strict=True)}
    rng = np.random.default_rng(0)
    return seq, params, rng.integers(0, V, (2 * N, B)), rng.integers(0, V, 2 * N)


def check(lecture, dtype: str, twin: str, mistake: str | None = None, **options):
    seq, params, X, y = lecture
    torch_model, mapping = (seq, MAPPING) if twin == "nn" else (OwnTwin(params), None)
    model, loss, options = (
        ninja(mistake),
        nn.CrossEntropyLoss(),
        {"batch_size": N, "steps": 3, "dtype": dtype, **options},
    )
    return check_model(model, torch_model, loss, X, y, params=params, mapping=mapping, **options)


@pytest.mark.parametrize("twin", ["nn", "own"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_bias_before_batchnorm_passes_in_every_dtype_with_either_twin(lecture, dtype, twin):
    report = check(lecture, dtype, twin)
    assert report.passed, report
    if twin == "own":  # no structural floor knows this twin: b1 passed at its measured spread, and says so
        assert any(check.tensor == "0.b1" and check.spread is not None for check in report.checks)
        assert "passed at the measured rounding spread of 0.b1" in str(report)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_with_adam_a_gradient_of_noise_hands_its_measured_floor_to_the_update(lecture, dtype):
    """Adam divides b1's noise by its own size: each side steps by about lr, in its own direction. The measured
    floor of the gradient travels to the update's floor, as a structural floor does (``update_floors``)."""
    adam = {"optimizer": Adam(lr=0.01), "torch_optimizer": (torch.optim.Adam, {"lr": 0.01})}
    report = check(lecture, dtype, "own", **adam)
    assert report.passed, report


# Each mistake fails at step 1 on the first gradient, in the chain rule's order from the loss, that it changes:
# the BN backward's mean term feeds every gradient below BatchNorm (W1 first); db1 taken before the BatchNorm
# changes b1's alone, a gradient whose exact value is 0, so its noise floor must not hide an O(terms) error.
@pytest.mark.parametrize(
    ("mistake", "nn_tensor", "own_tensor"),
    [("BN backward without its mean term", "2.weight", "0.C"), ("db1 taken before BatchNorm", "2.bias", "0.b1")],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_real_mistake_still_fails_where_it_acts(lecture, dtype, mistake, nn_tensor, own_tensor):
    for twin, tensor in (("nn", nn_tensor), ("own", own_tensor)):
        failure = check(lecture, dtype, twin, mistake).first_failure
        assert (failure.step, failure.stage, failure.tensor) == (1, "grad", tensor), (twin, failure)


class BiasThenNorm(nn.Module):
    """x @ W + b, normalised over the batch: the bias's gradient is exactly zero."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.W, self.b = nn.Parameter(W.clone()), nn.Parameter(b.clone())

    def forward(self, x):
        return normalised(x, self.W, self.b)


def normalised(x, W, b):
    h = x @ W + b
    return (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)


class HandNorm(torch.autograd.Function):
    """The same, its backward written by hand (the fused BatchNorm backward)."""

    @staticmethod
    def forward(ctx, x, W, b):
        h = x @ W + b
        inv = 1 / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
        xh = (h - h.mean(0)) * inv
        ctx.save_for_backward(x, W, inv, xh)
        return xh

    @staticmethod
    def backward(ctx, d):
        x, W, inv, xh = ctx.saved_tensors
        dh = inv / len(d) * (len(d) * d - d.sum(0) - xh * (d * xh).sum(0))
        return dh @ W.T, x.T @ dh, dh.sum(0)


class NumpyNorm:
    """The same layer in NumPy, the textbook forward/backward protocol."""

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.params, self.grads = {"W": W.copy(), "b": b.copy()}, {}

    def forward(self, x):
        self.x, h = x, x @ self.params["W"] + self.params["b"]
        self.inv = 1 / np.sqrt(h.var(0) + 1e-5)
        self.xh = (h - h.mean(0)) * self.inv
        return self.xh

    def backward(self, d):
        dh = self.inv / len(d) * (len(d) * d - d.sum(0) - self.xh * (d * self.xh).sum(0))
        self.grads = {"W": self.x.T @ dh, "b": dh.sum(0)}
        return dh @ self.params["W"].T


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_check_function_passes_a_zero_gradient_at_its_measured_spread(dtype):
    torch.manual_seed(0)
    x, W, b = torch.randn(16, 5), torch.randn(5, 6), torch.randn(6)
    report = check_function(HandNorm, normalised, x, W, b, dtype=dtype)
    assert report.passed, report
    assert any(check.tensor == "db" and check.spread is not None for check in report.checks)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_layer_passes_a_zero_gradient_at_its_measured_spread(dtype):
    torch.manual_seed(0)
    W, b = torch.randn(5, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    x = np.random.default_rng(0).standard_normal((16, 5))
    user = NumpyNorm(W.numpy().astype(dtype), b.numpy().astype(dtype))
    report = check_layer(user, BiasThenNorm(W, b), x, dtype=dtype)
    assert report.passed, report
    assert "passed at the measured rounding spread of db" in str(report)


# Checks.rejudge on its own: a zero tensor computed as noise on each side passes at the spread of its
# recomputations; a difference of the size of the terms does not; and a reference that does not reproduce
# itself (its recomputation 0, nothing moved, differs) is not measured at all.
RNG = np.random.default_rng(3)
NOISE = 1e-17 * RNG.standard_normal((3, 10))  # each draw: an exact 0 computed with float64 rounding


@pytest.mark.parametrize(
    ("manual", "samples", "passes"),
    [
        (NOISE[0], [NOISE[0], NOISE[1], NOISE[2]], True),  # noise against noise: rounding
        (NOISE[0] + 1e-3 * np.eye(10)[4], [NOISE[0], NOISE[1], NOISE[2]], False),  # one element O(terms) off
        (NOISE[0], [NOISE[0] + 1e-17, NOISE[1], NOISE[2]], False),  # recomputation 0 differs: not measured
    ],
)
def test_rejudge_passes_noise_and_nothing_else(manual, samples, passes):
    reference = NOISE[1] * 0.5 + NOISE[2] * 0.5
    samples = [reference if k == 0 else sample for k, sample in enumerate(samples)] if passes else samples
    checks = Checks(1, "float64")
    checks.add("grad", "b1", manual, reference)
    assert not checks.collect()[0].passed  # noise over noise fails on the tensor's own scale
    measured = checks.rejudge(lambda k: {("grad", "b1"): samples[k]})
    assert checks.collect()[0].passed is passes
    assert (("grad", "b1") in measured) is passes


def test_a_branch_flipped_in_one_recomputation_does_not_inflate_the_spread():
    """Per element the nearest recomputation counts: a flip in one of them (a kink within an ulp) is not noise."""
    reference = np.zeros(6)
    flipped = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # one element's branch flipped in recomputation 1
    assert spread.measure(reference, [flipped, np.full(6, 1e-17)]) == pytest.approx(1e-17)


@pytest.mark.parametrize("side", ["torch", "jax"])
def test_a_reference_side_computed_again_reproduces_itself_and_moves_by_rounding(side):
    """Recomputation 0 (nothing moved) must equal the pass bit for bit, or nothing is ever measured; one with its
    inputs moved by an ulp differs from it by rounding only: a few ulps (~1e-16) of its scale; 1e-12 leaves 1e4
    for terms larger than the tensor itself, and is still far from any difference of formula."""
    from compare.core import mlp_pair
    from manual import MLPSpec, init_state_dict

    if side == "jax":
        pytest.importorskip("jax")
    spec = MLPSpec((2, 16, 16, 3), "relu", "cross_entropy", batchnorm=True, dropout=0.2)
    rng = np.random.default_rng(0)
    pair = mlp_pair.Pair(spec, init_state_dict(spec, rng, np.dtype("float64")), "adam", {"lr": 0.01}, "float64")
    reference = mlp_pair.SIDE_BUILDERS[side](pair)
    x, y = rng.standard_normal((8, 2)), rng.integers(0, 3, 8)
    masks = {i: rng.random((8, 16)) < 0.8 for i, node in enumerate(spec.layout()) if node.kind == "dropout"}
    done = reference.train_pass(x, y, masks)
    tensors = {("loss", "loss"): done.loss, **{("grad", name): g for name, g in done.grads.items()}}
    tensors |= {("forward", name): out for name, out in done.outputs.items()}
    again, moved = reference.recomputed(0, x, y, masks), reference.recomputed(1, x, y, masks)
    assert set(again) == set(tensors | {("grad", name): 0 for name in done.output_grads})
    spreads = {}
    for key, value in tensors.items():
        assert np.array_equal(spread.numpy(again[key]), spread.numpy(value)), key
        spreads[key] = spread.measure(spread.numpy(value), [moved[key]])
        assert spreads[key] < 1e-12 * max(np.max(np.abs(spread.numpy(value))), 1.0), key  # ~1e-16: rounding
    assert any(spreads[key] > 0 for key in tensors if key[0] == "grad")  # the ulp moved the computation


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_jax_function_passes_a_zero_gradient_at_its_measured_spread(dtype):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from compare import check_jax_function

    @jax.custom_vjp
    def norm(x, W, b):
        h = x @ W + b
        return (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5)

    def forward(x, W, b):
        h = x @ W + b
        inv = 1 / jnp.sqrt(h.var(0) + 1e-5)
        return (h - h.mean(0)) * inv, (x, W, inv, (h - h.mean(0)) * inv)

    def backward(saved, d):
        x, W, inv, xh = saved
        dh = inv / d.shape[0] * (d.shape[0] * d - d.sum(0) - xh * (d * xh).sum(0))
        return dh @ W.T, x.T @ dh, dh.sum(0)

    norm.defvjp(forward, backward)
    rng = np.random.default_rng(0)
    inputs = (rng.standard_normal((16, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6))
    report = check_jax_function(norm, *inputs, dtype=dtype)
    assert report.passed, report
    assert any(check.tensor == "db" and check.spread is not None for check in report.checks)
