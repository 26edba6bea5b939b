"""A deliberately wrong manual rule is reported at the right step, stage and tensor.

Each fault is a realistic mistake written as a subclass of the correct piece, so the checker
under test runs unchanged; the expected location follows from the order a step computes
(forward, loss, grad from the loss down, state, param) and from where the mistake first acts.
"""

import math

import numpy as np
import pytest

from conftest import HOSTILE_WIDTHS, lockstep_run
from manual import MLPSpec
from manual.layers import Sigmoid
from manual.losses import CrossEntropyLoss
from manual.optim import Adam, Momentum


class AdamEpsInsideRoot(Adam):
    """denom = √(v̂ + ε) instead of torch's √v/√(1−β2^t) + ε."""

    def step(self, params, grads, state):
        beta1, beta2 = self.betas
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            t = s["step"]
            s["exp_avg"] += (1 - beta1) * (grads[name] - s["exp_avg"])
            s["exp_avg_sq"] *= beta2
            s["exp_avg_sq"] += (1 - beta2) * grads[name] ** 2
            v_hat = s["exp_avg_sq"] / (1 - beta2**t)
            param -= self.lr / (1 - beta1**t) * s["exp_avg"] / np.sqrt(v_hat + self.eps)


class MomentumDampedFirstStep(Momentum):
    """The buffer starts at zero, so step 1 gives b = (1 − τ)·g instead of torch's copy of g."""

    def init(self, params):
        return {name: {"momentum_buffer": np.zeros_like(p)} for name, p in params.items()}


class SigmoidDerivativeOfInput(Sigmoid):
    """σ' taken as x(1 − x) of the pre-activation instead of out(1 − out)."""

    def forward(self, x):
        self._x = x
        return super().forward(x)

    def backward(self, dout):
        return dout * self._x * (1.0 - self._x)


class CrossEntropyWithoutMean(CrossEntropyLoss):
    """The 1/N of the mean is forgotten in the gradient."""

    def backward(self):
        return super().backward() * self._probs.shape[0]


def swap_layer(index, layer):
    def patch(lockstep):
        lockstep.manual.model.layers[index] = layer

    return patch


def swap_loss(loss):
    def patch(lockstep):
        lockstep.manual.model.loss = loss

    return patch


ADAM = Adam(lr=0.01).hyperparameters()
MOMENTUM = Momentum(lr=0.05, dampening=0.5).hyperparameters()
FAULTS = [
    # fault, spec activation, optimizer, manual optimizer, patch, expected (step, stage, tensor)
    ("adam eps inside the root", "tanh", "adam", AdamEpsInsideRoot(**ADAM), None, (1, "param", "0.weight")),
    (
        "momentum buffer skips the first-step copy",
        "tanh",
        "momentum",
        MomentumDampedFirstStep(**MOMENTUM),
        None,
        (1, "state", "0.weight.momentum_buffer"),
    ),
    (
        "sigmoid derivative from the pre-activation",
        "sigmoid",
        "adam",
        None,
        swap_layer(3, SigmoidDerivativeOfInput()),
        (1, "grad", "2.out"),
    ),
    (
        "cross-entropy gradient without 1/N",
        "tanh",
        "adam",
        None,
        swap_loss(CrossEntropyWithoutMean()),
        (1, "grad", "4.out"),
    ),
]


@pytest.mark.parametrize(("fault", "activation", "optimizer", "manual_optimizer", "patch", "expected"), FAULTS)
def test_fault_is_located(fault, activation, optimizer, manual_optimizer, patch, expected):
    spec = MLPSpec(HOSTILE_WIDTHS, activation, "cross_entropy")
    hparams = ADAM if optimizer == "adam" else MOMENTUM
    result = lockstep_run(spec, optimizer, hparams, manual_optimizer=manual_optimizer, patch=patch)
    failure = result.first_failure
    assert failure is not None, f"{fault} went undetected"
    assert (failure.step, failure.stage, failure.tensor) == expected
    assert not result.passed
    assert len(result.records) == expected[0]  # stopped at the first failure
    assert failure.worst, "a failure carries its worst elements side by side"
    top = failure.worst[0]
    assert math.isclose(abs(top["manual"] - top["torch"]), failure.diff.max_abs)


def test_keep_going_runs_to_the_end_and_keeps_the_first_failure():
    spec = MLPSpec(HOSTILE_WIDTHS, "tanh", "cross_entropy")
    result = lockstep_run(spec, "adam", ADAM, manual_optimizer=AdamEpsInsideRoot(**ADAM), stop_at_first_failure=False)
    assert len(result.records) == 12
    assert result.first_failure.step == 1
    assert result.failed_steps == 12  # once the parameters differ, every later step differs too
