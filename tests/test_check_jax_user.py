"""User code written in JAX (``jax.numpy``, jax arrays, no ``jax.grad``) through check_layer, check_loss,
check_optimizer and check_model, and a ``jax.custom_vjp`` through check_function against torch autograd:
right code passes, a seeded mistake fails at its tensor (``compare.check.forms.jax_arrays``)."""

import numpy as np
import pytest
import torch
from torch import nn

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402 (the [jax] extra's, beside jax)

from compare import check_function, check_layer, check_loss, check_model, check_optimizer  # noqa: E402
from compare.check.forms.jax_arrays import is_jax_code  # noqa: E402

D, H, C, N = 5, 7, 4, 8  # input, hidden, classes, batch: non-square everywhere


class JaxAffine:
    """y = x @ W + b, W stored (in, out) as the textbooks do, in jax arrays; the gradients by hand."""

    def __init__(self, W, b, mistake=None):
        self.W, self.b, self.mistake = W, b, mistake

    def forward(self, x):
        self.x = x
        return jnp.dot(x, self.W) + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.mean(axis=0) if self.mistake == "db averaged" else dout.sum(axis=0)
        return dout @ self.W.T


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    module = nn.Linear(D, H)
    W, b = jnp.asarray(module.weight.detach().numpy().T), jnp.asarray(module.bias.detach().numpy())  # float32
    return module, W, b, np.random.default_rng(0).standard_normal((N, D))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_jnp_affine_layer_passes_against_linear(linear, dtype):
    module, W, b, x = linear
    report = check_layer(JaxAffine(W, b), module, x, steps=2, dtype=dtype)
    assert report.passed and {c.tensor for c in report.checks} == {"out", "dW", "db", "dx"}, report


def test_a_jnp_affine_layer_with_db_averaged_is_caught_and_named(linear):
    module, W, b, x = linear
    report = check_layer(JaxAffine(W, b, "db averaged"), module, x)
    assert (report.first_failure.stage, report.first_failure.tensor) == ("grad", "db")
    assert report.diagnosis.name == "bias-grad-averaged", report


def test_a_jnp_loss_pair_passes_and_a_missing_mean_fails():
    def loss_fn(scores, targets):
        logp = jax.nn.log_softmax(scores, axis=1)
        return -jnp.take_along_axis(logp, targets[:, None], axis=1).mean()

    def grad_fn(scores, targets, summed=False):
        d = jax.nn.softmax(scores, axis=1) - jax.nn.one_hot(targets, scores.shape[1], dtype=scores.dtype)
        return d if summed else d / len(targets)

    rng = np.random.default_rng(2)
    scores, targets = rng.standard_normal((N, C)), rng.integers(0, C, N)
    assert check_loss((loss_fn, grad_fn), nn.CrossEntropyLoss(), scores, targets).passed
    summed = check_loss((loss_fn, lambda s, t: grad_fn(s, t, summed=True)), nn.CrossEntropyLoss(), scores, targets)
    assert (summed.first_failure.stage, summed.first_failure.tensor) == ("grad", "dscores")


def sgd_momentum(w, dw, config):
    """The textbook update(w, dw, config) -> (next_w, config), in jnp: torch's SGD with momentum."""
    v = config["momentum"] * config.get("velocity", jnp.zeros_like(w)) + dw  # step 1: v = dw, as torch's buffer
    config["velocity"] = v
    return w - config["learning_rate"] * v, config


def adam_with(bias_corrected=True):
    """The textbook Adam as an update function in jnp (m, v, t in the config); ``bias_corrected=False``: the
    classic mistake of stepping on m and v themselves."""

    def adam(w, dw, config):
        t = config.get("t", 0) + 1
        m = config.get("m", jnp.zeros_like(w)) * config["beta1"] + (1 - config["beta1"]) * dw
        v = config.get("v", jnp.zeros_like(w)) * config["beta2"] + (1 - config["beta2"]) * dw**2
        m_hat, v_hat = (m / (1 - config["beta1"] ** t), v / (1 - config["beta2"] ** t)) if bias_corrected else (m, v)
        config.update(t=t, m=m, v=v)
        return w - config["learning_rate"] * m_hat / (jnp.sqrt(v_hat) + config["epsilon"]), config

    return adam


ADAM = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}  # all given: the config the function starts from


@pytest.mark.parametrize(
    ("update", "torch_class", "hyperparameters", "passes"),
    [
        (sgd_momentum, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, True),
        (adam_with(), torch.optim.Adam, ADAM, True),
        (adam_with(bias_corrected=False), torch.optim.Adam, ADAM, False),
    ],
)
def test_a_jnp_optimizer_function_against_torch(update, torch_class, hyperparameters, passes):
    assert is_jax_code(update)
    report = check_optimizer(update, torch_class, hyperparameters, steps=5)
    assert report.passed is passes, report
    if passes:
        assert {c.stage for c in report.checks} >= {"state", "param"}


class JaxMomentum:
    """The textbook update(params, grads) in jnp: JAX cannot update in place, so it rebinds params[name]."""

    def __init__(self, lr, momentum):
        self.lr, self.momentum, self.velocity = lr, momentum, {}

    def update(self, params, grads):
        for name, g in grads.items():
            self.velocity[name] = self.momentum * self.velocity.get(name, jnp.zeros_like(g)) + g
            params[name] = params[name] - self.lr * self.velocity[name]


def optax_state(key):
    """Where optax.adam keeps torch's ``key`` of a parameter: (ScaleByAdamState, ...)[0].mu / .nu."""
    return lambda state, name: getattr(state[0], {"exp_avg": "mu", "exp_avg_sq": "nu"}[key])[name]


