"""When a check fails and no known mistake reproduces the numbers, the departure itself is measured and said
in words (compare.check.diagnosis.numerical), on every entry point, with code written as learners write it:
NumPy and torch tensors; objects, function pairs, autograd.Functions and function-protocol models."""

import math

import numpy as np
import pytest
import torch
from engines import Tensor, Value
from torch import nn
from torch.nn import functional

from compare import check_engine, check_function, check_layer, check_loss, check_model, check_optimizer
from compare.check.diagnosis.numerical import Context, characterise

N, D, H, C, V = 32, 6, 10, 4, 12  # batch, features, hidden, classes, vocabulary


# --- custom autograd.Functions (check_function) -------------------------------------------------------------


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * x  # the 2 of d(x²)/dx = 2x forgotten


class TanhFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        h = torch.tanh(x)
        ctx.save_for_backward(h)
        return h

    @staticmethod
    def backward(ctx, grad_out):
        (h,) = ctx.saved_tensors
        return grad_out * (1 - h)  # 1 − h where the rule is 1 − h²


class Project(torch.autograd.Function):
    """y = x @ W.T with a square W: the weight's gradient written as a product in the wrong order."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        return grad_out @ weight, x.T @ grad_out  # dW should be grad_out.T @ x


class BatchNormFn(torch.autograd.Function):
    """A lecture's batch norm: the variance with Bessel's correction, 1/(n − 1), in the normalisation."""

    @staticmethod
    def forward(ctx, x):
        n = x.shape[0]
        xc = x - x.mean(0, keepdim=True)
        var = (xc**2).sum(0, keepdim=True) / (n - 1)
        return xc / torch.sqrt(var + 1e-5)

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out


def batch_norm(x):
    return functional.batch_norm(x, None, None, training=True, eps=1e-5)


def project(x, weight):
    return x @ weight.T


def randn(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape)), dtype=torch.float64)


class DenseTanh(torch.autograd.Function):
    """tanh(x Wᵀ + b), fused; dW taken from the pre-activation's gradient without the tanh factor."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        h = torch.tanh(x @ weight.T + bias)
        ctx.save_for_backward(x, weight, h)
        return h

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, h = ctx.saved_tensors
        dpre = grad_out * (1 - h**2)
        return dpre @ weight, grad_out.T @ x, dpre.sum(0)  # dW should be dpre.T @ x


def dense_tanh(x, weight, bias):
    return torch.tanh(x @ weight.T + bias)


def test_a_function_s_gradients_are_compared_nearest_its_output_first():
    report = check_function(DenseTanh, dense_tanh, randn(N, D), randn(H, D), randn(H), dtype="float64", device="cpu")
    assert [c.tensor for c in report.checks if c.step == 1 and c.stage == "grad"] == ["dbias", "dx", "dweight"]
    assert report.first_failure.tensor == "dweight", report
    assert "where: everything between the output and dweight agrees (dbias, dx)" in str(report), report


FUNCTIONS = [  # (autograd.Function, torch's composition, inputs, the words the report must say)
    (Square, lambda x: x * x, (randn(N, D),), "dx: ratio 0.500 to torch's on every element (= ½)"),
    (TanhFn, torch.tanh, (randn(N, D),), "your derivative is 1 − h on every element, where torch's is 1 − h²"),
    (Project, project, (randn(N, D), randn(D, D)), "dweight: torch's transposed"),
    (BatchNormFn, batch_norm, (randn(N, D),), "out: ratio 0.984 to torch's on every element (= √((n−1)/n)"),
]


@pytest.mark.parametrize("fn, reference, inputs, words", FUNCTIONS, ids=lambda v: getattr(v, "__name__", None))
def test_a_custom_autograd_function_mistake_is_measured_and_named(fn, reference, inputs, words):
    report = check_function(fn, reference, *inputs, dtype="float64", device="cpu")
    assert report.diagnosis is not None and report.diagnosis.name.startswith("measured:"), report
    assert words in str(report), report
    assert "reproduced to" not in str(report) and report.diagnosis.fix in str(report)  # nothing was replayed


# --- a function-protocol model written in torch tensors (check_model) ----------------------------------------


