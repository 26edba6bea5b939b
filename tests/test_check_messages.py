"""The right kind of message (issue 34, "Messages"): output shapes that differ are named with both shapes before
anything is handed to the user's backward (``compare.check.forms.shapes``); a loss returned as a 1-element
array is read as its number, a wider one where torch's is one number is named as such; missing inputs and
labels are one-line ``InputError``s (``compare.check.forms.arguments``); a dtype other than the check's is
named in a note; and the CLI gives the same line, exit 2 and nothing written for bad input."""

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from check_styles import Adam, Affine, SoftmaxWithLoss, TwoLayerNet, two_layer_function
from torch import nn
from user_shapes import Conv, MaxPoolNHWC, PoolNet, TransposedAffine

import compare
from compare.cli.main import main
from compare.errors import InputError

RNG = np.random.default_rng(3)
X, LABELS = RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8)
SCORES, ONE_HOT = RNG.standard_normal((8, 3)), np.eye(3)[LABELS]
IMAGES = RNG.standard_normal((2, 3, 5, 5))  # (N, C, H, W)
W_CONV, B_CONV = RNG.standard_normal((4, 3, 3, 3)), RNG.standard_normal(4)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


class SquareSum(torch.autograd.Function):
    """Σ_j x_ij² per row, (N, D) → (N,); backward 2·x·g."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x * x).sum(dim=1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g[:, None]


def pool_model():
    return nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 3))


@pytest.mark.parametrize(
    ("call", "tensor", "shapes", "cause"),
    [
        (lambda: compare.check_layer(Conv(W_CONV, B_CONV), nn.Conv2d(3, 4, 3, padding=1), IMAGES), "out",
         "your layer's output has shape (2, 4, 3, 3) where torch's has (2, 4, 5, 5)", "padding=(1, 1)"),
        (lambda: compare.check_layer(MaxPoolNHWC(), nn.MaxPool2d(2), RNG.standard_normal((2, 4, 4, 3))), "out",
         "your layer's output has shape (2, 2, 2, 3) where torch's has (2, 4, 2, 1)", "keeps channels last"),
        (lambda: compare.check_layer(Conv(W_CONV, B_CONV, channels_last=True), nn.Conv2d(3, 4, 3),
                                     IMAGES.transpose(0, 2, 3, 1)), "out",
         "torch's Conv2d takes channels first, (N, 3, ...), and raised on your x of shape (2, 5, 5, 3)",
         "module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)"),
        (lambda: compare.check_layer(TransposedAffine(RNG.standard_normal((4, 3)), np.zeros(3)), nn.Linear(4, 3), X),
         "out", "your layer's output has shape (3, 8) where torch's has (8, 3)", "the transpose of torch's"),
        (lambda: compare.check_function(SquareSum, lambda x: (x * x).sum(dim=1, keepdim=True), torch.randn(4, 3)),
         "out", "your function's output has shape (4,) where the reference's has (4, 1)", "reshape or transpose"),
        (lambda: compare.check_model(PoolNet(), pool_model(), nn.CrossEntropyLoss(), RNG.standard_normal((8, 4, 4, 3)),
                                     LABELS, steps=2), "0.out",
         "your layer 0's output has shape (8, 2, 2, 3) where torch's has (8, 4, 2, 1)", "keeps channels last"),
    ],
    ids=["conv-padding", "pool-channels-last", "conv-channels-last", "transposed", "function", "model-layer"],
)  # fmt: skip
def test_an_output_of_another_shape_is_named_with_both_shapes_before_the_backward(call, tensor, shapes, cause):
    report = call()
    error = report.error
    assert error is not None and (error.stage, error.tensor, error.problem) == ("forward", tensor, "shape"), report
    line = error.line()
    assert shapes in line and cause in line and "\n" not in line, line
    assert "your code raised" not in str(report)  # the user's backward was never handed a dout


class ArrayLoss(SoftmaxWithLoss):
    """The textbook loss layer (one-hot targets) returning its value as an array of ``shape`` (all of it adding
    up to the loss)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x, t):
        return np.full(self.shape, super().forward(x, t) / np.prod(self.shape))


class LabelArrayLoss(ArrayLoss):
    """The same on integer labels (a network's last layer)."""

    def forward(self, x, t):
        return super().forward(x, np.eye(x.shape[1])[t])


