"""Multi-step lockstep parity: every optimizer × activation × loss, then the long acceptance runs."""

import itertools
import json

import numpy as np
import pytest

from compare.cli.main import main
from compare.core.stages import STAGES
from compare.core.tolerances import tolerance
from conftest import HOSTILE_WIDTHS, lockstep_run
from manual import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec
from manual.optim import REGISTRY


def full(name: str) -> dict:
    """Every branch of the rule at once (its ``every_branch``), at the command line's default lr."""
    entry = REGISTRY[name]
    return entry.rule(lr=entry.default_lr, **entry.rule.every_branch).hyperparameters()


def state_keys(name: str) -> set[str]:
    """The state keys the rule keeps with every branch on (``step`` and all): all of them must be compared."""
    return set(REGISTRY[name].rule(**full(name)).init({"w": np.zeros(2)})["w"])


@pytest.mark.parametrize(
    ("name", "activation", "loss"), list(itertools.product(REGISTRY, ACTIVATION_NAMES, LOSS_NAMES))
)
def test_every_optimizer_activation_and_loss_agree_for_many_steps(name, activation, loss):
    spec = MLPSpec(HOSTILE_WIDTHS, activation, loss)
    result = lockstep_run(spec, name, full(name), steps=12)
    assert result.first_failure is None, result.first_failure
    assert len(result.records) == 12
    checks = result.records[-1].checks
    # every stage but eval (no Dropout or BatchNorm here) was compared, the state really was
    assert {check.stage for check in checks} == set(STAGES) - {"eval"}
    state = {check.tensor.rsplit(".", 1)[1] for check in checks if check.stage == "state" and check.tensor != "lr"}
    assert state == state_keys(name)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_high_learning_rate_still_agrees(name):
    """Large steps move far from the start and amplify any rounding-order difference."""
    hparams = {**full(name), "lr": REGISTRY[name].default_lr * 5}
    result = lockstep_run(MLPSpec(HOSTILE_WIDTHS, "leaky_relu", "mse"), name, hparams, steps=20)
    assert result.first_failure is None, result.first_failure
    assert np.isfinite(result.records[-1].loss_torch)


SCHEDULES = {"constant": None, "step": "step:100:0.5", "warmup+cosine": "warmup:50,cosine:450"}
# Each optimizer's long runs take one schedule, in turn, so that every schedule meets a third of the rules while
# the suite's time grows by two runs per rule, not six (13 rules x 3 schedules x 2 dtypes would be ~10 minutes).
ACCEPTANCE = [
    (optimizer, list(SCHEDULES)[index % len(SCHEDULES)], dtype)
    for index, optimizer in enumerate(REGISTRY)
    for dtype in ("float64", "float32")
]


@pytest.mark.slow
@pytest.mark.parametrize(("optimizer", "schedule", "dtype"), ACCEPTANCE)
def test_acceptance_run_holds_within_the_dtype_tolerance(optimizer, schedule, dtype, tmp_path):
    """`backprop-parity run --optimizer X --steps 500 [--lr-schedule S] [--dtype D]`: every stage within
    its table entry (the state included), and in float64 every stage's worst max|Δ|/max|ref| at most 1e-10."""
    out = tmp_path / "report.json"
    argv = ["run", "--optimizer", optimizer, "--steps", "500", "--dtype", dtype, "--logdir", str(tmp_path)]
    if SCHEDULES[schedule]:
        argv += ["--lr-schedule", SCHEDULES[schedule]]
    assert main([*argv, "--json", str(out), "--no-tensorboard"]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["steps"] == 500
    assert "state" in report["worst"]
    for stage, worst in report["worst"].items():
        assert worst["max_rel"] <= tolerance(dtype, stage).max_rel
        if dtype == "float64":
            assert worst["max_rel"] <= 1e-10
    if SCHEDULES[schedule]:
        assert len(set(report["lr"])) > 1  # the schedule really changed the lr


@pytest.mark.slow
def test_float64_holds_over_thousands_of_steps():
    result = lockstep_run(MLPSpec((3, 12, 12, 4), "tanh", "cross_entropy"), "adam", full("adam"), steps=2000)
    assert result.first_failure is None, result.first_failure
    assert max(check.diff.max_rel for check in result.worst_by_stage().values()) <= 1e-10
