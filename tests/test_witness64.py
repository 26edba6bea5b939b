"""float32 proven in float64: rule errors far below float32's tolerance are caught at the first step
they act, by the float64 witness (``compare.core.witness64``)."""

from dataclasses import dataclass, replace

import numpy as np
import pytest

from compare.core import witness64
from compare.core.override import layer_as
from conftest import lockstep_run
from manual import MLPSpec
from manual.layers import BatchNorm1d
from manual.optim.adam import Adam
from manual.optim.adamw import AdamW
from manual.optim.sgd import SGD

SPEC = MLPSpec((3, 7, 5, 4), "tanh", "mse")


@dataclass
class AdamWDecayAfter(AdamW):
    """AdamW with the decay applied after the Adam update instead of before: O(lr²·λ) apart."""

    def step(self, params, grads, state) -> None:
        Adam.step(replace(self, weight_decay=0.0), params, grads, state)
        for param in params.values():
            param *= 1.0 - self.lr * self.weight_decay


@dataclass
class AMSGradWithoutMax(Adam):
    """AMSGrad's running max kept, but the step divides by exp_avg_sq: apart once v̂ falls below its max."""

    def step(self, params, grads, state) -> None:
        maxima = {name: s["max_exp_avg_sq"] for name, s in state.items()}
        for s in state.values():
            s["max_exp_avg_sq"] = s["exp_avg_sq"]  # the step divides by this one
        super().step(params, grads, state)
        for name, s in state.items():
            s["max_exp_avg_sq"] = np.maximum(maxima[name], s["exp_avg_sq"], out=maxima[name])


def clip_without_eps(grads, max_norm):
    """Clipping as max_norm / total_norm, without torch's 1e-6."""
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    for g in grads.values():
        g *= min(max_norm / total, 1.0)
    return total


CASES = {
    "adamw-decay-after-update": dict(optimizer="adamw", manual=AdamWDecayAfter(lr=0.01, weight_decay=0.1)),
    "amsgrad-without-max": dict(optimizer="adam", manual=AMSGradWithoutMax(lr=0.01, amsgrad=True), steps=40),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_rule_error_below_float32s_tolerance_is_caught_in_float64(name):
    case = CASES[name]
    hyper = case["manual"].hyperparameters()
    steps = case.get("steps", 10)
    plain = lockstep_run(SPEC, case["optimizer"], hyper, "float32", manual_optimizer=case["manual"], steps=steps)
    manual = type(case["manual"])(**hyper)
    found = lockstep_run(
        SPEC, case["optimizer"], hyper, "float32", manual_optimizer=manual, steps=steps, witness_every=1
    )
    assert plain.first_failure is None  # what float32 alone cannot see
    assert found.first_failure is not None and found.first_failure.tensor.endswith(" (float64)")
    assert found.drift is None


def test_clipping_without_torchs_eps_is_caught_in_float64():
    from compare.core.override import Override

    override = Override(clip=clip_without_eps)
    common = dict(dtype="float32", clip=0.01, override=override, steps=5)
    assert lockstep_run(SPEC, "sgd", {"lr": 0.1}, **common).first_failure is None
    failure = lockstep_run(SPEC, "sgd", {"lr": 0.1}, witness_every=1, **common).first_failure
    assert failure.step == 1 and failure.tensor.endswith(" (float64)")


def test_the_witness_passes_a_correct_float32_run_with_everything_on():
    spec = MLPSpec((3, 7, 5, 4), "relu", "cross_entropy", 0.3, True)
    result = lockstep_run(
        spec, "adam", Adam(lr=0.01, amsgrad=True).hyperparameters(), "float32", steps=30, witness_every=1, clip=1.0
    )
    assert result.first_failure is None


@pytest.mark.parametrize(
    ("parameters", "every"), [(100, 1), (witness64.EVERY_STEP_MAX_PARAMETERS, witness64.EVERY_LARGE)]
)
def test_small_models_are_witnessed_every_step_large_ones_every_k(parameters, every):
    assert witness64.every(parameters) == every
    assert witness64.due(1, every) and witness64.due(every, every)


class BatchNormEpsOutsideRoot(BatchNorm1d):
    """Normalises by 1/(√σ² + ε) instead of 1/√(σ² + ε): relative 1e-5 apart at σ² ≈ 1."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        out = super().forward(x)  # the buffers updated once, as the right layer does
        var = (self._xhat / self._inv_std).var(axis=0)
        self._inv_std = (1.0 / (np.sqrt(var) + self.eps)).astype(x.dtype)
        self._xhat = (x - x.mean(axis=0)) * self._inv_std
        return (self._xhat * self.params["weight"] + self.params["bias"]).astype(out.dtype)


def test_batchnorm_eps_outside_the_root_is_caught_in_float64():
    spec = MLPSpec((3, 7, 5, 4), "relu", "mse", 0.0, True)
    override = layer_as(BatchNorm1d, BatchNormEpsOutsideRoot)
    common = dict(dtype="float32", override=override, steps=5)
    assert lockstep_run(spec, "sgd", {"lr": 0.1}, **common).first_failure is None
    failure = lockstep_run(spec, "sgd", {"lr": 0.1}, witness_every=1, **common).first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "forward", "1.out (float64)")


@dataclass
class SGDOffFromStep5(SGD):
    """SGD whose gradients are scaled by 1 + 1e-3 from step 5 on: a rule wrong late in a float32 run,
    within float32's tolerance in any single step."""

    steps: int = 0

    def hyperparameters(self) -> dict:
        return {key: value for key, value in super().hyperparameters().items() if key != "steps"}

    def step(self, params, grads, state) -> None:
        self.steps += 1
        factor = 1.0 + 1e-3 if self.steps >= 5 else 1.0
        super().step(params, {name: g * factor for name, g in grads.items()}, state)


def test_a_float32_departure_on_an_unwitnessed_step_is_adjudicated_in_float64_too():
    """Its free-running departure (step 9) passes a float32 step from identical values, so float32
    alone calls it drift; the adjudication's float64 step (the witness being due only every 1,000
    steps) calls it a wrong rule."""
    alone = lockstep_run(SPEC, "sgd", {"lr": 0.1}, "float32", manual_optimizer=SGDOffFromStep5(lr=0.1), steps=12)
    assert alone.first_failure is None and alone.drift is not None
    proven = lockstep_run(
        SPEC, "sgd", {"lr": 0.1}, "float32", manual_optimizer=SGDOffFromStep5(lr=0.1), steps=12, witness_every=1000
    )
    assert proven.first_failure is not None and proven.first_failure.step == alone.drift.step
    assert proven.drift is None
