"""The mistakes a newcomer makes in calling a check, each answered in one line (``compare.check.forms.arguments``):
the torch twin passed first, labels missing, a loss returned as a 1-element array, arrays in another dtype
than the check's, and where ``check_model``'s curves went with the command that opens them."""

import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from check_styles import Adam, Affine, SoftmaxWithLoss, TwoLayerNet
from torch import nn

import compare
from compare.cli.board import served_runs
from compare.cli.main import main
from compare.errors import InputError

RNG = np.random.default_rng(0)
X, LABELS = RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8)
SCORES, ONE_HOT = RNG.standard_normal((8, 3)), np.eye(3)[LABELS]  # the textbook's SoftmaxWithLoss takes one-hot rows


def affine() -> Affine:
    return Affine(RNG.standard_normal((4, 3)), RNG.standard_normal(3))


def torch_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


class ListLoss(SoftmaxWithLoss):
    """A textbook loss whose forward returns the loss as an array of ``shape`` (a 1-element one is common)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x, t):
        return np.full(self.shape, super().forward(x, t) / np.prod(self.shape))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare.check_layer(nn.Linear(4, 3), affine(), X), "check_layer: your layer first, the torch twin"),
        (lambda: compare.check_loss(nn.CrossEntropyLoss(), SoftmaxWithLoss(), SCORES, LABELS), "your loss first"),
        (lambda: compare.check_model(torch_model(), TwoLayerNet(4, 6, 3), nn.CrossEntropyLoss(), X, LABELS),
         "check_model: your model first, the torch twin second (the first is torch's Sequential)"),
        (lambda: compare.check_optimizer(torch.optim.Adam, Adam(lr=0.01), {"lr": 0.01}), "torch's Adam"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, None),
         "check_loss: targets is None: pass the labels, one per row of scores"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, LABELS[:7]),
         "check_loss: 7 labels in targets for 8 rows of scores"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), torch_model(), nn.CrossEntropyLoss(), X, None),
         "check_model: y is None"),
    ],
    ids=["layer-twin-first", "loss-twin-first", "model-twin-first", "optimizer-twin-first", "no-labels",
         "labels-short", "model-no-labels"],
)  # fmt: skip
def test_a_call_a_newcomer_gets_wrong_is_one_line_before_any_work(call, message):
    with pytest.raises(InputError) as raised:
        call()
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_loss_returned_as_a_one_element_array_is_compared_as_its_number_and_noted():
    report = compare.check_loss(ListLoss((1,)), nn.CrossEntropyLoss(), SCORES, ONE_HOT)
    assert report.passed, report
    assert report.notes == ["your loss returned an array of shape (1,): compared as the number it holds "
                            "(float(loss) gives it)"]  # fmt: skip
    wider = compare.check_loss(ListLoss((2,)), nn.CrossEntropyLoss(), SCORES, ONE_HOT)
    assert not wider.passed and wider.first_failure.tensor == "loss"  # two numbers are not one: still a FAIL


@pytest.mark.parametrize(
    ("call", "note"),
    [
        (lambda: compare.check_layer(Affine(np.ones((4, 3), np.float32), np.zeros(3, np.float32)), nn.Linear(4, 3),
                                     X.astype(np.float32)),
         "your x (float32), W (float32), b (float32) checked in float64 (dtype='float64'): cast to it, and torch "
         "ran in it; dtype='float32' checks them as they are"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES.astype(np.float32), ONE_HOT),
         "your scores (float32) checked in float64"),
        (lambda: compare.check_layer(affine(), nn.Linear(4, 3), X, dtype="float32"),
         "your x (float64), W (float64), b (float64) checked in float32"),
        (lambda: compare.check_layer(affine(), nn.Linear(4, 3), X), None),  # the check's dtype: nothing to say
    ],
    ids=["float32-layer", "float32-scores", "float64-at-float32", "same-dtype"],
)  # fmt: skip
def test_arrays_in_another_dtype_are_checked_in_the_checks_and_the_note_says_which(call, note):
    report = call()
    said = [line for line in report.notes if " checked in " in line]
    assert report.passed and (said == [] if note is None else said[0].startswith(note)), report


def test_check_model_says_where_the_curves_went_and_the_command_opens_them(tmp_path):
    curves = tmp_path / "my curves"
    report = compare.check_model(TwoLayerNet(4, 6, 3), torch_model(), nn.CrossEntropyLoss(), X, LABELS, steps=2,
                                 tensorboard_dir=curves)  # fmt: skip
    note = report.notes[-1]
    assert (
        note
        == f"curves: {curves} (manual/, torch/, parity/); open them: backprop-parity board {shlex.quote(str(curves))}"
    )
    named = shlex.split(note.rpartition("open them: ")[2])
    assert named[:2] == ["backprop-parity", "board"]
    runs, keys = served_runs(tmp_path / "runs", named[2:])  # what `board` would serve: that run, with its events
    assert [runs[key] for key in keys] == [curves]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("layer, torch_module, x = nn.Linear(4, 3), Affine(np.ones((4, 3)), np.zeros(3)), np.ones((2, 4))",
         "check_layer: your layer first, the torch twin second"),
        ("loss, torch_loss, scores = SoftmaxWithLoss(), nn.CrossEntropyLoss(), np.ones((2, 3))",
         "mine.py defines loss, torch_loss, scores but not targets: a loss check needs loss, torch_loss, scores, "
         "targets"),
    ],
    ids=["twin-first", "no-targets"],
)  # fmt: skip
def test_the_file_convention_says_the_same_in_one_line_and_exits_2(tmp_path, capsys, text, message):
    tests = str(Path(__file__).parent)
    head = f"import sys\nsys.path.insert(0, {tests!r})\nimport numpy as np\nfrom torch import nn\n"
    (tmp_path / "mine.py").write_text(
        head + "from check_styles import Affine, SoftmaxWithLoss\n" + textwrap.dedent(text)
    )
    status = main(["check", str(tmp_path / "mine.py"), "--logdir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert (status, err.count("\n"), message in err) == (2, 1, True), err
