"""check_loss: a textbook SoftmaxWithLoss on one-hot targets, a pair of functions, and every catalog
loss mistake failing at the loss or its gradient and named."""

import numpy as np
import pytest
from check_styles import SoftmaxWithLoss
from torch import nn

import compare
from compare.faults import losses as faulty
from compare.faults.catalog import CATALOG

RNG = np.random.default_rng(3)
SCORES = RNG.standard_normal((8, 3)) * 2
LABELS = RNG.integers(0, 3, 8)
ONE_HOT = np.eye(3)[LABELS]


def test_a_textbook_softmax_with_loss_on_one_hot_targets_passes():
    report = compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, ONE_HOT)
    assert report.passed, report
    assert [(c.stage, c.tensor) for c in report.checks] == [("loss", "loss"), ("grad", "dscores")]


def test_a_pair_of_functions_passes_against_mse():
    targets = RNG.standard_normal((8, 3))
    pair = (lambda s, t: np.mean((s - t) ** 2), lambda s, t: 2 * (s - t) / s.size)
    assert compare.check_loss(pair, nn.MSELoss(), SCORES, targets).passed


class PackageStyle:
    """The package's own losses take integer labels; wrap one the way a user would use it."""

    def __init__(self, loss):
        self.loss = loss

    def forward(self, scores, labels):
        return self.loss.forward(scores, labels)

    def backward(self):
        return self.loss.backward()


# (catalog name, the user's loss, torch loss, targets, expected first failure)
MISTAKES = [
    ("cross-entropy-log-eps", SoftmaxWithLoss(log_eps=1e-7), nn.CrossEntropyLoss(), ONE_HOT, (1, "loss", "loss")),
    ("cross-entropy-grad-without-mean", PackageStyle(faulty.CrossEntropyGradWithoutMean()), nn.CrossEntropyLoss(),
     LABELS, (1, "grad", "dscores")),
    ("mse-mean-over-batch-only", PackageStyle(faulty.MSEMeanOverBatchOnly()), nn.MSELoss(), ONE_HOT,
     (1, "loss", "loss")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "loss", "torch_loss", "targets", "expected"), MISTAKES)
def test_each_catalog_loss_mistake_fails_where_it_acts_and_is_named(name, loss, torch_loss, targets, expected):
    assert name in CATALOG
    report = compare.check_loss(loss, torch_loss, SCORES, targets)
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor) == expected, report
    assert report.diagnosis is not None and report.diagnosis.name == name, report


@pytest.mark.filterwarnings(
    "ignore:overflow encountered in exp", "ignore:invalid value encountered in divide", "ignore:divide by zero"
)
def test_softmax_without_max_shift_fails_as_nonfinite_on_large_logits():  # the user's code overflows: the mistake
    report = compare.check_loss(
        PackageStyle(faulty.CrossEntropyNoMaxShift()), nn.CrossEntropyLoss(), SCORES * 1000, LABELS
    )
    failure = report.first_failure
    assert (failure.step, failure.stage, failure.tensor, failure.problem) == (1, "loss", "loss", "nonfinite:manual")
    assert report.diagnosis.name == "softmax-without-max-shift"  # the same elements NaN, the rest equal


def test_a_loss_that_raises_is_a_finding():
    def loss_fn(scores, targets):
        return np.log(scores[targets])  # an index error on one-hot targets

    report = compare.check_loss((loss_fn, loss_fn), nn.CrossEntropyLoss(), SCORES, ONE_HOT)
    assert report.first_failure.problem == "exception" and report.first_failure.stage == "loss"
    assert report.first_failure.message.startswith("IndexError")
