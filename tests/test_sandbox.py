"""User code that ends the process is a finding: ``check FILE.py`` runs it in a child process
(``compare.check.sandbox``), and ``sys.exit`` inside a check is a finding in any process."""

import json

import numpy as np
import pytest
from torch import nn

from compare.check import check_layer
from compare.cli.main import main
from conftest import layer_class, user_layer_file

# (where the code sits, the code, what the one line says)
ENDINGS = [
    ("backward", "sys.exit(0)", "called sys.exit(0)"),
    ("forward", "os._exit(3)", "exit status 3"),
    ("backward", "os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
    ("module", "sys.exit(0)", "called sys.exit(0)"),
    ("module", "os._exit(4)", "exit status 4 (os._exit, or exit in C code) while loading"),
]


@pytest.mark.parametrize(("where", "code", "said"), ENDINGS)
def test_user_code_that_ends_the_process_is_a_finding_with_a_report(where, code, said, tmp_path, capsys):
    file = user_layer_file(tmp_path, **{where: code})
    logdir = tmp_path / "runs"
    assert main(["check", str(file), "--logdir", str(logdir)]) == 1
    captured = capsys.readouterr()
    assert said in captured.out + captured.err
    (run_dir,) = logdir.iterdir()
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["passed"] is False
    assert said in json.dumps(saved)


def test_sys_exit_inside_a_check_is_its_finding_in_process():
    """A notebook's check: ``sys.exit`` in the user's backward ends the check, not the kernel."""

    class Exiting:
        def __init__(self) -> None:
            self.W, self.b = np.ones((4, 3)), np.zeros(3)

        def forward(self, x):
            return x @ self.W + self.b

        def backward(self, dout):
            raise SystemExit(0)

    report = check_layer(Exiting(), nn.Linear(4, 3), np.ones((2, 4)))
    assert not report.passed
    assert "called sys.exit(0)" in report.first_failure.line() and report.first_failure.step == 1


def test_a_check_that_compared_nothing_is_never_a_pass():
    from compare.check.report import Report

    empty = Report("model")
    assert not empty.passed and "nothing was compared" in str(empty)


@pytest.mark.slow
def test_isolate_keeps_the_caller_alive_and_names_the_call_that_died(tmp_path, monkeypatch):
    """A notebook's ``check_layer(..., isolate=True)``: the child dies in forward, the caller gets a report
    (the layer's class comes from a module file: a spawned child imports it by name)."""
    Exiting = layer_class(tmp_path, monkeypatch, "Exiting", forward="os._exit(3)")
    report = check_layer(Exiting(), nn.Linear(4, 3), np.ones((2, 4)), isolate=True)
    assert not report.passed and report.first_failure.problem == "died"
    assert "exit status 3" in report.first_failure.line() and "forward" in report.first_failure.line()


@pytest.mark.slow
def test_isolate_returns_the_childs_report():
    from check_styles import Affine

    rng = np.random.default_rng(0)
    layer, module = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3)), nn.Linear(4, 3)
    report = check_layer(layer, module, rng.standard_normal((5, 4)), isolate=True)
    assert report.passed and report.checks
