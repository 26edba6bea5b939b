"""The fault catalog through the CLI: every fault is caught (exit 1) at its catalog's step, stage and
tensor, and the same run without it passes (exit 0), so the failure is the fault's doing; faults
that need a kink, an overflow or a setting are refused or harmless without it; ``faults`` lists
them with their fixes and ``faults --table`` proves them all.

Runs go in-process through ``compare.cli.main`` and write under pytest's ``tmp_path``.
"""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from compare import faults
from compare.cli import faults as faults_cli
from compare.cli.main import main
from compare.core.stages import STAGES
from compare.faults import CATALOG, FILES

NAMES = list(CATALOG)


def run(tmp_path: Path, *args: str) -> tuple[int, dict | None]:
    """``run ARGS`` into a fresh log folder: (exit status, JSON report or None when nothing was written)."""
    logdir = tmp_path / f"runs{len(list(tmp_path.glob('runs*')))}"
    out = tmp_path / f"{logdir.name}.json"
    with np.errstate(all="ignore"):  # softmax-without-max-shift overflows, as it should
        status = main(["run", *args, "--logdir", str(logdir), "--no-tensorboard", "--json", str(out)])
    return status, json.loads(out.read_text()) if out.exists() else None


def test_catalog_holds_at_least_20_named_faults_each_with_a_location():
    assert len(CATALOG) >= 20
    for name, fault in CATALOG.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", name), name
        assert fault.description and "\n" not in fault.description
        step, stage, tensor = fault.expected
        assert step >= 1 and stage in STAGES and tensor, name
        assert fault.why, name
    assert len({fault.description for fault in CATALOG.values()}) == len(CATALOG)


@pytest.mark.parametrize("name", NAMES)
def test_fault_is_caught_where_expected_and_only_because_of_the_fault(name, tmp_path):
    fault = CATALOG[name]
    argv = fault.argv(tmp_path)
    status, report = run(tmp_path, "--inject", name, *argv)
    assert status == 1, f"{name} went undetected"
    failure = report["first_failure"]
    assert (failure["step"], failure["stage"], failure["tensor"]) == fault.expected
    assert failure["problem"] == fault.problem
    assert report["steps"] == fault.expected[0]  # stopped at the first failure: nothing failed before it
    assert report["config"]["inject"] == name

    status, report = run(tmp_path, *argv)
    assert status == 0, f"{name}: the run without the fault fails too ({report['first_failure']})"
    assert report["config"]["inject"] is None


def test_relu_gradient_at_zero_only_matters_at_an_exact_zero(tmp_path):
    """With the default non-zero biases no pre-activation is exactly 0, and the fault cannot act."""
    status, _ = run(tmp_path, "--inject", "relu-grad-at-zero", "--steps", "5")
    assert status == 0


def test_softmax_without_max_shift_is_harmless_on_normalised_inputs(tmp_path):
    """Below log(max float) the unshifted softmax is the same function, to rounding."""
    status, _ = run(tmp_path, "--inject", "softmax-without-max-shift", "--steps", "5")
    assert status == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inject", "adam-no-bias-correction", "--optimizer", "sgd"], "needs --optimizer adam"),
        (["--inject", "momentum-zero-init-dampened", "--optimizer", "momentum"], "needs --dampening > 0"),
        (["--inject", "transposed-weight-grad"], "square Linear layers"),
        (["--inject", "dropout-not-inverted"], "needs --dropout > 0"),
        (["--inject", "missing-zero-grad", "--steps", "1"], "--steps >= 2"),
        (["--inject", "adam-eps-inside-root", "--variant", "adam_eps_hat"], "cannot be combined with --variant"),
    ],
)
def test_a_fault_that_cannot_act_is_refused_before_anything_is_written(args, message, tmp_path, capsys):
    status = main(["run", *args, "--logdir", str(tmp_path / "runs"), "--no-tensorboard"])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


def test_unknown_fault_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--inject", "no-such-fault"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_faults_lists_every_fault_with_its_fix_arguments_and_location(capsys):
    assert main(["faults"]) == 0
    out = capsys.readouterr().out
    for name, fault in CATALOG.items():
        assert f"\n{name}\n  {fault.description}\n  fix:       {fault.fix}\n" in out
        step, stage, tensor = fault.expected
        assert f"step {step}, {stage}, {tensor}" in out
    assert "--weights zero_bias_weights.npz" in out


def test_faults_files_writes_the_inputs_and_lists_their_paths(tmp_path, capsys):
    folder = tmp_path / "inputs"
    assert main(["faults", "--files", str(folder)]) == 0
    out = capsys.readouterr().out
    for key in FILES:
        assert (folder / f"{key}.npz").is_file()
        assert str(folder / f"{key}.npz") in out


@pytest.mark.slow
def test_table_detects_and_locates_every_fault(capsys):
    assert main(["faults", "--table"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0] == "| fault | detected | step | stage | tensor | expected |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert len(lines) == 2 + len(CATALOG)
    for line, (name, fault) in zip(lines[2:], CATALOG.items(), strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        step, stage, tensor = fault.expected
        assert cells[0] == f"`{name}`"
        assert cells[1].startswith("yes") and "ELSEWHERE" not in cells[1]
        assert cells[2:5] == [str(step), stage, f"`{tensor}`"]
        assert cells[5] == f"{step}, {stage}, `{tensor}`"
    assert f"all {len(CATALOG)} faults detected" in err


def test_table_fails_on_a_missed_or_mislocated_fault(monkeypatch, capsys):
    base = CATALOG["bias-grad-averaged"]
    catalog = {
        "mislocated": dataclasses.replace(base, name="mislocated", expected=(1, "grad", "4.weight")),
        "missed": dataclasses.replace(base, name="missed", override=faults.NONE),
    }
    monkeypatch.setattr(faults_cli, "CATALOG", catalog)
    monkeypatch.setattr(faults, "CATALOG", catalog)  # what --inject accepts and applies
    monkeypatch.setattr(faults.catalog, "CATALOG", catalog)  # what checks that it can act
    assert main(["faults", "--table"]) == 1
    out, err = capsys.readouterr()
    rows = out.strip().splitlines()[2:]
    assert "yes, but ELSEWHERE" in rows[0] and "| 4.bias" not in rows[0] and "`4.bias`" in rows[0]
    assert "| NO |" in rows[1]
    assert "2 of 2 faults missed or mislocated: mislocated, missed" in err
