"""Discontinuous decisions on rounding noise follow the reference's branch (``compare.core.decisions``), and
are counted and said; a wrong branch is still caught at the step it acts."""

import json

import numpy as np
import pytest

from compare.cli.main import main
from compare.faults.optimizers import RpropEtasSwapped
from conftest import lockstep_run
from manual import MLPSpec
from manual.optim import Rprop

# The two configurations of issue 29 that failed at a step-size decision on a BatchNorm β whose exact gradient is 0
# (each side's gradient there is rounding noise, and Rprop turns its sign into ±Δ and η+/η−).
NOISE_DECIDED = [
    (["--layers", "2,16,16,16,3", "--lr", "0.1"], "4.bias"),
    (["--layers", "2,16,2,3", "--lr", "0.05", "--batch-size", "8"], "1.bias"),
]
COMMON = ["run", "--optimizer", "rprop", "--batchnorm", "--activation", "leaky_relu", "--steps", "500"]


@pytest.mark.parametrize(("args", "tensor"), NOISE_DECIDED)
def test_sign_decisions_on_rounding_noise_follow_torch_and_are_said(args, tensor, tmp_path, capsys):
    report = tmp_path / "r.json"
    argv = [*COMMON, *args, "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    followed = json.loads(report.read_text())["followed_decisions"]
    assert followed["count"] >= 1 and followed["steps"]
    assert f"{followed['count']} sign decision" in out and "on rounding noise followed torch's" in out


@pytest.mark.parametrize(("args", "tensor"), NOISE_DECIDED)
def test_without_the_referee_the_same_run_fails_on_a_step_size(args, tensor, tmp_path, capsys, monkeypatch):
    """The test above can fail: with the referee off, the noise decides and the run fails on that tensor, at its
    step size or at the step it took (a gradient of noise judged at its measured spread, compare.core.spread,
    is no longer resynced as drift, so which of the two shows first depends on the trajectory)."""
    from compare.core import decisions

    monkeypatch.setattr(decisions, "follow", lambda *args, **kwargs: 0)
    assert main([*COMMON, *args, "--logdir", str(tmp_path), "--no-tensorboard"]) == 1
    first = capsys.readouterr().out.rpartition("first difference at ")[2]
    assert f"tensor {tensor}.step_size" in first or f"stage param, tensor {tensor}:" in first


class RpropAgainstTheGradient(Rprop):
    """θ moved by +sign(g)·Δ (uphill): a sign bug in the step, not in the decision's inputs."""

    def kept_gradient(self, g: np.ndarray, agreement: np.ndarray) -> np.ndarray:
        return -super().kept_gradient(g, agreement)


WRONG_BRANCHES = [
    # (rule, the step it first acts at, the stage that shows it first)
    (RpropEtasSwapped, 2, "state"),  # η+ and η− swapped: the factors differ once p ≠ 0
    (RpropAgainstTheGradient, 1, "state"),  # p ← −g: the state, then θ, wrong at the first step
]


@pytest.mark.parametrize(("rule", "step", "stage"), WRONG_BRANCHES)
def test_a_wrong_branch_is_still_caught_where_it_acts(rule, step, stage):
    spec = MLPSpec((2, 16, 16, 16, 3), "leaky_relu", "cross_entropy", batchnorm=True)
    hyperparameters = {"lr": 0.1}
    result = lockstep_run(spec, "rprop", hyperparameters, manual_optimizer=rule(**hyperparameters), steps=10)
    assert result.drift is None
    assert (result.first_failure.step, result.first_failure.stage) == (step, stage)
