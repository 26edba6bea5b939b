"""Conventions, not mistakes, each named with its own fix in ``Diagnosis.fix``: L2 regularisation in the loss
(CS231n's ``reg``), an optimizer's hard-coded ε, a mean where torch sums (and the reverse), ½·Σ against
``MSELoss(reduction='sum')``, BatchNorm's ε and momentum hard-coded, the initial value of an optimizer's lazily
created state (Adagrad's accumulator at optax's 0.1), and the conventions named before."""

import numpy as np
import pytest
import textbook_styles as tb
import torch
from torch import nn

from compare import check_layer, check_loss, check_model, check_optimizer

RNG = np.random.default_rng(5)
N, D, H, C = 16, 4, 6, 3
X = RNG.standard_normal((4 * N, D))
LABELS = RNG.integers(0, C, 4 * N)


class RegularisedNet(tb.TwoLayerModel):
    """CS231n's TwoLayerNet: the loss carries 0.5·reg·Σ W² over the weights, the gradients reg·W."""

    def __init__(self, reg: float) -> None:
        super().__init__(D, H, C)
        self.reg = reg

    def loss(self, X, y=None):
        result = super().loss(X, y)
        if y is None:
            return result
        loss, grads = result
        for name in ("W1", "W2"):
            loss += 0.5 * self.reg * np.sum(self.params[name] ** 2)
            grads[name] = grads[name] + self.reg * self.params[name]
        return loss, grads


def test_l2_in_the_loss_is_a_convention_with_its_fix():
    twin = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, C))
    report = check_model(RegularisedNet(0.1), twin, nn.CrossEntropyLoss(), X, LABELS, batch_size=N, steps=2)
    assert report.diagnosis.name == "convention:l2-in-the-loss", report
    assert "λ = 0.1 on every element" in report.diagnosis.explanation
    assert "weight_decay=0.1" in report.diagnosis.fix and report.diagnosis.fix in str(report)


class HardCodedAdam:
    """Adam as Keras writes it: ε = 1e-7 in the code, no eps attribute."""

    def __init__(self, lr):
        self.lr, self.m, self.v, self.t = lr, {}, {}, 0

    def update(self, params, grads):
        self.t += 1
        for name, g in grads.items():
            self.m[name] = 0.9 * self.m.get(name, 0) + 0.1 * g
            self.v[name] = 0.999 * self.v.get(name, 0) + 0.001 * g * g
            m, v = self.m[name] / (1 - 0.9**self.t), self.v[name] / (1 - 0.999**self.t)
            params[name] -= self.lr * m / (np.sqrt(v) + 1e-7)


def test_an_optimizer_s_hard_coded_eps_is_named_with_its_fix():
    report = check_optimizer(HardCodedAdam(1e-3), torch.optim.Adam, {"lr": 1e-3}, steps=3)
    assert report.diagnosis.name == "convention:hard-coded-eps", report
    assert report.diagnosis.fix == "pass eps=1e-07 to the twin, or use torch's eps=1e-08 in your code"


class LearnerAdagrad:
    """Adagrad as optax and TensorFlow write it: the accumulator, created at the first step, starts at 0.1; ε in
    the code (optax's 1e-7, or torch's 1e-10)."""

    def __init__(self, lr, eps):
        self.lr, self.cache, self._eps = lr, {}, eps

    def update(self, params, grads):
        for name, g in grads.items():
            if name not in self.cache:
                self.cache[name] = np.full_like(g, 0.1)
            self.cache[name] += g * g
            params[name] -= self.lr * g / (np.sqrt(self.cache[name]) + self._eps)


class ZeroMomentum:
    """SGD momentum with its buffer created at zeros: dampened at the first step, where torch copies g."""

    def __init__(self, lr, momentum, dampening):
        self.lr, self.momentum, self.dampening, self.v = lr, momentum, dampening, {}

    def update(self, params, grads):
        for name, g in grads.items():
            v = self.v.setdefault(name, np.zeros_like(g))
            v *= self.momentum
            v += (1 - self.dampening) * g
            params[name] -= self.lr * v


INITIAL_STATES = {  # the initial value of lazily created state: (optimizer, torch's class and settings, name, fix)
    "Adagrad's accumulator at 0.1": (LearnerAdagrad(1e-2, eps=1e-10), torch.optim.Adagrad, {"lr": 1e-2},
                                     "convention:initial-state", "torch.optim.Adagrad(..., "
                                     "initial_accumulator_value=0.1) for the twin"),
    "and optax's ε 1e-7": (LearnerAdagrad(1e-2, eps=1e-7), torch.optim.Adagrad, {"lr": 1e-2},
                           "convention:initial-state+eps", "torch.optim.Adagrad(..., initial_accumulator_value=0.1, "
                           "eps=1e-07) for the twin"),
    "a momentum buffer at zeros": (ZeroMomentum(0.05, 0.9, 0.5), torch.optim.SGD, {"lr": 0.05, "momentum": 0.9,
                                   "dampening": 0.5}, "momentum-zero-init-dampened", "on the first step set the buffer "
                                   "to the gradient itself"),
}  # fmt: skip