class CharModel(nn.Module):
    """A makemore-style model: an embedding the package cannot rebuild, so no catalog replay is possible."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.fc1 = nn.Linear(D, H)
        self.fc2 = nn.Linear(H, C)

    def forward(self, idx):
        return self.fc2(torch.tanh(self.fc1(self.emb(idx))))


def manual_backprop(mistake: str | None = None):
    """The lecture's backward by hand in torch tensors, each gradient named as the twin's parameter."""

    mistake = mistake or ""

    def model(params, x, y):
        names = ("emb.weight", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
        emb, W1, b1, W2, b2 = (params[f"0.{name}"] for name in names)
        n = x.shape[0]
        e = emb[x]
        hpre = e @ W1.T + b1
        h = torch.tanh(hpre)
        logits = h @ W2.T + b2
        probs = torch.softmax(logits, 1)
        picked = probs[range(n), y] + (1e-7 if "eps in the log" in mistake.split("+") else 0.0)
        loss = -picked.log().mean()
        dlogits = probs.clone()
        dlogits[range(n), y] -= 1
        if "dlogits not divided by n" not in mistake.split("+"):
            dlogits /= n
        dW2, db2 = dlogits.T @ h, dlogits.sum(0) if mistake != "db2 not summed" else dlogits
        dh = dlogits @ W2
        dhpre = dh * ((1 - h) if mistake == "tanh backward 1 - h" else (1 - h**2))
        dW1, db1 = dhpre.T @ e, dhpre.sum(0)
        demb = torch.zeros_like(emb).index_add_(0, x, dhpre @ W1)
        grads = {"0.emb.weight": demb, "0.fc1.weight": dW1, "0.fc1.bias": db1, "0.fc2.weight": dW2, "0.fc2.bias": db2}
        return loss, grads

    return model


@pytest.fixture(scope="module")
def char_model():
    torch.manual_seed(0)
    twin = CharModel().double()
    params = {f"0.{name}": p.detach().clone() for name, p in twin.named_parameters()}  # the user's torch tensors
    rng = np.random.default_rng(0)
    return twin, params, rng.integers(0, V, 4 * N), rng.integers(0, C, 4 * N)


def run_model(char_model, mistake):
    twin, params, X, y = char_model
    loss = nn.CrossEntropyLoss()
    return check_model(manual_backprop(mistake), twin, loss, X, y, params=params, batch_size=N, steps=2)


MODEL_MISTAKES = [  # mistake → (the first failing tensor, nearest the loss; the words the report must say)
    ("dlogits not divided by n", "0.fc2.weight", "ratio 32.000 to torch's on every element (= N = 32, the batch size)"),
    ("db2 not summed", "0.fc2.bias", "its sum over the broadcast axes is torch's"),
    ("tanh backward 1 - h", "0.fc1.weight", "between the loss and 0.fc1.weight agrees (0.fc2.weight, 0.fc2.bias)"),
]


@pytest.mark.parametrize("mistake, first, words", MODEL_MISTAKES, ids=[m[0] for m in MODEL_MISTAKES])
def test_a_manual_backprop_in_torch_tensors_is_measured_nearest_the_loss_first(char_model, mistake, first, words):
    assert run_model(char_model, None).passed
    report = run_model(char_model, mistake)
    assert report.first_failure.tensor == first, report  # not the embedding, the first parameter in the dict
    assert words in str(report), report
    if mistake != "tanh backward 1 - h":
        assert report.diagnosis.name.startswith("measured:"), report


def test_a_small_convention_in_the_loss_does_not_mask_a_gross_mistake_in_the_gradient(char_model):
    report = run_model(char_model, "eps in the log+dlogits not divided by n")
    assert report.first_failure.stage == "loss", report  # the 1e-7 inside the log: the loss departs first
    assert "ratio 32.000 to torch's on every element (= N = 32, the batch size)" in str(report), report


# --- layers, losses, optimizers (NumPy; object and function forms) -------------------------------------------


class LeakyReLU:
    """A Keras-minded leaky ReLU with slope 0.1 on the negative side (torch's default is 0.01)."""

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, 0.01 * x)

    def backward(self, dout):
        return dout * np.where(self.x > 0, 1.0, 0.1)


class TanhLayer:
    def forward(self, x):
        self.h = np.tanh(x)
        return self.h

    def backward(self, dout):
        return dout * (1 - self.h)


def test_a_layer_s_departures_are_measured():
    x = np.random.default_rng(1).standard_normal((N, D))
    tanh = check_layer(TanhLayer(), nn.Tanh(), x)
    assert "dx: your derivative is 1 − h on every element, where torch's is 1 − h²" in str(tanh), tanh
    assert tanh.diagnosis.fix == "dx = dout * (1 − h²)"
    leaky = check_layer(LeakyReLU(), nn.LeakyReLU(), x)
    assert "dx: departs only where the input is negative" in str(leaky), leaky


def mse_half_grad(scores, targets):  # a function returning (loss, dscores): the 2 of the square forgotten
    diff = scores - targets
    return np.mean(diff**2), diff / diff.size


def softmax_loss_skipping_last(scores, y):  # a loop that stops one sample short in the gradient
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    dscores = np.zeros_like(p)
    for i in range(len(y) - 1):
        dscores[i] = p[i]
        dscores[i, y[i]] -= 1
    return loss, dscores / len(y)


