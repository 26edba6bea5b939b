"""A run's first failure measured: ``backprop-parity run`` with an injected fault says what the departure is
(a ratio N, a transpose) before the one verdict line, which stays last and unchanged, and in report.json's
``diagnosis``; a passing run, a side that raised and a textbook variant have none. The arrays measured are
the first failure's only, kept by ``compare.core.checks.Checks`` even when compared in the background.

Runs go in-process through ``compare.cli.main`` and write under pytest's ``tmp_path``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from compare.core.checks import Checks
from compare.faults import CATALOG
from conftest import invoke


def run(tmp_path: Path, capsys, *args: str) -> tuple[int, list[str], dict, str]:
    """``run ARGS``: (exit status, the verdict's lines as printed, report.json, verdict.txt)."""
    logdir, out = tmp_path / "runs", tmp_path / "report.json"
    status, printed, _ = invoke(["run", *args, "--logdir", str(logdir), "--no-tensorboard", "--json", str(out)], capsys)
    (run_dir,) = logdir.iterdir()
    return status, printed.splitlines(), json.loads(out.read_text()), (run_dir / "verdict.txt").read_text()


# (injected fault, what the measured finding says, what its fix says): the batch is the CLI's default 32
INJECTED = [
    ("cross-entropy-grad-without-mean", "4.out: ratio 32.000 to torch's on every element (= N = 32", "divide by"),
    ("transposed-weight-grad", "4.weight: torch's transposed", "transpose it"),
    ("bias-grad-averaged", "4.bias: ratio 0.031 to torch's on every element (= 1/N = 1/32)", "divide by N once"),
]


@pytest.mark.parametrize(("name", "finding", "fix"), INJECTED)
def test_inject_fault_run_measures_its_first_failure(name, finding, fix, tmp_path, capsys):
    status, printed, report, verdict = run(tmp_path, capsys, "--inject", name, *CATALOG[name].argv(tmp_path))
    assert status == 1 and report["verdict"] == "FAIL"
    step, stage, tensor = CATALOG[name].expected
    assert printed[-1].startswith(f"FAIL: first difference at step {step}, stage {stage}, tensor {tensor}:")
    assert verdict.splitlines()[-1] == printed[-1]  # the one verdict line, last
    measured = next(i for i, line in enumerate(printed) if line.startswith("measured: "))
    assert printed[measured].startswith(f"measured: {finding}")
    assert printed[measured + 1].startswith(f"  fix: {fix}")
    assert measured + 1 < len(printed) - 1  # before the verdict line
    assert report["diagnosis"]["findings"][0].startswith(finding)
    assert report["diagnosis"]["fix"].startswith(fix)
    assert "measured: " + report["diagnosis"]["findings"][0] in verdict


# runs without a measured diagnosis: (an injected fault or None, further arguments, exit status)
UNMEASURED = [
    (None, ("--steps", "2"), 0),  # parity holds: nothing to measure
    ("softmax-without-max-shift", (), 1),  # the manual loss is NaN: no law to measure
    (None, ("--variant", "adam_eps_hat", "--steps", "2"), 1),  # DEPARTS: a textbook variant departs, as expected
]


@pytest.mark.parametrize(("fault", "args", "status"), UNMEASURED)
def test_runs_with_nothing_to_measure_have_no_diagnosis(fault, args, status, tmp_path, capsys):
    injected = ["--inject", fault, *CATALOG[fault].argv(tmp_path)] if fault else []
    with np.errstate(all="ignore"):  # softmax-without-max-shift overflows, as it should
        got, printed, report, _ = run(tmp_path, capsys, *injected, *args)
    assert got == status
    assert report["diagnosis"] is None
    assert not any(line.startswith("measured: ") for line in printed)


def test_checks_keep_the_failing_pairs_compared_in_the_background():
    manual, torch_side = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3) / 4
    checks = Checks(1, "float64", background=True, keep={})
    checks.add("grad", "0.weight", manual, torch_side)
    checks.add("grad", "0.bias", torch_side[0], torch_side[0])  # passes: not kept
    checks.compare_in_background()
    assert [check.passed for check in checks.collect()] == [False, True]
    assert list(checks.keep) == [(1, "grad", "0.weight")]
    kept_manual, kept_torch = checks.keep[(1, "grad", "0.weight")]
    assert np.array_equal(kept_manual, manual) and np.array_equal(kept_torch, torch_side)
