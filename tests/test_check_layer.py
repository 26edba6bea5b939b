"""check_layer: textbook layers (weights (in, out), in-place backward), the package's own layers, a
custom torch Module twin, BatchNorm running statistics; mistakes caught where they act and named;
mapping ambiguity as a clear error; exceptions in user code as findings."""

import json

import numpy as np
import pytest
import torch
from check_styles import Affine, BatchNormalization, Relu
from torch import nn

import compare
from compare.errors import InputError
from compare.faults import layers as faulty
from compare.faults.catalog import CATALOG
from manual import layers as manual_layers

RNG = np.random.default_rng(7)  # not the check's seed 0: x must differ from the upstream gradient
X = RNG.standard_normal((8, 5))  # batch 8, 5 features: non-square against 3 outputs


def affine(fan_in=5, fan_out=3, seed=1) -> Affine:
    rng = np.random.default_rng(seed)
    return Affine(rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out))


def test_a_textbook_affine_with_in_out_weights_passes_against_linear():
    report = compare.check_layer(affine(), nn.Linear(5, 3), X)
    assert report.passed, report
    assert [(c.stage, c.tensor) for c in report.checks] == [
        ("forward", "out"), ("grad", "dW"), ("grad", "db"), ("grad", "dx"),
    ]  # fmt: skip
    compare.assert_parity(report)


def test_the_in_place_relu_backward_causes_no_false_alarm_and_is_noted():
    report = compare.check_layer(Relu(), nn.ReLU(), X)
    assert report.passed, report
    assert any("wrote into the dout" in note for note in report.notes)


def test_the_user_layer_and_torch_module_are_left_as_they_were():
    layer, module = affine(), nn.Linear(5, 3)
    before, weight = layer.W.copy(), module.weight.detach().clone()
    compare.check_layer(layer, module, X)
    assert np.array_equal(layer.W, before) and layer.dW is None
    assert torch.equal(module.weight, weight)  # the twin got a copy of the user's values, not these


def test_the_package_layers_params_dicts_in_torch_layout_pass():
    rng = np.random.default_rng(2)
    layer = manual_layers.Linear(rng.standard_normal((3, 5)), rng.standard_normal(3))
    assert compare.check_layer(layer, nn.Linear(5, 3), X).passed