def test_a_loss_s_departures_are_measured():
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((N, C))
    half = check_loss(mse_half_grad, nn.MSELoss(), scores, rng.standard_normal((N, C)))
    assert "dscores: ratio 0.500 to torch's on every element (= ½)" in str(half), half
    last = check_loss(softmax_loss_skipping_last, nn.CrossEntropyLoss(), scores, rng.integers(0, C, N))
    assert "dscores: departs only in row 31 of 32 (yours is 0 there)" in str(last), last


class SGDAscent:
    """A textbook SGD whose update adds the gradient."""

    def __init__(self, lr):
        self.lr = lr

    def update(self, params, grads):
        for name in params:
            params[name] += self.lr * grads[name]


def test_an_optimizer_s_departure_is_measured_on_its_update():
    report = check_optimizer(SGDAscent(0.1), torch.optim.SGD, {"lr": 0.1}, steps=2)
    assert "ratio -1.000 to torch's on every element (= −1, a sign)" in str(report), report
    assert report.diagnosis.fix == "θ -= lr * update, not +="


def _add_assigned(self, other):  # += replaced by = in add's backward only
    other = self._lift(other)
    out = self._node(self.data + other.data, (self, other))

    def _backward():
        self.grad = out.grad
        other.grad = out.grad

    out._backward = _backward
    return out


def _mul_right_assigned(self, other):  # = for the right operand only
    other = self._lift(other)
    out = self._node(self.data * other.data, (self, other))

    def _backward():
        self.grad += other.data * out.grad
        other.grad = self.data * out.grad

    out._backward = _backward
    return out


def _mul_unreduced(self, other):  # a broadcast operand of * keeps the output's shape
    other = self._lift(other)
    out = self._node(self.data * other.data, (self, other))

    def _backward():
        self.grad = self.grad + other.data * out.grad
        other.grad = other.grad + self.data * out.grad

    out._backward = _backward
    return out


ENGINES = {  # the mistake → (engine, ops overridden, the name the report gives it)
    "= in add": (Value, {"__add__": _add_assigned}, "gradient assigned, not accumulated, in add"),
    "= for mul's right operand": (Value, {"__mul__": _mul_right_assigned},
                                  "gradient assigned, not accumulated, in mul (its right operand)"),
    "broadcast not reduced in *": (Tensor, {"__mul__": _mul_unreduced}, "broadcast gradient not reduced in mul"),
    "tanh backward 1 - t": (Value, {"tanh": lambda s: s._unary(math.tanh(s.data), lambda x, t: 1 - t)},
                            "tanh derivative written 1 − t (t = tanh(a), not squared)"),
}  # fmt: skip


@pytest.mark.parametrize("case", ENGINES)
def test_an_engine_mistake_in_one_op_is_named_with_the_op(case):
    engine, ops, name = ENGINES[case]
    report = check_engine(type("Buggy", (engine,), ops))
    assert name in {bug.name for bug in report.bugs}, report
    assert f"{name}:" in str(report)  # the diagnosis, or an "engine bug:" line of its own


def test_an_engine_mistake_nothing_replays_is_measured():
    doubled = type(
        "Doubled", (Tensor,), {"mean": lambda s: s._unary(s.data.mean(), lambda x, y: np.full_like(x, 2 / x.size))}
    )
    report = check_engine(doubled)
    assert report.diagnosis is not None and report.diagnosis.name == "measured:ratio", report
    assert "a.mean(): da: ratio 2.000 to torch's on every element (= 2)" in str(report), report


# --- the measurement itself ----------------------------------------------------------------------------------

REFERENCE = np.random.default_rng(3).standard_normal((8, 5))
CHARACTERISED = [  # (user, context, kind, words)
    (REFERENCE * 8, Context(batch=8), "ratio", "= N = 8, the batch size"),
    (REFERENCE / 8, Context(batch=8), "ratio", "= 1/N = 1/8"),
    (REFERENCE * (8 / 7), Context(batch=8), "ratio", "Bessel's correction"),
    (-REFERENCE, Context(), "ratio", "= −1, a sign"),
    (REFERENCE * 5, Context(batch=8, classes=5), "ratio", "= C = 5, the number of classes"),
    (REFERENCE.T, Context(), "transpose", "its transpose is torch's"),
    (REFERENCE[None], Context(), "axis", "a size-1 axis kept"),
    (np.zeros_like(REFERENCE), Context(), "zeros", "0 on every element"),
    (np.where(np.arange(5) == 2, 0.0, REFERENCE), Context(), "confined", "only in column 2 of 5"),
]


@pytest.mark.parametrize("user, context, kind, words", CHARACTERISED, ids=[c[2] + ":" + c[3] for c in CHARACTERISED])
def test_each_kind_of_departure_is_characterised(user, context, kind, words):
    finding = characterise("dW", user, REFERENCE, context)
    assert finding is not None and finding.kind == kind and words in finding.line(), finding
    assert characterise("dW", REFERENCE, REFERENCE, context) is None  # nothing departs: nothing said