@pytest.mark.parametrize(
    ("optimizer", "torch_class", "hyperparameters", "state_map", "passes"),
    [
        (JaxMomentum(0.1, 0.9), torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, {"momentum_buffer": "velocity"}, True),
        (optax.adam(1e-2), torch.optim.Adam, ADAM, {k: optax_state(k) for k in ("exp_avg", "exp_avg_sq")}, True),
        (optax.adam(1e-2, eps_root=1e-8), torch.optim.Adam, ADAM, None, False),  # ε inside the root too
    ],
)
def test_a_jax_optimizer_object_and_optax_against_torch(optimizer, torch_class, hyperparameters, state_map, passes):
    report = check_optimizer(optimizer, torch_class, hyperparameters, state_map=state_map, steps=5)
    assert report.passed is passes, report
    if state_map is not None:
        assert {c.tensor.rpartition(".")[2] for c in report.checks if c.stage == "state"} >= set(state_map), report


def mlp_loss_grads(params, x, y, mistake=None):
    """A Linear-Tanh-Linear regression net in jnp, torch's names and (out, in) layout; its backward by hand."""
    W1, b1, W2, b2 = params["0.weight"], params["0.bias"], params["2.weight"], params["2.bias"]
    h = jnp.tanh(x @ W1.T + b1)  # (N, H)
    out = h @ W2.T + b2  # (N, C)
    dout = 2 * (out - y) / out.size  # MSELoss averages every element
    dh = dout @ W2
    dhpre = (1 - h**2) * dh if mistake is None else dh  # the mistake: tanh's derivative forgotten
    grads = {"0.weight": dhpre.T @ x, "0.bias": dhpre.sum(0), "2.weight": dout.T @ h, "2.bias": dout.sum(0)}
    return ((out - y) ** 2).mean(), grads


@pytest.mark.parametrize(("mistake", "first"), [(None, None), ("tanh derivative forgotten", "0.weight")])
def test_a_jnp_network_through_check_model(mistake, first):
    torch.manual_seed(3)
    twin = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C)).double()
    params = {name: jnp.asarray(p.detach().numpy()) for name, p in twin.named_parameters()}  # the user's own
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((2 * N, D)), rng.standard_normal((2 * N, C))

    def model(p, x, t):
        return mlp_loss_grads(p, x, t, mistake)

    report = check_model(model, twin, nn.MSELoss(), X, y, params=params, batch_size=N, steps=3)
    if first is None:
        assert report.passed and {c.stage for c in report.checks} >= {"loss", "grad", "param"}, report
    else:
        failure = report.first_failure
        assert (failure.step, failure.stage, failure.tensor) == (1, "grad", first)


class JaxNet:
    """The textbook protocol (params dict, loss(x, t), gradient(x, t)) over jax arrays, weights (in, out):
    the checker's optimizer updates ``params``, read back into the user's dict before each call."""

    def __init__(self, params):
        self.params = params

    def loss(self, x, t):
        return ((self._forward(x) - t) ** 2).mean()

    def _forward(self, x):
        self.h = jnp.tanh(x @ self.params["W1"] + self.params["b1"])
        return self.h @ self.params["W2"] + self.params["b2"]

    def gradient(self, x, t):
        out = self._forward(x)
        dout = 2 * (out - t) / out.size
        dh = dout @ self.params["W2"].T * (1 - self.h**2)
        return {"W2": self.h.T @ dout, "b2": dout.sum(0), "W1": x.T @ dh, "b1": dh.sum(0)}


def test_a_textbook_jax_network_trains_through_check_model():
    torch.manual_seed(4)
    twin = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C)).double()
    weights = {"W1": twin[0].weight.T, "b1": twin[0].bias, "W2": twin[2].weight.T, "b2": twin[2].bias}
    params = {name: jnp.asarray(value.detach().numpy()) for name, value in weights.items()}
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((2 * N, D)), rng.standard_normal((2 * N, C))
    report = check_model(JaxNet(params), twin, nn.MSELoss(), X, y, batch_size=N, steps=4)
    assert report.passed and {c.stage for c in report.checks} >= {"grad", "param"}, report


def softplus_with(derivative):
    """softplus(x) = log(1 + eˣ) as a jax.custom_vjp whose backward is ``derivative`` (σ is right)."""

    @jax.custom_vjp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * derivative(x),))
    return softplus


def softplus_in_torch(x):  # functional.softplus's gradient is exactly 1 above x = 20, where σ(x) is not
    return torch.logaddexp(x, torch.zeros_like(x))


@pytest.mark.parametrize(
    ("derivative", "dtype", "passes"),
    [
        (jax.nn.sigmoid, "float32", True),
        (jax.nn.sigmoid, "float64", True),
        (lambda x: jax.nn.sigmoid(-x), "float32", False),  # a sign flipped
        (lambda x: jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x)), "float64", False),  # σ' for σ
    ],
)
def test_a_custom_vjp_against_torch_autograd(derivative, dtype, passes):
    x = torch.linspace(-3, 3, 12, dtype=torch.float64).reshape(3, 4)
    report = check_function(softplus_with(derivative), softplus_in_torch, x, dtype=dtype, device="cpu")
    assert report.passed is passes, report
    if not passes:
        assert (report.first_failure.stage, report.first_failure.tensor) == ("grad", "dx")


def test_a_custom_vjp_against_its_own_primal_differentiated_by_jax():
    wrong = softplus_with(lambda x: jax.nn.sigmoid(-x))
    assert check_function(softplus_with(jax.nn.sigmoid), wrong.fun, np.linspace(-3, 3, 7), device="cpu").passed
    assert not check_function(wrong, wrong.fun, np.linspace(-3, 3, 7), device="cpu").passed
