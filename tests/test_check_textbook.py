"""Every call form of the courses, checked in one call with no wrapper (the code is in tests/textbook_styles.py,
written in each form): passing when correct, failing at the right step, stage and tensor, with the mistake
named, on seeded mistakes; an unknown form is one InputError before any work."""

import numpy as np
import pytest
import textbook_styles as tb
import torch
from torch import nn

import compare
from compare.check.autograd.catalog import CATALOG as ENGINE_MISTAKES
from compare.check.diagnosis.conventions import CONVENTIONS
from compare.faults.catalog import CATALOG
from manual.optim import VARIANTS

RNG = np.random.default_rng(11)
X = RNG.standard_normal((8, 4))  # 8 samples, 4 features: nothing square against 3 or 5 outputs
X5 = RNG.standard_normal((8, 5))
LABELS = RNG.integers(0, 3, 8)
W, B = RNG.standard_normal((4, 3)), RNG.standard_normal(3)  # (in, out), as these forms keep them
GAMMA, BETA = RNG.uniform(0.5, 1.5, 5), RNG.standard_normal(5)


def where(report):
    failure = report.first_failure
    return None if failure is None else (failure.step, failure.stage, failure.tensor)


def named(report):
    return None if report.diagnosis is None else report.diagnosis.name


DROPOUT = (tb.dropout_forward, tb.dropout_backward)
AFFINE = ((tb.affine_forward, tb.affine_backward), nn.Linear(4, 3), X, {"params": [W, B]})
LAYERS = {
    "affine": (AFFINE, None, None),
    "affine, bias averaged": (
        ((tb.affine_forward, tb.affine_backward_bias_mean), *AFFINE[1:]), (1, "grad", "db"), "bias-grad-averaged"
    ),
    "affine, bias per example": (
        ((tb.affine_forward, tb.affine_backward_bias_per_example), *AFFINE[1:]),
        (1, "grad", "db"),
        "bias-grad-not-summed",
    ),
    "batchnorm": (
        ((tb.batchnorm_forward, tb.batchnorm_backward), nn.BatchNorm1d(5), X5, {"params": [GAMMA, BETA]}), None, None
    ),
    "batchnorm, eps 1e-6": (
        ((tb.batchnorm_forward, tb.batchnorm_backward), nn.BatchNorm1d(5), X5,
         {"params": [GAMMA, BETA], "config": {"mode": "train", "eps": 1e-6}}),
        (1, "forward", "out"),
        "convention:eps",
    ),
    "batchnorm, constant statistics": (
        ((tb.batchnorm_forward, tb.batchnorm_backward_constant_stats), nn.BatchNorm1d(5), X5,
         {"params": [GAMMA, BETA]}),
        (1, "grad", "dx"),
        "batchnorm-backward-constant-stats",
    ),
    "batchnorm, biased running variance": (
        ((tb.batchnorm_forward, tb.batchnorm_backward), nn.BatchNorm1d(5), X5,
         {"params": [GAMMA, BETA], "config": {"mode": "train", "biased_running_var": True}}),
        (2, "state", "running_var"),  # step 1's running statistics are where the user's started (none given)
        "batchnorm-biased-running-var",
    ),
    "dropout": ((DROPOUT, nn.Dropout(0.2), X5, {"config": {"p": 0.2, "seed": 1}}), None, None),
    "dropout, p kept": (
        (DROPOUT, nn.Dropout(0.2), X5, {"config": {"p": 0.2, "seed": 1, "p_is_keep": True}}),
        (1, "forward", "out"),
        "convention:dropout-keep-probability",
    ),
    "dropout, backward unmasked": (
        ((tb.dropout_forward, tb.dropout_backward), nn.Dropout(0.2), X5,
         {"config": {"p": 0.2, "seed": 1, "backward_unmasked": True}}),
        (1, "grad", "dx"),
        "dropout-backward-without-mask",
    ),
    "dict layer made on first forward, (1, n) bias": ((tb.DictDense(3), nn.Linear(4, 3), X, {}), None, None),
    "dict layer, bias averaged": (
        (tb.DictDense(3, mistake="bias-mean"), nn.Linear(4, 3), X, {}), (1, "grad", "db"), "bias-grad-averaged"
    ),
    "dict layer, bias per example": (
        (tb.DictDense(3, mistake="bias-per-example"), nn.Linear(4, 3), X, {}), (1, "grad", "db"), "bias-grad-not-summed"
    ),
}  # fmt: skip


def layer_report(case: str) -> compare.Report:
    (layer, module, x, options), _, _ = LAYERS[case]
    return compare.check_layer(layer, module, x, steps=3, **options)


