"""check_model on the network forms of the courses (tests/textbook_styles.py), and what must never go wrong
whatever the form: no false alarm on a zero-initialised bias before BatchNorm, every departing piece named
(no masking), the upstream gradient independent of the user's seed, inputs cast to the check's dtype, valid
JSON, dropout taken from the user's layers, and an unknown form refused before any work."""

import json
import time

import numpy as np
import pytest
import textbook_styles as tb
import torch
from check_styles import Affine, TwoLayerNet
from torch import nn

import compare
from compare.check.diagnosis.conventions import CONVENTIONS
from compare.errors import InputError

RNG = np.random.default_rng(3)
X = RNG.standard_normal((40, 4))  # 4 features, 6 hidden, 3 classes: nothing square
LABELS = RNG.integers(0, 3, 40)
ONE_HOT = np.eye(3)[LABELS]
RELU_NET = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
SIGMOID_NET = nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 3), nn.Sigmoid())
ADAM = {"torch_optimizer": (torch.optim.Adam, {"lr": 1e-2})}


def where(report):
    failure = report.first_failure
    return None if failure is None else (failure.step, failure.stage, failure.tensor)


def named(report):
    return None if report.diagnosis is None else report.diagnosis.name


MODELS = {
    "loss returns grads": ((tb.TwoLayerModel(4, 6, 3), RELU_NET, nn.CrossEntropyLoss(), LABELS, {}), None, None),
    "loss returns grads, gradient summed": (
        (tb.TwoLayerModel(4, 6, 3, mistake="grad-sum"), RELU_NET, nn.CrossEntropyLoss(), LABELS, {}),
        (1, "grad", "2.weight"),
        "cross-entropy-grad-without-mean",
    ),
    "loss returns grads, biases averaged": (
        (tb.TwoLayerModel(4, 6, 3, mistake="bias-mean"), RELU_NET, nn.CrossEntropyLoss(), LABELS, {}),
        (1, "grad", "2.bias"),
        "bias-grad-averaged",
    ),
    "loss returns grads, two mistakes at once": (
        (tb.TwoLayerModel(4, 6, 3, mistake="grad-sum+bias-mean"), RELU_NET, nn.CrossEntropyLoss(), LABELS, {}),
        (1, "grad", "2.weight"),
        "bias-grad-averaged and cross-entropy-grad-without-mean",
    ),
    "with adam(w, dw, config)": (
        (tb.TwoLayerModel(4, 6, 3), RELU_NET, nn.CrossEntropyLoss(), LABELS, {"optimizer": tb.adam, **ADAM}), None, None
    ),
    "with adam without bias correction": (
        (tb.TwoLayerModel(4, 6, 3), RELU_NET, nn.CrossEntropyLoss(), LABELS,
         {"optimizer": tb.adam_no_bias_correction, **ADAM}),
        (1, "param", "0.weight"),
        "adam-no-bias-correction",
    ),
    "with a per-parameter Adam, eps 1e-7": (
        (tb.TwoLayerModel(4, 6, 3), RELU_NET, nn.CrossEntropyLoss(), LABELS,
         {"optimizer": tb.AdamObject(lr=1e-2), **ADAM}),
        (1, "param", "0.weight"),
        "convention:eps",
    ),
    "column network": ((tb.ColumnNetwork([4, 5, 3]), SIGMOID_NET, tb.half_sum_per_sample, ONE_HOT, {}), None, None),
    "column network, labels as targets": (
        (tb.ColumnNetwork([4, 5, 3]), SIGMOID_NET, nn.CrossEntropyLoss(), LABELS, {}), (1, "grad", "2.weight"), None
    ),
    "column network, σ' of the pre-activation": (
        (tb.ColumnNetwork([4, 5, 3], mistake="preactivation"), SIGMOID_NET, tb.half_sum_per_sample, ONE_HOT, {}),
        (1, "grad", "2.weight"),
        "sigmoid-grad-from-preactivation",
    ),
    "column network against MSELoss": (
        (tb.ColumnNetwork([4, 5, 3]), SIGMOID_NET, nn.MSELoss(), ONE_HOT, {}),
        (1, "grad", "2.weight"),
        "convention:half-sum-per-sample",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", MODELS)
def test_a_network_in_its_own_form(case):
    (model, twin, torch_loss, y, options), expected, name = MODELS[case]
    report = compare.check_model(model, twin, torch_loss, X, y, batch_size=10, steps=4, **options)
    assert where(report) == expected, report
    if name is not None:
        assert named(report) == name, report


def test_a_networks_convention_carries_its_fix():
    """check_model's loss convention (found by replaying the network) carries the convention's own fix."""
    (model, twin, torch_loss, y, options), _, name = MODELS["column network against MSELoss"]
    report = compare.check_model(model, twin, torch_loss, X, y, batch_size=10, steps=4, **options)
    assert named(report) == name == "convention:half-sum-per-sample", report
    assert report.diagnosis.fix == CONVENTIONS["half-sum-per-sample"].fix.format(k=1.5), report  # C/2, C = 3


def bn_network(params, x, y):
    """affine - batchnorm - relu - affine - softmax, as functions, b1 zero-initialised before the batch norm."""
    h, c1 = tb.affine_forward(x, params["W1"], params["b1"])
    z, c2 = tb.batchnorm_forward(h, params["gamma1"], params["beta1"], {"mode": "train"})
    scores, c3 = tb.affine_forward(np.maximum(z, 0), params["W2"], params["b2"])
    loss, dscores = tb.softmax_loss(scores, y)
    grads = {}
    da, grads["W2"], grads["b2"] = tb.affine_backward(dscores, c3)
    dz, grads["gamma1"], grads["beta1"] = tb.batchnorm_backward(da * (z > 0), c2)
    _, grads["W1"], grads["b1"] = tb.affine_backward(dz, c1)
    return loss, grads


@pytest.mark.parametrize("optimizer", [{}, {"optimizer": tb.adam, "torch_optimizer": (torch.optim.Adam, {"lr": 1e-3})}])
def test_a_zero_initialised_bias_before_batchnorm_is_no_false_alarm(optimizer):
    rng = np.random.default_rng(5)
    params = {
        "W1": rng.standard_normal((4, 6)), "b1": np.zeros(6), "gamma1": np.ones(6), "beta1": np.zeros(6),
        "W2": rng.standard_normal((6, 3)), "b2": np.zeros(3),
    }  # fmt: skip
    twin = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    report = compare.check_model(
        bn_network, twin, nn.CrossEntropyLoss(), X, LABELS, params=params, batch_size=10, steps=10, **optimizer
    )
    assert report.passed, report


class AveragedBias(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = dout.mean(axis=0)
        return dx


def test_a_tiny_departure_does_not_mask_a_gross_one_and_both_are_named():
    net = TwoLayerNet(4, 6, 3)
    for key in ("Affine1", "Affine2"):
        net.layers[key].__class__ = AveragedBias  # the gross mistake: max_rel ~0.1-0.7
    net.lastLayer.log_eps = 1e-7  # the tiny one: max_rel ~3e-7, and the first failure
    report = compare.check_model(net, RELU_NET, nn.CrossEntropyLoss(), X, LABELS, batch_size=10, steps=2)
    assert where(report) == (1, "loss", "loss"), report
    parts = {part.name: part.diagnosis.name for part in report.parts}
    assert parts == {
        "loss (CrossEntropyLoss)": "cross-entropy-log-eps",
        "layer 2 (Linear)": "bias-grad-averaged",
        "layer 0 (Linear)": "bias-grad-averaged",
    }, report
    assert report.diagnosis.name == "cross-entropy-log-eps and bias-grad-averaged"
    assert "departs: layer 2 (Linear)" in str(report)


class ReturnsItsInput:
    """An identity whose backward returns the saved input instead of dout: right only if dout were x."""

    def forward(self, x):
        self.x = x
        return x.copy()

    def backward(self, dout):
        return self.x.copy()


def test_the_upstream_gradient_does_not_repeat_the_users_seed():
    x = np.random.default_rng(0).standard_normal((8, 5))  # the user's data, drawn with the check's seed 0
    report = compare.check_layer(ReturnsItsInput(), nn.Identity(), x)
    assert where(report) == (1, "grad", "dx"), report


def test_check_model_casts_the_inputs_to_its_dtype():
    model = tb.TwoLayerModel(4, 6, 3)
    model.params = {name: value.astype(np.float32) for name, value in model.params.items()}
    report = compare.check_model(model, RELU_NET, nn.CrossEntropyLoss(), X, LABELS, dtype="float32", steps=3)
    assert report.passed, report  # X is float64: cast, not blamed on the user's code


def test_the_json_report_is_valid_json_with_null_for_non_finite():
    report = compare.check_layer(tb.DictDense(3, mistake="bias-per-example"), nn.Linear(4, 3), X[:8])
    assert report.first_failure.problem == "shape"

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    document = json.loads(report.to_json(), parse_constant=refuse)
    assert document["first_failure"]["max_rel"] is None
    json.dumps(report.to_dict(), allow_nan=False)  # what the CLI writes is valid too


def test_dropout_in_a_layered_network_takes_the_users_mask():
    def net(inverted):
        model = TwoLayerNet(4, 6, 3)
        layers = list(model.layers.items())
        layers.insert(2, ("Dropout1", tb.DropoutLayer(0.25, inverted=inverted)))
        model.layers = dict(layers)
        return model

    twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Dropout(0.25), nn.Linear(6, 3))
    report = compare.check_model(net(True), twin, nn.CrossEntropyLoss(), X, LABELS, batch_size=10, steps=4)
    assert report.passed, report
    report = compare.check_model(net(False), twin, nn.CrossEntropyLoss(), X, LABELS, batch_size=10, steps=4)
    assert where(report) == (1, "forward", "2.out") and named(report) == "dropout-not-inverted", report


UNKNOWN = {
    "layer: a lone function": (lambda: compare.check_layer(tb.affine_forward, nn.Linear(4, 3), X), "forward, backward"),
    "loss: three functions": (
        lambda: compare.check_loss((tb.svm_loss,) * 3, nn.MultiMarginLoss(), X, LABELS), "loss(scores, targets)"
    ),
    "optimizer: no update": (lambda: compare.check_optimizer(object(), torch.optim.SGD, {"lr": 0.1}), "update"),
    "model: no protocol": (
        lambda: compare.check_model(object(), RELU_NET, nn.CrossEntropyLoss(), X, LABELS), "backprop"
    ),
    "mapping: (in, out) without .T": (
        lambda: compare.check_model(
            tb.TwoLayerModel(4, 6, 3), RELU_NET, nn.CrossEntropyLoss(), X, LABELS, mapping={"0.weight": "W1"}
        ),
        "'W1.T'",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", UNKNOWN)
def test_an_unknown_form_is_one_input_error_before_any_work(case):
    call, accepted = UNKNOWN[case]
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"accepted|mapping") as error:
        call()
    assert accepted in str(error.value)
    assert time.perf_counter() - start < 0.5  # refused up front (a check would take longer), on a loaded machine too


class CountsThreads:
    """An identity recording, while the check runs it, how many torch and BLAS threads there are."""

    def forward(self, x):
        from threadpoolctl import threadpool_info

        self.seen = (
            torch.get_num_threads(),
            {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"},
        )
        return np.array(x)  # NumPy code that names torch too (a function naming torch alone is read as torch code)

    def backward(self, dout):
        if self.seen[0] != 1 or self.seen[1] - {1}:  # (no BLAS library found: nothing to limit)
            raise RuntimeError(f"threads while checking: {self.seen}")
        return dout.copy()


def test_a_small_check_runs_single_threaded_and_restores_the_threads_after():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        report = compare.check_layer(CountsThreads(), nn.Identity(), X)
        assert report.passed, report
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class NormNet(TwoLayerNet):
    """The textbook network with a batch norm after the first affine, its statistics made by the first step."""

    def __init__(self):
        super().__init__(4, 6, 3)
        self.params["gamma1"], self.params["beta1"] = np.ones(6), np.zeros(6)
        layers = list(self.layers.items())
        layers.insert(1, ("BatchNorm1", tb.LazyBatchNorm(self.params["gamma1"], self.params["beta1"])))
        self.layers = dict(layers)

    def gradient(self, x, t):
        grads = super().gradient(x, t)
        norm = self.layers["BatchNorm1"]
        return {**grads, "gamma1": norm.dgamma, "beta1": norm.dbeta}


def test_running_statistics_created_by_the_first_step_are_taken_from_it():
    twin = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    report = compare.check_model(NormNet(), twin, nn.CrossEntropyLoss(), X, LABELS, batch_size=10, steps=3)
    assert report.passed, report
    assert any("did not exist before the first step" in note for note in report.notes), report
