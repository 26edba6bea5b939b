"""check_model: the textbook two-layer network (weights (in, out), in-place ReLU backward, ordered layers)
and a function-style network trained in lockstep with their torch twins through the engine; a mistake
in one layer named at the first departing layer; a nested torch Module as the twin; exceptions as
findings."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from check_styles import Adam, Affine, BatchNormalization, Relu, TwoLayerNet, two_layer_function
from torch import nn

import compare
from compare.errors import InputError

RNG = np.random.default_rng(5)
X = RNG.standard_normal((60, 4))
Y = RNG.integers(0, 3, 60)


def twin() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def test_the_textbook_network_passes_with_every_layer_compared():
    report = compare.check_model(TwoLayerNet(4, 6, 3), twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=6)
    assert report.passed, report
    step1 = [(c.stage, c.tensor) for c in report.checks if c.step == 1]
    assert step1[:4] == [("forward", "0.out"), ("forward", "1.out"), ("forward", "2.out"), ("loss", "loss")]
    assert ("grad", "1.out") in step1 and ("param", "0.weight") in step1
    assert "0.weight ← W1.T" in report.notes[0]


class BiasAveraged(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout.mean(axis=0)
        return dx


def test_a_mistake_in_the_second_affine_fails_at_its_bias_gradient_at_step_1():
    net = TwoLayerNet(4, 6, 3)
    net.layers["Affine2"].__class__ = BiasAveraged
    report = compare.check_model(net, twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=3)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "grad", "2.bias"), report
    assert report.diagnosis.name == "bias-grad-averaged", report  # replayed on what Affine2 received


def test_a_loss_layer_with_the_textbook_log_eps_is_named():
    net = TwoLayerNet(4, 6, 3)
    net.lastLayer.log_eps = 1e-7
    report = compare.check_model(net, twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=2)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "loss", "loss"), report
    assert report.diagnosis.name == "cross-entropy-log-eps", report


class LeakyAtZeroRelu(Relu):
    def backward(self, dout):
        return dout  # the mask forgotten: dL/d(0.out) is wrong, the first layer output gradient departing


def test_the_first_departing_layer_is_named():
    net = TwoLayerNet(4, 6, 3, relu=LeakyAtZeroRelu)
    report = compare.check_model(net, twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=2)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "grad", "0.out"), report


def test_a_function_style_network_with_a_textbook_adam_passes():
    params = TwoLayerNet(4, 6, 3).params
    report = compare.check_model(
        two_layer_function, twin(), nn.CrossEntropyLoss(), X, Y, params=params, batch_size=30, steps=8,
        optimizer=Adam(lr=0.01), torch_optimizer=(torch.optim.Adam, {"lr": 0.01}),
    )  # fmt: skip
    assert report.passed, report
    assert any("layer outputs not compared" in note for note in report.notes)


class Net(nn.Module):
    """A twin that is not a Sequential: its parameters live in named submodules."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_a_nested_torch_module_twin_has_every_gradient_compared():
    mapping = {"0.fc1.weight": "W1.T", "0.fc1.bias": "b1", "0.fc2.weight": "W2.T", "0.fc2.bias": "b2"}
    report = compare.check_model(
        TwoLayerNet(4, 6, 3), Net(), nn.CrossEntropyLoss(), X, Y, mapping=mapping, batch_size=20, steps=3
    )
    assert report.passed, report
    grads = {c.tensor for c in report.checks if c.stage == "grad"}
    assert {"0.fc1.weight", "0.fc2.bias"} <= grads


def test_an_exception_in_gradient_is_a_finding_with_the_step():
    calls = {"n": 0}

    def flaky(params, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            raise FloatingPointError("overflow in exp")
        return two_layer_function(params, x, y)

    params = TwoLayerNet(4, 6, 3).params
    report = compare.check_model(flaky, twin(), nn.CrossEntropyLoss(), X, Y, params=params, steps=5)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.problem) == (3, "loss", "exception")
    assert failure.message == "FloatingPointError: overflow in exp"
    assert len({c.step for c in report.checks}) == 2  # the steps before it were compared


def test_only_one_of_the_two_optimizers_is_an_input_error():
    with pytest.raises(InputError, match="both optimizer"):
        compare.check_model(TwoLayerNet(4, 6, 3), twin(), nn.CrossEntropyLoss(), X, Y, optimizer=Adam())


class RaisingNet(Net):
    def forward(self, x):
        raise RuntimeError("expected scalar type Double")


def test_a_torch_twin_that_raises_is_a_finding():
    mapping = {"0.fc1.weight": "W1.T", "0.fc1.bias": "b1", "0.fc2.weight": "W2.T", "0.fc2.bias": "b2"}
    report = compare.check_model(TwoLayerNet(4, 6, 3), RaisingNet(), nn.CrossEntropyLoss(), X, Y, mapping=mapping)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "forward", "torch_model(x)")
    assert failure.message == "RuntimeError: expected scalar type Double"


def test_the_speed_measurement_runs_its_textbook_network_to_parity():
    from compare.bench import check_speed as speed

    result = speed.measure(steps=2, repeats=1)  # check_model inside asserts parity; times are not asserted
    assert set(result) == {"user", "torch", "check", "ratio"} and result["ratio"] > 0


class BatchNormNet(TwoLayerNet):
    """Affine → BatchNormalization → ReLU → Affine, with gamma1 and beta1 among the params."""

    def __init__(self, unbiased_running_var=True):
        super().__init__(4, 6, 3)
        self.params["gamma1"], self.params["beta1"] = np.linspace(0.8, 1.2, 6), np.linspace(-0.1, 0.1, 6)
        norm = BatchNormalization(
            self.params["gamma1"], self.params["beta1"], unbiased_running_var=unbiased_running_var
        )
        affine1, relu, affine2 = self.layers.values()
        self.layers = OrderedDict(Affine1=affine1, BN1=norm, Relu1=relu, Affine2=affine2)

    def gradient(self, x, t):
        grads = super().gradient(x, t)
        grads["gamma1"], grads["beta1"] = self.layers["BN1"].dgamma, self.layers["BN1"].dbeta
        return grads


def batchnorm_twin() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_a_network_with_batchnorm_has_its_running_statistics_compared_and_its_mistake_named():
    report = compare.check_model(BatchNormNet(), batchnorm_twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=4)
    assert report.passed, report
    assert {"1.running_mean", "1.running_var"} <= {c.tensor for c in report.checks if c.stage == "state"}
    assert any("1.num_batches_tracked not compared" in note for note in report.notes)
    biased = BatchNormNet(unbiased_running_var=False)
    report = compare.check_model(biased, batchnorm_twin(), nn.CrossEntropyLoss(), X, Y, batch_size=20, steps=2)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == (1, "state", "1.running_var"), report
    assert report.diagnosis.name == "batchnorm-biased-running-var"
