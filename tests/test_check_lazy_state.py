"""State created on first use is checked, never passed unchecked: running statistics a layer creates on its
first step (compared at step 1 when they start as torch's, else from step 2, two steps by default, their start
named as a convention), parameters created by the first forward (numpy-ml's layers, no wrapper), and an
optimizer's state created by its first update."""

import numpy as np
import numpy_ml_layers as ml
import pytest
import textbook_styles as tb
import torch
from check_styles import Momentum
from test_check_textbook_models import LABELS, NormNet
from test_check_textbook_models import X as X4
from torch import nn

import compare
from compare.errors import InputError

RNG = np.random.default_rng(5)
X = RNG.standard_normal((8, 4))  # 8 samples, 4 features: nothing square against 3 outputs
X5 = RNG.standard_normal((8, 5))
IMAGES = RNG.standard_normal((2, 6, 5, 3))  # NHWC, as numpy-ml's Conv2D takes them


class ChannelsLast(nn.Module):
    """torch's convolution on NHWC input and output, as numpy-ml's Conv2D computes it."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


GAMMA, BETA = RNG.uniform(0.5, 1.5, 5), RNG.standard_normal(5)


def where(report):
    failure = report.first_failure
    return None if failure is None else (failure.step, failure.stage, failure.tensor)


def state_checks(report):
    return {(c.step, c.tensor) for c in report.checks if c.stage == "state"}


def test_a_lazily_created_batchnorm_keeping_the_biased_variance_fails_on_running_var_in_one_call():
    # running_var created as zeros on the first forward (torch: ones) and moved with the biased batch variance
    report = compare.check_layer(tb.LazyBatchNorm(GAMMA, BETA, biased=True), nn.BatchNorm1d(5), X5)
    assert report.steps == 2 and where(report) == (2, "state", "running_var"), report
    assert report.diagnosis.name == "batchnorm-biased-running-var", report
    named = "convention:initial-buffer: your running_var starts at zeros, torch's at ones"
    assert named in report.diagnosis.explanation, report
    assert any(n.startswith("convention:initial-buffer: your running_var") for n in report.notes), report


@pytest.mark.parametrize("dtype", ["float64", "float32"])  # float32: its float64 statistics cast, as its parameters
def test_a_lazily_created_batchnorm_with_torchs_rule_passes_its_zeros_start_named_a_convention(dtype):
    report = compare.check_layer(tb.LazyBatchNorm(GAMMA, BETA), nn.BatchNorm1d(5), X5, dtype=dtype)
    assert report.passed and report.steps == 2, report
    # running_mean starts as torch's (zeros): compared at once; running_var (zeros, not ones): from step 2
    assert state_checks(report) == {(1, "running_mean"), (2, "running_mean"), (2, "running_var")}, report
    convention = [n for n in report.notes if n.startswith("convention:initial-buffer")]
    assert len(convention) == 1 and "starts at zeros, torch's BatchNorm1d starts it at ones" in convention[0]
    assert "twin.running_var.fill_(0)" in convention[0]


def test_a_lazily_created_batchnorm_starting_as_torch_is_compared_from_its_first_step():
    report = compare.check_layer(tb.LazyBatchNorm(GAMMA, BETA, start_var=1.0), nn.BatchNorm1d(5), X5)
    assert report.passed, report
    assert state_checks(report) == {(s, k) for s in (1, 2) for k in ("running_mean", "running_var")}, report
    assert not any("convention" in note for note in report.notes), report


def test_one_step_asked_for_says_that_a_lazily_created_statistic_was_compared_at_no_step():
    report = compare.check_layer(tb.LazyBatchNorm(GAMMA, BETA, biased=True), nn.BatchNorm1d(5), X5, steps=1)
    assert report.steps == 1 and (1, "running_var") not in state_checks(report), report
    assert any("its update is compared at no step (pass steps=2" in note for note in report.notes), report


NUMPY_ML = {
    "FullyConnected": ((ml.FullyConnected(3), nn.Linear(4, 3), X), None, None),
    "FullyConnected, ReLU": ((ml.FullyConnected(3, act_fn="ReLU"), nn.Sequential(nn.Linear(4, 3), nn.ReLU()), X),
                             None, None),
    "FullyConnected, bias gradient averaged": (
        (ml.FullyConnected(3, mistake="bias-mean"), nn.Linear(4, 3), X), (1, "grad", "db"), "bias-grad-averaged"
    ),
    "LayerNorm1D": ((ml.LayerNorm1D(), nn.LayerNorm(5), X5), None, None),
    "BatchNorm1D, unbiased running variance": (
        (ml.BatchNorm1D(unbiased_running_var=True), nn.BatchNorm1d(5), X5), None, None
    ),
    # a (3, 2) kernel stored (kh, kw, in, out): a permutation that swapped kh and kw could not pass
    "Conv2D": ((ml.Conv2D(4, (3, 2), pad=1), ChannelsLast(nn.Conv2d(3, 4, (3, 2), padding=1)), IMAGES), None, None),
    # numpy-ml's own BatchNorm1D moves running_var with the biased batch variance: a real departure from torch
    "BatchNorm1D as numpy-ml writes it": (
        (ml.BatchNorm1D(), nn.BatchNorm1d(5), X5), (2, "state", "running_var"), "batchnorm-biased-running-var"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", NUMPY_ML)
def test_a_numpy_ml_layer_with_parameters_made_on_first_forward_is_checked_with_no_wrapper(case):
    (layer, module, x), expected, name = NUMPY_ML[case]
    report = compare.check_layer(layer, module, x)
    assert where(report) == expected, report
    assert (report.diagnosis.name if report.diagnosis else None) == name, report
    compared = {c.tensor for c in report.checks}
    assert {"out", "dx"} <= compared and len([t for t in compared if t.startswith("d")]) >= 3, report


def test_a_kernel_that_reads_both_ways_needs_its_layout():
    # W (3, 3, 3, 3): channels last and torch's (out, in, kh, kw) alike, so the layout is asked for, never guessed
    layer, twin = ml.Conv2D(3, (3, 3), pad=1), ChannelsLast(nn.Conv2d(3, 3, 3, padding=1))
    with pytest.raises(InputError, match="layout='in_out' \\(channels last\\)"):
        compare.check_layer(layer, twin, IMAGES)
    assert compare.check_layer(layer, twin, IMAGES, layout="in_out").passed


def test_gradients_a_layer_keeps_until_flushed_are_flushed_before_each_step():
    # numpy-ml adds each backward's gradients into its dict, and backward returns a list once two inputs are
    # kept: flushed as its training loop does, every step compares that step's gradients alone
    report = compare.check_layer(ml.FullyConnected(3), nn.Linear(4, 3), [X, X[::-1].copy(), X * 2])
    assert report.passed and report.steps == 3, report
    assert {c.step for c in report.checks if c.tensor == "dW"} == {1, 2, 3}, report


class LazyNormNet(NormNet):
    """The textbook network with a batch norm whose running statistics are made by its first step."""

    def __init__(self, **options):
        super().__init__()
        self.layers["BatchNorm1"] = tb.LazyBatchNorm(self.params["gamma1"], self.params["beta1"], **options)


def twin():
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_a_model_whose_batchnorm_is_created_lazily_names_its_start_and_its_biased_variance():
    model_args = (nn.CrossEntropyLoss(), X4, LABELS)
    passing = compare.check_model(LazyNormNet(), twin(), *model_args, batch_size=10, steps=3)
    assert passing.passed, passing
    assert any("convention:initial-buffer" in n and "twin[1].running_var.fill_(0)" in n for n in passing.notes)
    failing = compare.check_model(LazyNormNet(biased=True), twin(), *model_args, batch_size=10, steps=3)
    assert where(failing) == (2, "state", "1.running_var"), failing
    assert failing.diagnosis.name == "batchnorm-biased-running-var", failing
    assert "convention:initial-buffer: your 1.running_var starts at zeros, torch's at ones" in str(failing), failing


class MomentumFromOnes(Momentum):
    """The classic momentum whose velocity, created by the first update, starts at ones instead of zeros."""

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.ones_like(value) for key, value in params.items()}
        super().update(params, grads)


def test_an_optimizer_state_created_by_its_first_update_is_compared_from_that_step():
    hyperparameters = {"lr": 0.05, "momentum": 0.9}
    report = compare.check_optimizer(Momentum(0.05), torch.optim.SGD, hyperparameters, steps=3)
    assert report.passed, report
    assert {(1, "0.weight.momentum_buffer"), (3, "4.bias.momentum_buffer")} <= state_checks(report), report
    wrong = compare.check_optimizer(MomentumFromOnes(0.05), torch.optim.SGD, hyperparameters, steps=3)
    assert where(wrong) == (1, "state", "0.weight.momentum_buffer"), wrong