@pytest.mark.parametrize("case", INITIAL_STATES)
def test_the_initial_value_of_lazily_created_state_is_named_with_its_fix(case):
    optimizer, torch_class, hyperparameters, name, fix = INITIAL_STATES[case]
    report = check_optimizer(optimizer, torch_class, hyperparameters, steps=3)
    assert report.diagnosis.name == name, report
    assert report.diagnosis.fix.startswith(fix) and report.diagnosis.fix in str(report)


@pytest.mark.parametrize("eps", [1e-10, 1e-7])
def test_the_initial_state_fix_makes_the_twin_agree(eps):
    settings = {"lr": 1e-2, "initial_accumulator_value": 0.1, "eps": eps}  # the fix's twin
    report = check_optimizer(LearnerAdagrad(1e-2, eps=eps), torch.optim.Adagrad, settings, steps=3)
    assert report.passed, report


def mean_loss(scores, targets):  # (loss, dscores) averaged over the batch: torch's is reduction='sum'
    p = np.exp(scores - scores.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n = len(targets)
    d = p.copy()
    d[np.arange(n), targets] -= 1
    return -np.log(p[np.arange(n), targets]).mean(), d / n


def half_sum_squares(scores, targets):  # ½·Σ(s − t)², torch's MSELoss(reduction='sum') has no ½
    return 0.5 * np.sum((scores - targets) ** 2), scores - targets


LOSSES = {  # (the user's loss, torch's, targets, the convention, words of its fix)
    "mean where torch sums": (mean_loss, nn.CrossEntropyLoss(reduction="sum"), LABELS[:N], "mean-reduction",
                              "multiply your loss and its gradient by the batch size"),
    "½·Σ against MSELoss(sum)": (half_sum_squares, nn.MSELoss(reduction="sum"), RNG.standard_normal((N, C)),
                                 "half-of-sum", "drop the ½"),
}  # fmt: skip


@pytest.mark.parametrize("case", LOSSES)
def test_a_loss_scale_convention_is_named_with_its_fix(case):
    loss, torch_loss, targets, name, fix = LOSSES[case]
    report = check_loss(loss, torch_loss, RNG.standard_normal((N, C)), targets)
    assert report.diagnosis.name == f"convention:{name}", report
    assert report.diagnosis.fix.startswith(fix) and report.diagnosis.fix in str(report)


class HardCodedBatchNorm:
    """A batch norm with ε and momentum written into its code (no eps or momentum attribute)."""

    def __init__(self, width, eps=1e-5, momentum=0.1):
        self.params = {"gamma": np.ones(width), "beta": np.zeros(width)}
        self.grads, self._eps, self._m = {}, eps, momentum  # private: the learner's code writes the numbers in
        self.running_mean, self.running_var = np.zeros(width), np.ones(width)

    def forward(self, x):
        mu, var = x.mean(0), x.var(0)
        n = len(x)
        self.running_mean = (1 - self._m) * self.running_mean + self._m * mu
        self.running_var = (1 - self._m) * self.running_var + self._m * var * n / (n - 1)
        self.xhat, self.inv = (x - mu) / np.sqrt(var + self._eps), 1 / np.sqrt(var + self._eps)
        return self.params["gamma"] * self.xhat + self.params["beta"]

    def backward(self, dout):
        self.grads["beta"], self.grads["gamma"] = dout.sum(0), (dout * self.xhat).sum(0)
        dxhat = dout * self.params["gamma"]
        return self.inv * (dxhat - dxhat.mean(0) - self.xhat * (dxhat * self.xhat).mean(0))


BATCH_NORMS = {  # layer → (the convention, its fix)
    "eps 1e-6": (HardCodedBatchNorm(D, eps=1e-6), "convention:hard-coded-eps", "pass eps=1e-06 to the twin"),
    "Keras momentum 0.99": (HardCodedBatchNorm(D, momentum=0.01), "convention:hard-coded-momentum",
                            "pass momentum=0.01 to the twin"),
}  # fmt: skip


@pytest.mark.parametrize("case", BATCH_NORMS)
def test_a_batch_norm_s_hard_coded_setting_is_named_not_a_mistake(case):
    layer, name, fix = BATCH_NORMS[case]
    report = check_layer(layer, nn.BatchNorm1d(D), RNG.standard_normal((N, D)) * 2 + 1)
    assert report.diagnosis.name == name, report  # not the biased running variance
    assert report.diagnosis.fix.startswith(fix)


def test_every_convention_named_carries_its_fix():
    config = {"p": 0.2, "seed": 1, "p_is_keep": True}
    dropout = check_layer((tb.dropout_forward, tb.dropout_backward), nn.Dropout(0.2), X[:N], config=config)
    assert dropout.diagnosis.name == "convention:dropout-keep-probability", dropout
    assert dropout.diagnosis.fix.startswith("pass nn.Dropout(0.8) to the twin")
    scaled = check_loss(tb.svm_loss, nn.MultiMarginLoss(), RNG.standard_normal((N, C)), LABELS[:N])
    assert scaled.diagnosis.name == "convention:per-class-mean" and scaled.diagnosis.fix, scaled