class Swish(nn.Module):
    """A layer the package does not have, as a user's own Module: x·σ(βx) with a learned β per feature."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.ones(width))

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class NumpySwish:
    def __init__(self, beta, wrong_grad=False):
        self.params, self.grads, self.wrong = {"beta": beta}, {}, wrong_grad

    def forward(self, x):
        self.x, self.s = x, 1 / (1 + np.exp(-self.params["beta"] * x))
        return x * self.s

    def backward(self, dout):
        ds = self.s * (1 - self.s)
        self.grads["beta"] = (dout * self.x * self.x * ds).sum(0) * (2 if self.wrong else 1)
        return dout * (self.s + self.x * self.params["beta"] * ds)


def test_a_custom_module_twin_for_a_layer_the_package_lacks():
    beta = np.linspace(0.5, 1.5, 5)
    assert compare.check_layer(NumpySwish(beta), Swish(5), X).passed
    report = compare.check_layer(NumpySwish(beta, wrong_grad=True), Swish(5), X)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "grad", "dbeta")
    # no catalog entry for a Swish: the departure is measured instead, a factor 2 on every element
    assert report.diagnosed and report.diagnosis.name == "measured:ratio", report
    assert "dbeta: ratio 2.000 to torch's on every element (= 2)" in str(report)


def test_batchnorm_running_statistics_are_compared_over_steps():
    gamma, beta = np.linspace(0.8, 1.2, 5), np.linspace(-0.1, 0.1, 5)
    batches = [np.random.default_rng(s).standard_normal((8, 5)) * 2 + 1 for s in range(3)]
    report = compare.check_layer(BatchNormalization(gamma, beta), nn.BatchNorm1d(5), batches)
    assert report.passed, report
    assert {c.tensor for c in report.checks if c.stage == "state"} == {"running_mean", "running_var"}
    assert any("num_batches_tracked is not compared" in note for note in report.notes)
    biased = compare.check_layer(
        BatchNormalization(gamma, beta, unbiased_running_var=False), nn.BatchNorm1d(5), batches
    )
    failure = biased.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "state", "running_var")
    assert biased.diagnosis.name == "batchnorm-biased-running-var"


def zeros_in(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[::2, ::2] = 0.0  # exact zeros: where ReLU's derivative at 0 matters
    return x


def recast(layer, cls):
    return compare.core.override.recast(layer, cls)


def linear(fan_in, fan_out, seed=3):
    rng = np.random.default_rng(seed)
    return manual_layers.Linear(rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out))


def dropout(p=0.2):
    return manual_layers.Dropout(p, np.random.default_rng(11))


def batchnorm(width=5):
    return manual_layers.BatchNorm1d(
        np.linspace(0.8, 1.2, width), np.linspace(-0.1, 0.1, width), np.zeros(width), np.ones(width), np.array(0)
    )


# (catalog name, the user's layer as the faulty class, torch twin, input, steps, options, expected first failure)
MISTAKES = [
    ("bias-grad-averaged", lambda: recast(linear(5, 3), faulty.LinearBiasGradAveraged), nn.Linear(5, 3), X, 1, {},
     (1, "grad", "dbias")),
    ("missing-zero-grad", lambda: recast(linear(5, 3), faulty.LinearGradsNeverZeroed), nn.Linear(5, 3), X, 2, {},
     (2, "grad", "dweight")),
    ("transposed-weight-grad", lambda: recast(linear(5, 5), faulty.LinearTransposedWeightGrad), nn.Linear(5, 5), X, 1,
     {"layout": "out_in"}, (1, "grad", "dweight")),
    ("bias-grad-not-summed", lambda: recast(linear(5, 3), faulty.LinearBiasGradNotSummed), nn.Linear(5, 3), X, 1, {},
     (1, "grad", "dbias")),
    ("dropout-not-inverted", lambda: recast(dropout(), faulty.DropoutNotInverted), nn.Dropout(0.2), X, 1, {},
     (1, "forward", "out")),
    ("dropout-backward-without-mask", lambda: recast(dropout(), faulty.DropoutBackwardWithoutMask), nn.Dropout(0.2),
     X, 1, {}, (1, "grad", "dx")),
    ("relu-grad-at-zero", lambda: faulty.ReLUGradOneAtZero(), nn.ReLU(), zeros_in(X), 1, {}, (1, "grad", "dx")),
    ("leaky-relu-keras-slope", lambda: faulty.LeakyReLUKerasSlope(), nn.LeakyReLU(), X, 1, {}, (1, "forward", "out")),
    ("sigmoid-grad-from-preactivation", lambda: faulty.SigmoidGradFromPreactivation(), nn.Sigmoid(), X, 1, {},
     (1, "grad", "dx")),
    ("batchnorm-unbiased-normalisation", lambda: recast(batchnorm(), faulty.BatchNormUnbiasedNormalisation),
     nn.BatchNorm1d(5), X, 1, {}, (1, "forward", "out")),
    ("batchnorm-backward-constant-stats", lambda: recast(batchnorm(), faulty.BatchNormBackwardConstantStats),
     nn.BatchNorm1d(5), X, 1, {}, (1, "grad", "dx")),
    ("batchnorm-biased-running-var", lambda: recast(batchnorm(), faulty.BatchNormBiasedRunningVar),
     nn.BatchNorm1d(5), X, 1, {}, (1, "state", "running_var")),
    ("batchnorm-momentum-inverted", lambda: recast(batchnorm(), faulty.BatchNormMomentumInverted),
     nn.BatchNorm1d(5), X, 1, {}, (1, "state", "running_mean")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "module", "x", "steps", "options", "expected"), MISTAKES)
def test_each_catalog_layer_mistake_fails_where_it_acts_and_is_named(name, make, module, x, steps, options, expected):
    assert name in CATALOG
    report = compare.check_layer(make(), module, x, steps=steps, **options)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == expected, report
    assert report.diagnosis is not None and report.diagnosis.name == name, report
    with pytest.raises(AssertionError, match=f"diagnosis: {name}"):
        compare.assert_parity(report)


class InvertedDropout:
    """The textbook dropout made torch's (inverted): its mask is applied by torch too."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.mask = np.random.default_rng(4).random(x.shape) >= self.p
        return x * self.mask / (1 - self.p)

    def backward(self, dout):
        return dout * self.mask / (1 - self.p)


