"""Dropout, BatchNorm, BCE, clipping and schedules inside the lockstep engine, and the textbook
variants through the CLI: each matched with torch, or reported as departing exactly where expected."""

import json

import numpy as np
import pytest

from compare.cli.main import main
from compare.core.override import clip_with
from conftest import lockstep_run
from manual import MLPSpec
from manual.clip import clip_grad_norm
from manual.layers import BatchNorm1d, Dropout
from manual.optim import OPTIMIZERS
from manual.schedules import parse_schedule

WIDTHS = (3, 7, 5, 4)
MOMENTUM = OPTIMIZERS["momentum"](lr=0.05).hyperparameters()
ADAM = OPTIMIZERS["adam"](lr=0.01).hyperparameters()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_dropout_and_batchnorm_agree_in_training_and_evaluation_mode(optimizer, dtype):
    spec = MLPSpec(WIDTHS, "relu", "cross_entropy", dropout=0.3, batchnorm=True)
    result = lockstep_run(spec, optimizer, MOMENTUM if optimizer == "momentum" else ADAM, dtype, steps=30)
    assert result.first_failure is None, result.first_failure
    checks = result.records[-1].checks
    tensors = {(check.stage, check.tensor) for check in checks}
    # layout: 0 Linear, 1 BatchNorm, 2 ReLU, 3 Dropout, 4 Linear, 5 BatchNorm, 6 ReLU, 7 Dropout, 8 Linear
    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
        assert ("state", f"1.{buffer}") in tensors and ("state", f"5.{buffer}") in tensors
    assert {("forward", "3.out"), ("eval", "3.out"), ("eval", "8.out"), ("grad", "1.weight")} <= tensors
    assert ("grad", "0.bias") not in tensors  # a Linear that feeds BatchNorm has no bias


def test_dropout_mask_really_is_applied_and_eval_turns_it_off():
    spec = MLPSpec(WIDTHS, "tanh", "mse", dropout=0.5)
    seen = {}

    def watch(lockstep):
        original = lockstep.manual.model.layers[2].forward

        def forward(x):
            out = original(x)
            seen["train" if lockstep.manual.model.layers[2].training else "eval"] = (x, out)
            return out

        lockstep.manual.model.layers[2].forward = forward

    result = lockstep_run(spec, "sgd", {"lr": 0.1}, steps=1, patch=watch)
    assert result.first_failure is None
    x, out = seen["train"]
    assert np.any(out == 0) and np.any(out != 0)  # a real mask, and torch (which matched) used it too
    x, out = seen["eval"]
    assert np.array_equal(out, x)


class BatchNormBiasedRunningVar(BatchNorm1d):
    """The running variance updated with the biased batch variance (torch keeps the unbiased one)."""

    def forward(self, x):
        before = self.buffers["running_var"].copy()
        out = super().forward(x)
        var = x.var(axis=0)
        self.buffers["running_var"][...] = (1 - self.momentum) * before + self.momentum * var
        return out


class DropoutNotInverted(Dropout):
    """Masks at training time without the 1/(1 − p) scale (the "scale at test time" convention)."""

    def forward(self, x):
        out = super().forward(x)
        if self.mask is not None:
            self._noise = self.mask.astype(x.dtype)
            out = x * self._noise
        return out


def swap(index, make):
    def patch(lockstep):
        old = lockstep.manual.model.layers[index]
        lockstep.manual.model.layers[index] = make(old)

    return patch


def biased_bn(old):
    return BatchNormBiasedRunningVar(*old.params.values(), *old.buffers.values())


def not_inverted(old):
    return DropoutNotInverted(old.p, old.rng)


@pytest.mark.parametrize(
    ("fault", "patch", "expected"),
    [
        ("batchnorm biased running variance", swap(1, biased_bn), (1, "state", "1.running_var")),
        ("dropout not inverted", swap(3, not_inverted), (1, "forward", "3.out")),
    ],
)
def test_layer_faults_are_located(fault, patch, expected):
    spec = MLPSpec(WIDTHS, "relu", "cross_entropy", dropout=0.3, batchnorm=True)
    failure = lockstep_run(spec, "momentum", MOMENTUM, patch=patch).first_failure
    assert failure is not None, f"{fault} went undetected"
    assert (failure.step, failure.stage, failure.tensor) == expected