def net_with_loss(shape: tuple[int, ...]) -> TwoLayerNet:
    net = TwoLayerNet(4, 6, 3)
    net.lastLayer = LabelArrayLoss(shape)
    return net


@pytest.mark.parametrize("shape", [(1,), (1, 1), (2,)], ids=["1", "1x1", "2"])
@pytest.mark.parametrize(
    "call",
    [
        lambda shape: compare.check_loss(ArrayLoss(shape), nn.CrossEntropyLoss(), SCORES, ONE_HOT),
        lambda shape: compare.check_model(net_with_loss(shape), mlp(), nn.CrossEntropyLoss(), X, LABELS, steps=2),
    ],
    ids=["check_loss", "check_model"],
)
def test_a_one_element_loss_is_its_number_and_a_wider_one_is_named(call, shape):
    report = call(shape)
    if int(np.prod(shape)) == 1:  # one number: compared as it, and said so
        assert report.passed, report
        assert f"your loss returned an array of shape {shape}: compared as the number it holds" in report.notes[0]
    else:  # two numbers are not torch's one: the finding says so, not a transposed product
        line = report.first_failure.line()
        assert report.first_failure.problem == "shape" and "where torch's is one number" in line, line
        assert "transposed" not in line


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare.check_layer(Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), None),
         "check_layer: x is None: pass the layer's input"),
        (lambda: compare.check_layer(Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), []),
         "check_layer: x is empty"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), None, ONE_HOT),
         "check_loss: scores is None: pass scores, one sample per row"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, LABELS[:, None]),
         "check_loss: targets has shape (8, 1): class indices go as (N,) (targets.ravel())"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), None, LABELS),
         "check_model: X is None"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X, LABELS[:, None]),
         "check_model: y has shape (8, 1)"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X, LABELS, batch_size=4,
                                     dtype="float32"),
         "check_model: your params W1 (float64), b1 (float64), W2 (float64), b2 (float64) are not in the check's "
         "dtype (float32): pass dtype='float64'"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X, LABELS, batch_size=20),
         "check_model: batch_size=20: from 1 to the 8 rows of X"),  # no batch of 20 is ever drawn: it hung
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X, LABELS.astype(float)),
         "check_model: y holds float64 of shape (8,): torch's CrossEntropyLoss takes class indices as integers"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, np.eye(5)[LABELS]),
         "check_loss: targets has shape (8, 5) for scores of shape (8, 3)"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, LABELS + 3),
         "check_loss: targets holds class"),
        (lambda: compare.check_layer(Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), "x"),
         "check_layer: x is a str, not numbers"),
        (lambda: compare.check_layer(Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), X.tolist()),
         "check_layer: x is a list of lists: pass an array (np.asarray(x)) for one batch, or a list of arrays"),
        (lambda: compare.check_layer(Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), X, dtype="float8"),
         "check_layer: dtype='float8': one of float16, float32, float64"),
        (lambda: compare.check_function(SquareSum, lambda x: (x * x).sum(dim=1), torch.randn(4, 3), dtype="half"),
         "check_function: dtype='half': one of bfloat16, float16, float32, float64"),
        (lambda: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, ONE_HOT, steps=0),
         "check_loss: steps=0: a whole number of steps, at least 1"),  # it compared nothing and named a mistake
        (lambda: compare.check_optimizer(Adam(lr=0.01), torch.optim.Adam, [0.01]),
         "check_optimizer: hyperparameters is a list: a dict"),
    ],
    ids=["layer-x-none", "layer-x-empty", "loss-scores-none", "loss-label-column", "model-x-none",
         "model-label-column", "model-params-dtype", "model-batch-past-X", "model-float-labels",
         "loss-one-hot-width", "loss-class-past-scores", "layer-x-str", "layer-x-nested-list", "unknown-dtype",
         "function-unknown-dtype", "no-steps", "hyperparameters-list"],
)  # fmt: skip
def test_a_missing_or_misshapen_argument_is_one_line_before_any_work(call, message):
    with pytest.raises(InputError) as raised:
        call()
    assert message in str(raised.value) and "\n" not in str(raised.value), raised.value


def function_params(dtype) -> dict[str, np.ndarray]:
    return {name: value.astype(dtype) for name, value in TwoLayerNet(4, 6, 3).params.items()}