def test_a_dropout_layer_is_checked_with_its_own_mask():
    report = compare.check_layer(InvertedDropout(0.3), nn.Dropout(0.3), X, steps=2)
    assert report.passed, report
    assert len(report.checks) == 4


def test_a_square_weight_without_a_layout_is_a_clear_error_naming_the_fix():
    with pytest.raises(InputError, match="layout='in_out'"):
        compare.check_layer(affine(5, 5), nn.Linear(5, 5), X)
    assert compare.check_layer(affine(5, 5), nn.Linear(5, 5), X, layout="in_out").passed
    assert compare.check_layer(affine(5, 5), nn.Linear(5, 5), X, mapping={"weight": "W.T", "bias": "b"}).passed


class TwoVectors:
    def __init__(self, p, q):
        self.params, self.grads = {"p": p, "q": q}, {}

    def forward(self, x):
        self.x = x
        return x * self.params["p"] + self.params["q"]

    def backward(self, dout):
        self.grads = {"p": (dout * self.x).sum(0), "q": dout.sum(0)}
        return dout * self.params["p"]


def test_two_same_shaped_vectors_without_names_need_a_mapping():
    layer = TwoVectors(np.linspace(1, 2, 5), np.linspace(-1, 0, 5))
    with pytest.raises(InputError, match="pass mapping"):
        compare.check_layer(layer, Scale(5), X)
    assert compare.check_layer(layer, Scale(5), X, mapping={"scale": "p", "shift": "q"}).passed


class Scale(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.scale, self.shift = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))

    def forward(self, x):
        return x * self.scale + self.shift


class Broken(Affine):
    def backward(self, dout):
        raise ValueError("shapes (8,3) and (5,3) not aligned")


def test_an_exception_in_user_code_is_a_finding_with_its_traceback_kept():
    report = compare.check_layer(Broken(np.ones((5, 3)), np.zeros(3)), nn.Linear(5, 3), X)
    failure = report.first_failure
    assert not report.passed
    assert (failure.step, failure.stage, failure.tensor, failure.problem) == (1, "grad", "backward(dout)", "exception")
    assert failure.message == "ValueError: shapes (8,3) and (5,3) not aligned"
    assert "Traceback" in failure.traceback and "raise ValueError" in failure.traceback
    assert "Traceback" not in str(report)


def test_the_report_reads_back_as_json_and_shows_in_jupyter():
    report = compare.check_layer(recast(linear(5, 3), faulty.LinearBiasGradAveraged), nn.Linear(5, 3), X)
    data = json.loads(report.to_json())
    assert data["passed"] is False and data["first_failure"]["tensor"] == "dbias"
    assert data["diagnosis"]["name"] == "bias-grad-averaged"
    assert len(data["checks"]) == len(report.checks)
    html = report._repr_html_()
    assert "<table>" in html and "FAIL" in html and "bias-grad-averaged" in html


class RaisingTwin(nn.Module):
    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def test_a_twin_module_that_raises_is_a_finding_too():
    report = compare.check_layer(Relu(), RaisingTwin(), X)
    failure = report.first_failure
    assert (failure.stage, failure.tensor, failure.problem) == ("forward", "torch_module(x)", "exception")
    assert failure.message.startswith("RuntimeError: mat1 and mat2")


def test_float32_is_checked_at_the_float32_tolerance():
    report = compare.check_layer(affine(), nn.Linear(5, 3), X.astype(np.float32), dtype="float32")
    assert report.passed, report
    assert {c.max_rel for c in report.checks} == {compare.core.tolerances.tolerance("float32", "grad").max_rel}
