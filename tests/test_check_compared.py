"""Never a pass on nothing: a check that compared nothing (or, for a model, none of its parameters) is bad input
in every entry point (one ``InputError`` line; exit 2 from the CLI, nothing written), a complete run that
compared nothing is a FAIL; and every report states its coverage in one line, true to its checks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from check_styles import SGD, Affine, SoftmaxWithLoss, TwoLayerNet, two_layer_function
from engines import ArrayTensor
from torch import nn

import compare
from compare.check.report import Report, require_compared
from compare.cli.main import main
from compare.core.coverage import Coverage
from compare.core.metrics import TensorDiff
from compare.core.records import Check, RunResult, StepRecord
from compare.core.verdict import Word, of_run
from compare.errors import InputError
from compare.output import report as run_report

RNG = np.random.default_rng(3)
W, B, X = RNG.standard_normal((4, 3)), RNG.standard_normal(3), RNG.standard_normal((5, 4))
SCORES, ONE_HOT = RNG.standard_normal((6, 3)), np.eye(3)[RNG.integers(0, 3, 6)]
DATA, LABELS = RNG.standard_normal((8, 4)), RNG.integers(0, 3, 8)


def net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()


class Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.log()

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return dout / x


def _jax_nothing():
    jax = pytest.importorskip("jax")
    return compare.check_jax_function(jax.numpy.tanh, np.ones(3), reference=jax.numpy.tanh, draws=())


# A layer given no batch and a loss given 0 steps are refused before they run (forms/arguments.py), so they
# cannot compare nothing: each is refused in one line, nothing written.
REFUSED_FIRST = {
    "layer": (lambda **kw: compare.check_layer(Affine(W, B), nn.Linear(4, 3), [], **kw), "check_layer: x is empty"),
    "loss": (
        lambda **kw: compare.check_loss(SoftmaxWithLoss(), nn.CrossEntropyLoss(), SCORES, ONE_HOT, steps=0, **kw),
        "check_loss: steps=0",
    ),
}


@pytest.mark.parametrize("entry", list(REFUSED_FIRST))
def test_a_check_that_could_compare_nothing_is_refused_before_it_runs(entry, tmp_path):
    call, said = REFUSED_FIRST[entry]
    with pytest.raises(InputError) as raised:
        call(report_dir=tmp_path / "page")
    assert str(raised.value).startswith(said) and "\n" not in str(raised.value)
    assert not (tmp_path / "page").exists()


NOTHING = {  # entry point → a call that compares nothing, as a user can make it
    "optimizer": lambda **kw: compare.check_optimizer(SGD(lr=0.1), torch.optim.SGD, {"lr": 0.1}, steps=0, **kw),
    "model": lambda **kw: compare.check_model(
        TwoLayerNet(4, 5, 3), net(), nn.CrossEntropyLoss(), DATA, LABELS, batches=[], **kw
    ),
    # every draw outside log's domain: autograd's reference is not finite, so no draw is compared
    "function": lambda **kw: compare.check_function(Log, torch.log, -torch.ones(20), **kw),
    "jax_function": lambda **kw: _jax_nothing(),
    # a tensor engine whose leaves refuse floats, checked as a scalar engine: no op runs
    "engine": lambda **kw: compare.check_engine(ArrayTensor, tensor=False, **kw),
}


@pytest.mark.parametrize("entry", list(NOTHING))
def test_a_check_that_compares_nothing_is_an_input_error_in_one_line_with_nothing_written(entry, tmp_path):
    keywords = {} if entry == "jax_function" else {"report_dir": tmp_path / "page"}
    with pytest.raises(InputError) as raised:
        NOTHING[entry](**keywords)
    message = str(raised.value)
    kind = "function" if entry == "jax_function" else entry
    assert message.startswith(f"check_{kind} compared nothing") and "\n" not in message
    assert "never a pass" in message and (": give " in message or ": pass " in message)  # what to pass
    assert not (tmp_path / "page").exists()


def test_the_engine_error_names_the_op_refused_and_how_to_check_it():
    with pytest.raises(InputError, match=r"checked as a scalar engine .*TypeError: ArrayTensor holds .*tensor=True"):
        NOTHING["engine"]()


def test_a_model_check_that_compared_no_parameter_is_an_input_error():
    """A report with a layer output compared and no parameter (``require_compared``, every entry point's last word)."""
    forward = Check(1, "forward", "0.out", TensorDiff(0.0, 0.0, ()), 1e-10)
    with pytest.raises(InputError, match="check_model compared none of your model's parameters"):
        require_compared(Report("model", checks=[forward], steps=1))
    assert require_compared(Report("layer", checks=[forward], steps=1)).passed  # a layer may have none


def test_a_check_that_found_something_is_its_finding_not_an_input_error():
    failed = Check(1, "grad", "dx", TensorDiff(1.0, 1.0, ()), 1e-10)
    assert not require_compared(Report("layer", checks=[failed], steps=1)).passed


@pytest.mark.slow
def test_isolate_brings_the_input_error_back_from_the_child():
    with pytest.raises(InputError, match="check_optimizer compared nothing"):
        NOTHING["optimizer"](isolate=True)


MODEL_FILE = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
from torch import nn
from check_styles import TwoLayerNet

model = TwoLayerNet(4, 6, 3)
torch_model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
torch_loss = nn.CrossEntropyLoss()
X, y = np.ones((8, 4)), np.zeros(8, dtype=int)
options = {{"batches": []}}
"""


def test_the_cli_says_it_in_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    """A model file given no batch: its curves' directory was begun; nothing of it is left."""
    file = tmp_path / "mine.py"
    file.write_text(MODEL_FILE.format(tests=str(Path(__file__).parent)))
    logdir, json_path = tmp_path / "runs", tmp_path / "r.json"
    assert main(["check", str(file), "--logdir", str(logdir), "--json", str(json_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "check_model compared nothing" in err and len(err.splitlines()) == 1
    assert not logdir.exists() or not any(logdir.iterdir())
    assert not json_path.exists()


def _stages(checks) -> dict[str, int]:
    names: dict[str, set] = {}
    for check in checks:
        names.setdefault(check.stage, set()).add(check.tensor)
    return {stage: len(tensors) for stage, tensors in names.items()}


def _model_without_layers() -> Report:
    params = TwoLayerNet(4, 5, 3).params  # a function-style network exposes no layers: outputs not compared
    return compare.check_model(two_layer_function, net(), nn.CrossEntropyLoss(), DATA, LABELS, params=params, steps=2)


REPORTS = {  # a check → what its coverage must say was not compared (a part of it)
    "layer": (lambda: compare.check_layer(Affine(W, B), nn.Linear(4, 3), X, steps=2), None),
    "model, no layers": (_model_without_layers, "layer outputs (it exposes no layers list"),
    "engine without sum": (lambda: compare.check_engine(ArrayTensor), "a.sum(), a.sum() * a.sum() (your engine lacks"),
}


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_states_its_coverage_in_one_true_line(name, tmp_path):
    make, missing = REPORTS[name]
    report = make()
    coverage = report.coverage
    assert coverage.comparisons == len(report.checks) > 0
    assert coverage.steps == len({c.step for c in report.checks}) and coverage.tensors == _stages(report.checks)
    (line,) = [line for line in str(report).splitlines() if line.startswith("coverage: ")]
    assert line == coverage.line() and str(report).splitlines()[0].startswith(("PASS", "FAIL"))  # verdict first
    if missing is not None:
        assert any(item.startswith(missing) for item in coverage.not_compared), coverage
    assert report.to_dict()["coverage"] == json.loads(json.dumps(coverage.to_json()))
    assert "coverage: compared" in report.save_html(tmp_path / "page.html").read_text()


def _check(step: int, stage: str, tensor: str) -> Check:
    return Check(step, stage, tensor, TensorDiff(0.0, 0.0, ()), 1e-10)


def _run(records: list[StepRecord]) -> RunResult:
    result = RunResult()
    for record in records:
        result.add(record)
    result.complete = True
    return result


def test_a_runs_printed_report_states_its_coverage_below_its_stage_table():
    checks = [_check(1, "forward", "0.out"), _check(1, "grad", "0.weight"), _check(1, "grad", "0.bias")]
    result = _run([StepRecord(1, 1.0, 1.0, 0.1, checks), StepRecord(2, 1.0, 1.0, 0.1, checks[1:])])
    *table, coverage, verdict = run_report.verdict(result, 2).splitlines()
    assert verdict.startswith("PASS") and table[0].startswith("stage ")  # the verdict line stays last
    expected = Coverage.counted(2, 5, {"forward": {"0.out"}, "grad": {"0.weight", "0.bias"}})
    assert coverage.startswith(expected.line()) and "not compared: stage loss" in coverage
    built = run_report.build(result, {"dtype": "float64"}, None)
    assert built["coverage"]["tensors"] == {"forward": 1, "grad": 2} and built["coverage"]["comparisons"] == 5


def test_a_run_that_compared_nothing_is_never_a_pass():
    result = _run([StepRecord(1, 1.0, 1.0, 0.1, [])])
    decided = of_run(result)
    assert decided.word is Word.FAIL and not decided.passed and not result.passed
    last = run_report.verdict(result, 1).splitlines()[-1]
    assert last.startswith("FAIL: nothing was compared in 1 step(s)")
