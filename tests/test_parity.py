"""Multi-step lockstep parity: every optimizer × activation × loss, then long runs per dtype."""

import itertools
import json

import numpy as np
import pytest

from compare.cli import main
from compare.tolerances import STAGES, tolerance
from conftest import HOSTILE_WIDTHS, lockstep_run
from manual import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec
from manual.optim import OPTIMIZERS

# Hyperparameters that exercise every branch of each rule (dampening, L2, amsgrad) at once.
HYPERPARAMETERS = {
    "sgd": {"lr": 0.05, "weight_decay": 0.01},
    "momentum": {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
    "nesterov": {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    "adam": {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01, "amsgrad": True},
}
TORCH_NAME = {"nesterov": "momentum"}


def full(name: str) -> tuple[str, dict]:
    optimizer = TORCH_NAME.get(name, name)
    return optimizer, OPTIMIZERS[optimizer](**HYPERPARAMETERS[name]).hyperparameters()


@pytest.mark.parametrize(
    ("name", "activation", "loss"), list(itertools.product(HYPERPARAMETERS, ACTIVATION_NAMES, LOSS_NAMES))
)
def test_every_optimizer_activation_and_loss_agree_for_many_steps(name, activation, loss):
    spec = MLPSpec(HOSTILE_WIDTHS, activation, loss)
    result = lockstep_run(spec, *full(name), steps=12)
    assert result.first_failure is None, result.first_failure
    assert len(result.records) == 12
    # every stage was compared, and the optimizer state really was (plain SGD keeps none)
    expected_keys = {
        "sgd": set(),
        "momentum": {"momentum_buffer"},
        "nesterov": {"momentum_buffer"},
        "adam": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    }[name]
    checks = result.records[-1].checks
    assert {check.stage for check in checks} == set(STAGES) - ({"state"} if not expected_keys else set())
    assert {check.tensor.rsplit(".", 1)[1] for check in checks if check.stage == "state"} == expected_keys


@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
def test_high_learning_rate_still_agrees(name):
    """Large steps move far from the start and amplify any rounding-order difference."""
    optimizer, hparams = full(name)
    hparams = {**hparams, "lr": hparams["lr"] * 10}
    result = lockstep_run(MLPSpec(HOSTILE_WIDTHS, "leaky_relu", "mse"), optimizer, hparams, steps=20)
    assert result.first_failure is None, result.first_failure
    assert np.isfinite(result.records[-1].loss_torch)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("optimizer", "dtype"), list(itertools.product(["sgd", "momentum", "adam"], ["float64", "float32"]))
)
def test_acceptance_run_holds_within_the_dtype_tolerance(optimizer, dtype, tmp_path):
    """`backprop-parity run --optimizer X --steps 500`: every stage within its table entry,
    and in float64 every stage's worst max|Δ|/max|ref| at most 1e-10."""
    out = tmp_path / "report.json"
    argv = ["run", "--optimizer", optimizer, "--steps", "500", "--dtype", dtype, "--logdir", str(tmp_path)]
    assert main([*argv, "--json", str(out), "--no-tensorboard"]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["steps"] == 500
    for stage, worst in report["worst"].items():
        assert worst["max_rel"] <= tolerance(dtype, stage).max_rel
        if dtype == "float64":
            assert worst["max_rel"] <= 1e-10


@pytest.mark.slow
def test_float64_holds_over_thousands_of_steps():
    result = lockstep_run(MLPSpec((3, 12, 12, 4), "tanh", "cross_entropy"), *full("adam"), steps=2000)
    assert result.first_failure is None, result.first_failure
    assert max(check.diff.max_rel for check in result.worst_by_stage().values()) <= 1e-10
