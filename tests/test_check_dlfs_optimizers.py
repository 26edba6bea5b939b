"""check_optimizer on the optimizers of "Deep Learning from Scratch" (``tests/dlfs_optimizers.py``), each
against the torch optimizer a user would name: the verdict, the step of the first failure and the diagnosis
named, and the fix each diagnosis gives, applied, passing; the same diagnosis when a network is trained by
them (``check_model``). Their state (``self.v = None`` until the first update) is created by the first
update, and the book's RMSprop calls its α ``decay_rate``."""

from dataclasses import dataclass

import dlfs_optimizers as dlfs
import numpy as np
import pytest
import torch
from check_styles import TwoLayerNet
from torch import nn

import compare

STEPS = 6  # enough for a schedule's change at step 3 to be compared on three steps after it


@dataclass(frozen=True)
class Case:
    name: str
    make: type
    torch_class: type
    hyperparameters: dict
    schedule: str | None = None
    first_failure: int | None = None  # None: it passes
    diagnosis: str | None = None


MOMENTUM = {"lr": 0.01, "momentum": 0.9}
NESTEROV = {**MOMENTUM, "nesterov": True}
CASES = [
    Case("sgd", dlfs.SGD, torch.optim.SGD, {"lr": 0.01}),
    # classic momentum's v is −lr·b for torch's buffer b: the same rule while the lr is constant
    Case("momentum", dlfs.Momentum, torch.optim.SGD, MOMENTUM),
    Case("momentum under a schedule", dlfs.Momentum, torch.optim.SGD, MOMENTUM, "step:2:0.1", 3, "classic_momentum"),
    # μ²·v with v already updated: step 1 moves (1 + μ + μ²)·lr·g where torch's moves (1 + μ)·lr·g
    Case("nesterov", dlfs.Nesterov, torch.optim.SGD, NESTEROV, None, 1, "nesterov_updated_velocity"),
    # + 1e-7 outside the root where torch's Adagrad has ε = 1e-10 and its RMSprop 1e-8
    Case("adagrad", dlfs.AdaGrad, torch.optim.Adagrad, {"lr": 0.01}, None, 1, "convention:hard-coded-eps"),
    Case("rmsprop", dlfs.RMSprop, torch.optim.RMSprop, {"lr": 0.01}, None, 1, "convention:hard-coded-eps"),
    # two departures at once: the paper's ε-hat form and ε = 1e-7 written into the code
    Case("adam", dlfs.Adam, torch.optim.Adam, {"lr": 0.001}, None, 1, "adam_eps_hat and convention:hard-coded-eps"),
]


def check(user, torch_class: type, hyperparameters: dict, schedule: str | None = None):
    return compare.check_optimizer(user, torch_class, hyperparameters, lr_schedule=schedule, steps=STEPS)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_book_optimizer_gets_its_verdict_and_its_named_diagnosis(case: Case) -> None:
    report = check(case.make(lr=case.hyperparameters["lr"]), case.torch_class, case.hyperparameters, case.schedule)
    if case.first_failure is None:
        assert report.passed and report.diagnosis is None, report
        return
    assert not report.passed and report.first_failure.step == case.first_failure, report
    assert report.diagnosis is not None and report.diagnosis.replayed, report
    assert report.diagnosis.name == case.diagnosis, report
    assert report.diagnosis.fix, report


def test_the_books_adam_names_both_departures_with_a_fix_for_each() -> None:
    report = check(dlfs.Adam(lr=0.001), torch.optim.Adam, {"lr": 0.001})
    diagnosis = report.diagnosis
    assert "ε-hat" in diagnosis.explanation and "eps = 1e-07" in diagnosis.explanation, report
    assert "√v̂ + ε" in diagnosis.fix and "eps=1e-07" in diagnosis.fix, report
    # the ε alone, passed to the twin, leaves the ε-hat form, named on its own
    alone = check(dlfs.Adam(lr=0.001), torch.optim.Adam, {"lr": 0.001, "eps": 1e-7})
    assert alone.first_failure.step == 1 and alone.diagnosis.name == "adam_eps_hat", alone


class BookAdamRewritten(dlfs.Adam):
    """The book's Adam with the ε-hat fix applied: ε outside the corrected root (ε still 1e-7)."""

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        c1, c2 = 1.0 - self.beta1**self.iter, 1.0 - self.beta2**self.iter
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= self.lr * (self.m[key] / c1) / (np.sqrt(self.v[key] / c2) + 1e-7)


class BookNesterovRewritten(dlfs.Nesterov):
    """The book's Nesterov with its fix applied: μ²·v with the velocity from before this step's update."""

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            before = self.v[key].copy()
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * before
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


@pytest.mark.parametrize(
    ("user", "torch_class", "hyperparameters"),
    [
        (BookAdamRewritten(lr=0.001), torch.optim.Adam, {"lr": 0.001, "eps": 1e-7}),
        (dlfs.AdaGrad(lr=0.01), torch.optim.Adagrad, {"lr": 0.01, "eps": 1e-7}),
        (dlfs.RMSprop(lr=0.01), torch.optim.RMSprop, {"lr": 0.01, "eps": 1e-7}),
        (BookNesterovRewritten(lr=0.01), torch.optim.SGD, NESTEROV),
    ],
    ids=["adam", "adagrad", "rmsprop", "nesterov"],
)
def test_the_fix_each_diagnosis_gives_makes_the_check_pass(user, torch_class: type, hyperparameters: dict) -> None:
    report = check(user, torch_class, hyperparameters)
    assert report.passed, report


@pytest.mark.parametrize(
    ("optimizer", "twin", "name"),
    [
        (dlfs.Adam(lr=0.01), (torch.optim.Adam, {"lr": 0.01}), "adam_eps_hat and convention:hard-coded-eps"),
        (dlfs.Nesterov(lr=0.05), (torch.optim.SGD, {**NESTEROV, "lr": 0.05}), "nesterov_updated_velocity"),
    ],
    ids=["adam", "nesterov"],
)
def test_a_network_trained_by_the_books_optimizer_names_the_optimizer(optimizer, twin, name: str) -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    report = compare.check_model(
        TwoLayerNet(4, 6, 3), model, nn.CrossEntropyLoss(), x, y, batch_size=20, steps=3,
        optimizer=optimizer, torch_optimizer=twin,
    )  # fmt: skip
    assert (report.first_failure.step, report.first_failure.stage) == (1, "param"), report
    assert report.diagnosis.name == name, report
