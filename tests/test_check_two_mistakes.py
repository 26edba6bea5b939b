"""Several mistakes at once, each named: two in one layer, two in one optimizer, and an optimizer's departure
beside a layer's mistake in one model (split from test_check_when_it_fails.py, which measures a departure
that no known mistake reproduces)."""

import numpy as np
import textbook_styles as tb
import torch
from torch import nn

from compare import check_layer, check_model, check_optimizer

N, D = 32, 6  # batch, features


class SquareLinear:
    """y = x Wᵀ + b with W (out, in) as torch keeps it; dW written as the (in, out) formula and db averaged."""

    def __init__(self, W, b):
        self.params, self.grads = {"W": W.copy(), "b": b.copy()}, {}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"].T + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout  # should be dout.T @ x
        self.grads["b"] = dout.mean(0)  # should be dout.sum(0)
        return dout @ self.params["W"]


class AdamTwoMistakes:
    """Adam with β1 weighing the new gradient and without bias correction."""

    def __init__(self, lr):
        self.lr, self.m, self.v = lr, {}, {}

    def update(self, params, grads):
        for name, g in grads.items():
            self.m[name] = 0.9 * g + 0.1 * self.m.get(name, 0)
            self.v[name] = 0.999 * self.v.get(name, 0) + 0.001 * g * g
            params[name] -= self.lr * self.m[name] / (np.sqrt(self.v[name]) + 1e-8)


def test_two_mistakes_in_one_layer_are_each_named():
    rng = np.random.default_rng(4)
    W, b = rng.standard_normal((D, D)), rng.standard_normal(D)
    torch_layer = nn.Linear(D, D).double()
    report = check_layer(SquareLinear(W, b), torch_layer, rng.standard_normal((N, D)), layout="out_in")
    assert report.diagnosis is not None, report
    assert set(report.diagnosis.name.split(" and ")) == {"transposed-weight-grad", "bias-grad-averaged"}, report
    assert "transposed-weight-grad makes weight" in report.diagnosis.explanation


def test_two_mistakes_in_one_optimizer_are_each_named():
    report = check_optimizer(AdamTwoMistakes(1e-3), torch.optim.Adam, {"lr": 1e-3}, steps=3)
    assert report.diagnosis is not None, report
    assert set(report.diagnosis.name.split(" and ")) == {"adam-beta-on-new-gradient", "adam-no-bias-correction"}


def test_an_optimizer_departure_beside_a_layer_mistake_is_listed_and_named():
    twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    options = {"optimizer": tb.adam_no_bias_correction, "torch_optimizer": (torch.optim.Adam, {"lr": 1e-2})}
    model = tb.TwoLayerModel(4, 6, 3, mistake="bias-mean")
    report = check_model(model, twin, nn.CrossEntropyLoss(), X, y, batch_size=10, steps=3, **options)
    assert set(report.diagnosis.name.split(" and ")) == {"bias-grad-averaged", "adam-no-bias-correction"}, report
    assert any(part.name == "optimizer (Adam)" for part in report.parts), report
