"""User code written in torch tensors (no autograd) through check_layer, check_loss, check_optimizer and
check_model: a "backprop ninja" MLP backward passes, two seeded mistakes fail at the right tensor, and a
backward that secretly calls autograd is reported as such."""

import numpy as np
import pytest
import torch
from torch import nn

from compare import check_layer, check_loss, check_model, check_optimizer
from compare.check.forms.torch_tensors import TorchCode, numpy_side

D, H, C, N = 5, 7, 4, 8  # input, hidden, classes, batch: non-square everywhere


def ninja(mistake: str | None = None):
    """An MLP (Linear-Tanh-Linear, cross-entropy) whose backward is written by hand in torch ops, each
    gradient named d<forward name>, as in the "become a backprop ninja" exercise."""

    def model(params, x, y):
        W1, b1, W2, b2 = params["0.weight"], params["0.bias"], params["2.weight"], params["2.bias"]
        n = x.shape[0]
        hpreact = x @ W1.T + b1  # (N, H)
        h = torch.tanh(hpreact)
        logits = h @ W2.T + b2  # (N, C)
        logit_maxes = logits.max(1, keepdim=True).values
        norm_logits = logits - logit_maxes
        counts = norm_logits.exp()
        counts_sum_inv = counts.sum(1, keepdim=True) ** -1
        probs = counts * counts_sum_inv
        loss = -probs.log()[range(n), y].mean()
        dlogits = probs.clone()  # softmax − one-hot, over n: the fused cross-entropy backward
        dlogits[range(n), y] -= 1
        dlogits /= n
        dh = dlogits @ W2
        dW2 = dlogits.T @ h
        db2 = dlogits.sum(0) if mistake != "db2 averaged" else dlogits.mean(0)
        dhpreact = (1 - h**2) * dh if mistake != "tanh from its input" else (1 - hpreact**2) * dh
        dW1 = dhpreact.T @ x
        db1 = dhpreact.sum(0)
        return loss, {"0.weight": dW1, "0.bias": db1, "2.weight": dW2, "2.bias": db2}

    return model


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    twin = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C)).double()
    params = {name: p.detach().clone() for name, p in twin.named_parameters()}  # the user's torch tensors
    rng = np.random.default_rng(0)
    return twin, params, rng.standard_normal((4 * N, D)), rng.integers(0, C, 4 * N)


def run(mlp, mistake=None):
    twin, params, X, y = mlp
    return check_model(ninja(mistake), twin, nn.CrossEntropyLoss(), X, y, params=params, batch_size=N, steps=4)


def test_a_backprop_ninja_mlp_in_torch_passes(mlp):
    report = run(mlp)
    assert report.passed, report


@pytest.mark.parametrize(("mistake", "tensor"), [("db2 averaged", "2.bias"), ("tanh from its input", "0.weight")])
def test_a_seeded_mistake_fails_at_its_tensor(mlp, mistake, tensor):
    failure = run(mlp, mistake).first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "grad", tensor)


class TorchAffine:
    """y = x @ W + b with W stored (in, out), the textbook layout, in torch tensors."""

    def __init__(self, W, b, secretly_autograd=False):
        self.W, self.b, self.secretly_autograd = W, b, secretly_autograd

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        if self.secretly_autograd:
            with torch.enable_grad():
                x = self.x.clone().requires_grad_(True)
                (dx,) = torch.autograd.grad((x @ self.W + self.b), x, dout)
        else:
            dx = dout @ self.W.T
        self.dW, self.db = self.x.T @ dout, dout.sum(0)
        return dx


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_torch_layer_passes_and_a_secret_autograd_backward_is_reported(dtype):
    torch.manual_seed(1)
    module = nn.Linear(D, H)
    W, b = module.weight.detach().T.clone(), module.bias.detach().clone()  # the user's float32 tensors
    x = np.random.default_rng(1).standard_normal((N, D))
    assert check_layer(TorchAffine(W, b), module, x, dtype=dtype).passed
    failure = check_layer(TorchAffine(W, b, secretly_autograd=True), module, x, dtype=dtype).first_failure
    assert failure.problem == "exception" and failure.message.startswith(
        "UsedAutogradError: your code called torch.autograd.grad"
    )


def test_a_torch_loss_and_a_torch_optimizer_pass():
    def loss_fn(scores, targets):
        return torch.nn.functional.cross_entropy(scores, targets)

    def grad_fn(scores, targets):
        d = torch.softmax(scores, 1)
        d[range(len(targets)), targets] -= 1
        return d / len(targets)

    rng = np.random.default_rng(2)
    scores, targets = rng.standard_normal((N, C)), rng.integers(0, C, N)
    assert check_loss((loss_fn, grad_fn), nn.CrossEntropyLoss(), scores, targets).passed

    class TorchMomentum:
        def __init__(self, lr, momentum):
            self.lr, self.momentum, self.buf = lr, momentum, {}

        def update(self, params, grads):
            for name, g in grads.items():
                buf = self.buf.get(name)
                self.buf[name] = g.clone() if buf is None else self.momentum * buf + g
                params[name] -= self.lr * self.buf[name]  # in place, as update(params, grads) promises
            return torch.zeros(())

    report = check_optimizer(TorchMomentum(0.1, 0.9), torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, steps=5)
    assert report.passed, report


class TextbookNet:
    """The textbook protocol (params dict, loss(x, t), gradient(x, t)) in torch tensors, weights (in, out)."""

    def __init__(self, params):
        self.params = params

    def _forward(self, x):
        self.h = torch.tanh(x @ self.params["W1"] + self.params["b1"])
        return self.h @ self.params["W2"] + self.params["b2"]

    def loss(self, x, t):
        return ((self._forward(x) - t) ** 2).mean()

    def gradient(self, x, t):
        out = self._forward(x)
        dout = 2 * (out - t) / out.numel()
        dh = dout @ self.params["W2"].T * (1 - self.h**2)
        return {"W2": self.h.T @ dout, "b2": dout.sum(0), "W1": x.T @ dh, "b1": dh.sum(0)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_textbook_torch_network_trains_in_place_through_check_model(dtype):
    torch.manual_seed(2)
    twin = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C))
    weights = {"W1": twin[0].weight.T, "b1": twin[0].bias, "W2": twin[2].weight.T, "b2": twin[2].bias}
    params = {name: value.detach().to(getattr(torch, dtype)).clone() for name, value in weights.items()}
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((2 * N, D)).astype(dtype), rng.standard_normal((2 * N, C)).astype(dtype)
    report = check_model(TextbookNet(params), twin, nn.MSELoss(), X, y, batch_size=N, steps=4, dtype=dtype)
    assert report.passed and {c.stage for c in report.checks} >= {"grad", "param"}, report
    assert torch.equal(params["W1"], weights["W1"].detach().to(params["W1"].dtype))  # the user's own: untouched


def test_numpy_code_is_left_as_it_is_and_torch_code_can_be_marked():
    class NumpyRelu:
        def forward(self, x):
            self.x = x
            return np.maximum(x, 0)

        def backward(self, dout):
            return dout * (self.x > 0)

    layer = NumpyRelu()
    assert numpy_side(layer) is layer and numpy_side((np.sum, np.mean)) == (np.sum, np.mean)
    wrapped = numpy_side(TorchCode(lambda scores: scores.softmax(1)))  # names no torch: marked by hand
    assert isinstance(wrapped(np.zeros((2, 3))), np.ndarray)