def test_clipping_and_schedule_are_compared_every_step():
    spec = MLPSpec(WIDTHS, "sigmoid", "bce")
    schedule = parse_schedule("warmup:3,cosine:10")
    result = lockstep_run(
        spec, "adamw", OPTIMIZERS["adamw"](lr=0.05).hyperparameters(), steps=13, schedule=schedule, clip=0.05
    )
    assert result.first_failure is None, result.first_failure
    norms = [next(c for c in r.checks if c.tensor == "total_norm") for r in result.records]
    assert all(check.passed for check in norms)
    lrs = [r.lr for r in result.records]
    assert lrs[0] < lrs[3] and lrs[-1] < lrs[3]  # warm-up, then annealing
    assert all(any(c.tensor == "lr" and c.stage == "state" for c in r.checks) for r in result.records)


def test_clipping_fault_is_caught_at_the_clipped_gradient():
    """Clipping the manual side to half the threshold: the raw gradients and norm agree, the clipped do not."""
    spec = MLPSpec(WIDTHS, "tanh", "mse")

    half_threshold = clip_with(lambda grads, max_norm: clip_grad_norm(grads, max_norm / 2))
    failure = lockstep_run(spec, "sgd", {"lr": 0.5}, steps=3, clip=0.01, override=half_threshold).first_failure
    assert failure is not None
    assert (failure.step, failure.stage, failure.tensor) == (1, "grad", "0.weight.clipped")


def run_cli(tmp_path, *args) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    status = main(["run", "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(out), *args])
    return status, json.loads(out.read_text())


def test_classic_momentum_agrees_at_constant_lr(tmp_path):
    status, report = run_cli(tmp_path, "--variant", "classic_momentum", "--steps", "120")
    assert status == 0
    assert report["variant"]["departs"] is False and report["passed"]
    assert report["variant"]["compared_with"] == "momentum"


def test_classic_momentum_departs_right_after_the_lr_changes(tmp_path):
    status, report = run_cli(
        tmp_path, "--variant", "classic_momentum", "--steps", "120", "--lr-schedule", "step:50:0.1"
    )
    assert status == 1
    departure = report["variant"]["first_departure"]
    assert departure["step"] == 51  # the first step taken at the new lr
    assert departure["stage"] == "param"
    assert report["steps"] == 120  # a variant run goes on to show how far it drifts
    assert report["variant"]["max_rel_worst"] > 1e-3
    assert "lr" in report["variant"]["cause"]


@pytest.mark.parametrize("variant", ["adam_eps_hat", "rmsprop_eps_inside"])
def test_eps_variants_depart_from_the_first_step(variant, tmp_path):
    status, report = run_cli(tmp_path, "--variant", variant, "--steps", "20")
    assert status == 1
    assert report["variant"]["first_departure"]["step"] == 1
    assert report["variant"]["first_departure"]["stage"] == "param"  # the moments agree; the step does not
    assert "ε" in report["variant"]["cause"]


def test_eps_hat_adam_departs_more_as_gradients_shrink(tmp_path):
    """Same data scaled down: the gradients shrink with it, ε weighs more against √v, the gap grows."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2))
    departures = []
    for scale in (1.0, 1e-4, 1e-6):
        path = tmp_path / f"data{scale}.npz"
        np.savez(path, X=X, y=scale * np.tanh(X[:, :1] * X[:, 1:]))  # (N, 1) regression targets
        folder = tmp_path / str(scale)
        folder.mkdir()
        status, report = run_cli(
            folder,
            "--variant",
            "adam_eps_hat",
            "--loss",
            "mse",
            "--data",
            str(path),
            "--steps",
            "10",
            "--layers",
            "2,8,1",
            "--weights",
            str(weights_for(tmp_path, scale)),
        )
        assert status == 1
        departures.append(report["variant"]["max_rel_worst"])
    assert departures[0] < departures[1] < departures[2]


def weights_for(tmp_path, scale):
    """Weights scaled with the data, so the network's output and its gradients shrink together."""
    rng = np.random.default_rng(1)
    path = tmp_path / f"w{scale}.npz"
    np.savez(
        path,
        **{
            "0.weight": rng.standard_normal((8, 2)),
            "0.bias": 0.1 * rng.standard_normal(8),
            "2.weight": scale * rng.standard_normal((1, 8)),
            "2.bias": scale * rng.standard_normal(1),
        },
    )
    return path