@pytest.mark.parametrize("case", LAYERS)
def test_a_layer_in_its_own_form(case):
    _, expected, name = LAYERS[case]
    report = layer_report(case)
    assert where(report) == expected, report
    assert named(report) == name, report


def test_a_layer_made_on_first_forward_compares_every_parameter_gradient():
    report = compare.check_layer(tb.DictDense(3), nn.Linear(4, 3), X)
    assert [c.tensor for c in report.checks] == ["out", "dW", "db", "dx"], report


def test_running_statistics_a_config_creates_as_torch_starts_them_are_compared_from_the_first_step():
    # The config has no running statistics before step 1; the forward creates them at zeros and ones, torch's start.
    report = compare.check_layer(
        (tb.batchnorm_forward, tb.batchnorm_backward), nn.BatchNorm1d(5), X5, params=[GAMMA, BETA], steps=3
    )
    compared = {(c.step, c.tensor) for c in report.checks if c.stage == "state"}
    assert compared == {(s, key) for s in (1, 2, 3) for key in ("running_mean", "running_var")}, report
    assert report.passed and not any("did not exist before the first step" in note for note in report.notes), report


class SVMTwin:
    """torch's multiclass SVM as the textbooks write it: MultiMarginLoss also divides by C."""

    def __call__(self, scores, labels):
        return nn.functional.multi_margin_loss(scores, labels) * scores.shape[1]


LOSSES = {
    "softmax_loss": ((tb.softmax_loss, nn.CrossEntropyLoss()), None, None),
    "softmax_loss, 1e-7 in the log": (
        (tb.softmax_loss_log_eps, nn.CrossEntropyLoss()), (1, "loss", "loss"), "cross-entropy-log-eps"
    ),
    "softmax_loss, gradient summed": (
        (tb.softmax_loss_grad_sum, nn.CrossEntropyLoss()), (1, "grad", "dscores"), "cross-entropy-grad-without-mean"
    ),
    "softmax_loss, both mistakes": (
        (tb.softmax_loss_both, nn.CrossEntropyLoss()),
        (1, "loss", "loss"),
        "cross-entropy-grad-without-mean and cross-entropy-log-eps",
    ),
    "svm_loss against MultiMarginLoss": (
        (tb.svm_loss, nn.MultiMarginLoss()), (1, "loss", "loss"), "convention:per-class-mean"
    ),
    "svm_loss against a callable twin": ((tb.svm_loss, SVMTwin()), None, None),
}  # fmt: skip


def loss_report(case: str) -> compare.Report:
    (loss, torch_loss), _, _ = LOSSES[case]
    return compare.check_loss(loss, torch_loss, X[:, :3], LABELS)


@pytest.mark.parametrize("case", LOSSES)
def test_a_loss_function_returning_loss_and_dscores(case):
    _, expected, name = LOSSES[case]
    report = loss_report(case)
    assert where(report) == expected, report
    assert named(report) == name, report


SGD_M = (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9})
ADAM = (torch.optim.Adam, {"lr": 1e-3})
OPTIMIZERS = {
    "sgd_momentum": ((tb.sgd_momentum, *SGD_M, {"config": {"learning_rate": 1e-2}}), None, None),
    "sgd_momentum, config from torch's": ((tb.sgd_momentum, *SGD_M, {}), None, None),
    "sgd_momentum, momentum 0.8": (
        (tb.sgd_momentum, *SGD_M, {"config": {"learning_rate": 1e-2, "momentum": 0.8}}),
        (2, "state", "0.weight.momentum_buffer"),  # step 1's buffer is g either way
        "convention:momentum",
    ),
    "sgd_momentum, lr schedule": (
        (tb.sgd_momentum, *SGD_M, {"lr_schedule": "step:5:0.1", "steps": 8}),
        (6, "state", "0.weight.momentum_buffer"),  # the velocity holds the old lr after the drop
        "classic_momentum",
    ),
    "rmsprop": ((tb.rmsprop, torch.optim.RMSprop, {"lr": 1e-2}, {}), None, None),
    "adam": ((tb.adam, *ADAM, {}), None, None),
    "adam, epsilon 1e-7": (
        (tb.adam, *ADAM, {"config": {"learning_rate": 1e-3, "epsilon": 1e-7}}),
        (1, "param", "0.weight"),
        "convention:eps",
    ),
    "adam, no bias correction": (
        (tb.adam_no_bias_correction, *ADAM, {}), (1, "param", "0.weight"), "adam-no-bias-correction"
    ),
    "adam, eps inside the root": ((tb.adam_eps_inside, *ADAM, {}), (1, "param", "0.weight"), "adam-eps-inside-root"),
    "per-parameter object": ((tb.AdamObject(eps=1e-8), *ADAM, {}), None, None),
    "per-parameter object, eps 1e-7": ((tb.AdamObject(), *ADAM, {}), (1, "param", "0.weight"), "convention:eps"),
    "per-parameter object, lr schedule": (
        (tb.AdamObject(eps=1e-8), *ADAM, {"lr_schedule": "step:3:0.1"}), None, None
    ),  # the schedule sets hyperparameters["lr"], where this object keeps it
    "per-parameter object, no bias correction": (
        (tb.AdamObject(eps=1e-8, bias_correction=False), *ADAM, {}), (1, "param", "0.weight"), "adam-no-bias-correction"
    ),
}  # fmt: skip