@pytest.mark.parametrize(
    ("call", "note"),
    [
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X.astype(np.float32),
                                     LABELS, steps=2),
         "your X (float32) checked in float64 (dtype='float64'): cast to it, and torch ran in it; "
         "dtype='float32' checks them as they are"),
        (lambda: compare.check_model(two_layer_function, mlp(), nn.CrossEntropyLoss(), X, LABELS, steps=2,
                                     params=function_params(np.float32)),
         "your W1 (float32), b1 (float32), W2 (float32), b2 (float32) checked in float64"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), None, None,
                                     batches=[(X.astype(np.float32), LABELS)] * 2),
         "your batches[0]'s x (float32) checked in float64"),
        (lambda: compare.check_function(SquareSum, lambda x: (x * x).sum(dim=1), RNG.standard_normal((4, 3))),
         "your x (float64) checked in float32 (dtype='float32')"),
        (lambda: compare.check_model(TwoLayerNet(4, 6, 3), mlp(), nn.CrossEntropyLoss(), X, LABELS, steps=2), None),
    ],
    ids=["model-X-float32", "model-function-params-float32", "model-batches-float32", "function-float64-input",
         "model-same-dtype"],
)  # fmt: skip
def test_a_dtype_other_than_the_checks_is_named_in_a_note(call, note):
    report = call()
    said = [line for line in report.notes if " checked in " in line]
    assert report.passed and (said == [] if note is None else said[0].startswith(note)), report


HEAD = "import sys\nsys.path.insert(0, {tests!r})\nimport numpy as np\nfrom torch import nn\n"
MODEL = (
    "from check_styles import TwoLayerNet\n"
    "model, torch_model, torch_loss = TwoLayerNet(4, 6, 3), {mlp}, nn.CrossEntropyLoss()\n"
)
MLP = "nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))"
LAYER = (
    "from check_styles import Affine\n"
    "layer, torch_module, x = Affine(np.ones((4, 3)), np.zeros(3)), nn.Linear(4, 3), np.ones((2, 4))\n"
)


@pytest.mark.parametrize(
    ("text", "status", "said"),
    [
        (MODEL + "X, y = np.ones((8, 4)), None", 2, "check_model: y is None: pass the labels"),
        (MODEL + "X, y = np.ones((8, 4)), np.zeros((8, 1), int)", 2, "check_model: y has shape (8, 1)"),
        (MODEL + "X, y = np.ones((8, 4)), np.zeros(7, int)", 2, "check_model: 7 labels in y for 8 rows of X"),
        ("from check_styles import Affine\nlayer, torch_module, x = Affine(np.ones((4, 3)), np.zeros(3)), "
         "nn.Linear(4, 3), None", 2, "check_layer: x is None"),
        ("from user_shapes import MaxPoolNHWC\nlayer, torch_module = MaxPoolNHWC(), nn.MaxPool2d(2)\n"
         "x = np.ones((2, 4, 4, 3))", 1, "your layer's output has shape (2, 2, 2, 3) where torch's has (2, 4, 2, 1)"),
        (LAYER + "options = [('steps', 2)]", 2, "mine.py: options is a list: a dict of keyword options"),
        (LAYER + "options = {'step': 2}", 2, "mine.py: options step: taken by none of its checks (layer), which take "),
    ],
    ids=["model-no-labels", "model-label-column", "model-labels-short", "layer-no-x", "layer-shape",
         "options-list", "options-typo"],
)  # fmt: skip
def test_the_cli_says_the_same_in_one_line(tmp_path, capsys, text, status, said):
    """Bad input: exit 2, one line, nothing written; a shape that differs is a finding: exit 1, the line names it."""
    file = tmp_path / "mine.py"
    file.write_text(HEAD.format(tests=str(Path(__file__).parent)) + textwrap.dedent(text).replace("{mlp}", MLP))
    runs = tmp_path / "runs"
    assert main(["check", str(file), "--logdir", str(runs)]) == status
    captured = capsys.readouterr()
    if status == 2:
        assert captured.err.count("\n") == 1 and said in captured.err, captured.err
        assert not runs.exists() or not any(runs.iterdir())  # nothing written
    else:
        assert said in captured.out and "your code raised" not in captured.out, captured.out