def optimizer_report(case: str) -> compare.Report:
    (optimizer, torch_class, hyperparameters, options), _, _ = OPTIMIZERS[case]
    return compare.check_optimizer(optimizer, torch_class, hyperparameters, **{"steps": 6, **options})


@pytest.mark.parametrize("case", OPTIMIZERS)
def test_an_optimizer_in_its_own_form(case):
    _, expected, name = OPTIMIZERS[case]
    report = optimizer_report(case)
    assert where(report) == expected, report
    assert named(report) == name, report


@pytest.mark.parametrize(
    ("optimizer", "torch_class", "keys"),
    [
        (tb.sgd_momentum, torch.optim.SGD, {"momentum_buffer"}),
        (tb.rmsprop, torch.optim.RMSprop, {"square_avg"}),
        (tb.adam, torch.optim.Adam, {"exp_avg", "exp_avg_sq", "step"}),
        (tb.AdamObject(eps=1e-8), torch.optim.Adam, {"exp_avg", "exp_avg_sq", "step"}),
    ],
)
def test_the_state_under_textbook_names_is_compared_every_step(optimizer, torch_class, keys):
    report = compare.check_optimizer(
        optimizer,
        torch_class,
        {"lr": 1e-2, "momentum": 0.9} if torch_class is torch.optim.SGD else {"lr": 1e-2},
        steps=3,
    )
    compared = {c.tensor.rpartition(".")[2] for c in report.checks if c.stage == "state" and c.tensor != "lr"}
    assert compared == keys and {c.step for c in report.checks if c.stage == "state"} == {1, 2, 3}, report


NAMED = {
    **{f"fault {name}": fault for name, fault in CATALOG.items()},
    **{f"variant {name}": variant for name, variant in VARIANTS.items()},
    **{f"convention {name}": convention for name, convention in CONVENTIONS.items()},
    **{f"engine mistake {bug.name}": bug for bug in ENGINE_MISTAKES},
}


@pytest.mark.parametrize("key", NAMED)
def test_each_named_mistake_variant_and_convention_carries_its_own_one_line_fix(key):
    fix = NAMED[key].fix
    assert fix.strip() and "\n" not in fix, key
    assert fix not in [other.fix for name, other in NAMED.items() if name != key], key


SETTING_FIX = CONVENTIONS["setting"].fix.format(values="eps=1e-06", defaults="1e-05", kind="layer")
CARRIED = {  # a real check whose diagnosis names faults, a variant or a convention: (check, its case, the fix)
    "a fault": ("layer", "affine, bias averaged", CATALOG["bias-grad-averaged"].fix),
    "two faults at once": (
        "loss",
        "softmax_loss, both mistakes",
        f"{CATALOG['cross-entropy-grad-without-mean'].fix}; {CATALOG['cross-entropy-log-eps'].fix}",
    ),
    "a textbook variant": ("optimizer", "sgd_momentum, lr schedule", VARIANTS["classic_momentum"].fix),
    "a loss convention": ("loss", "svm_loss against MultiMarginLoss", CONVENTIONS["per-class-mean"].fix.format(k=3)),
    "a layer's setting": ("layer", "batchnorm, eps 1e-6", SETTING_FIX),
    "a dropout convention": ("layer", "dropout, p kept", CONVENTIONS["dropout-keep-probability"].fix.format(q=0.8)),
}
CHECKS = {"layer": (LAYERS, layer_report), "loss": (LOSSES, loss_report), "optimizer": (OPTIMIZERS, optimizer_report)}


@pytest.mark.parametrize("name", CARRIED)
def test_a_diagnosis_carries_the_named_objects_fix(name):
    kind, case, fix = CARRIED[name]
    table, report_of = CHECKS[kind]
    report = report_of(case)
    assert report.diagnosis is not None and report.diagnosis.name == table[case][2], report
    assert report.diagnosis.fix == fix, report
    assert f"; fix: {fix}" in str(report) and report.to_dict()["diagnosis"]["fix"] == fix
