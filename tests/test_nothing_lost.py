"""Nothing the user has is lost, and nothing is started that cannot finish: every output path, the
memory a model needs and the float32 range of the inputs are checked before the run (exit 2, one line)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compare import exits
from compare.cli.main import main
from compare.inputs import safety


def run(tmp_path, *argv: str) -> int:
    return main(["run", "--steps", "2", "--no-tensorboard", *argv])


@pytest.fixture
def earlier_run(tmp_path):
    assert run(tmp_path, "--logdir", str(tmp_path / "runs"), "--run-name", "first") == 0
    return tmp_path / "runs" / "first"


def test_outputs_inside_an_earlier_run_are_refused(tmp_path, earlier_run, capsys):
    before = sorted(p.name for p in earlier_run.iterdir())
    cases = [
        ("--logdir", str(earlier_run)),
        ("--json", str(earlier_run / "x.json")),
        ("--save-weights", str(earlier_run / "w.npz")),
    ]
    for flag, path in cases:
        argv = ["--logdir", str(tmp_path / "runs"), flag, path] if flag != "--logdir" else [flag, path]
        assert run(tmp_path, *argv) == 2, flag
        err = capsys.readouterr().err
        assert f"inside the earlier run {earlier_run}" in err and "Traceback" not in err
    assert sorted(p.name for p in earlier_run.iterdir()) == before


def test_an_output_that_is_an_input_file_is_refused(tmp_path, capsys):
    weights = tmp_path / "w.npz"
    assert run(tmp_path, "--logdir", str(tmp_path / "runs"), "--save-weights", str(weights)) == 0
    content = weights.read_bytes()
    argv = ["--logdir", str(tmp_path / "runs"), "--weights", str(weights)]
    assert run(tmp_path, *argv, "--json", str(weights)) == 2
    assert "is the --weights input file" in capsys.readouterr().err
    assert weights.read_bytes() == content


def test_batchnorm_weights_saved_by_a_run_load_back(tmp_path):
    weights = tmp_path / "w.npz"
    assert run(tmp_path, "--batchnorm", "--logdir", str(tmp_path / "runs"), "--save-weights", str(weights)) == 0
    assert run(tmp_path, "--batchnorm", "--logdir", str(tmp_path / "runs"), "--weights", str(weights)) == 0


def test_a_model_that_cannot_fit_in_memory_is_refused_before_allocating(tmp_path, capsys):
    argv = ["--layers", "2,1000000,1000000,3", "--logdir", str(tmp_path / "runs")]
    assert run(tmp_path, *argv) == 2
    assert "GiB" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_values_that_overflow_in_float32_are_refused(tmp_path, capsys):
    X = np.random.default_rng(0).standard_normal((40, 2))
    X[3, 1] = 1e39  # finite in float64, inf in float32
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    base = ["--data", str(tmp_path / "d.npz"), "--logdir", str(tmp_path / "runs")]
    assert run(tmp_path, *base, "--dtype", "float32") == 2
    assert "beyond float32's range" in capsys.readouterr().err


def test_one_feature_with_batchnorm_is_refused_with_the_reason(tmp_path, capsys):
    X = np.random.default_rng(0).standard_normal((40, 1))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    assert run(tmp_path, "--data", str(tmp_path / "d.npz"), "--batchnorm", "--logdir", str(tmp_path / "runs")) == 2
    assert "fan-in 1" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_overflow_warnings_are_one_line_before_the_verdict_line(tmp_path, capsys):
    argv = ["--optimizer", "sgd", "--lr", "1e6", "--loss", "mse", "--keep-going", "--logdir", str(tmp_path)]
    assert main(["run", "--steps", "40", "--no-tensorboard", *argv]) == exits.DIVERGED
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines()[1:] if "warning" in line.lower()]) == 1  # [0]: the header
    (run_dir,) = tmp_path.iterdir()
    printed = (run_dir / "verdict.txt").read_text().splitlines()  # what was printed, before wrapping
    assert "run-time warnings" in printed[-2] and printed[-1].startswith("DIVERGED: ")  # the verdict line after it
    assert out.rstrip().endswith(printed[-1].split()[-1])


@pytest.mark.slow
def test_ctrl_c_early_leaves_no_empty_run_directory(tmp_path):
    """SIGINT as soon as the runs folder appears (the run directory is being made, the twins built):
    exit 130, no traceback, and either no run directory or one whose report holds at least one step."""
    command = [sys.executable, "-m", "compare", "run", "--logdir", str(tmp_path / "runs"), "--steps", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "runs").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    for run_dir in (tmp_path / "runs").iterdir():
        assert json.loads((run_dir / "report.json").read_text())["steps"] >= 1


@pytest.mark.slow
def test_ctrl_c_while_torch_is_being_imported_is_one_line_and_exit_130(tmp_path):
    """The signal is sent once the process has mapped torch's library: start-up, inside ``main``."""
    command = [sys.executable, "-m", "compare", "run", "--logdir", str(tmp_path / "runs"), "--steps", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and "libtorch" not in maps.read_text():
        time.sleep(0.001)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err


@pytest.mark.slow
def test_two_ctrl_c_20_ms_apart_end_with_130_and_the_report_written(tmp_path):
    """The second signal arrives while the first's clean stop is under way (the report being written, or
    the process on its way out): it must neither lose the report nor end the process by the signal."""
    command = [sys.executable, "-m", "compare", "run", "--logdir", str(tmp_path), "--steps", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # the run's one-line description: the twins are being built
    process.stdout.readline()  # the first step is done
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, (process.returncode, err)
    (run_dir,) = tmp_path.iterdir()
    document = json.loads((run_dir / "report.json").read_text())
    assert document["steps"] >= 1 and document["complete"] is False


@pytest.mark.slow
def test_ctrl_c_says_where_the_partial_report_went_and_ends_on_incomplete(tmp_path):
    command = [sys.executable, "-m", "compare", "run", "--logdir", str(tmp_path), "--steps", "100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.readline()  # the run's one-line description
    process.stdout.readline()  # the first step is done
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    (run_dir,) = tmp_path.iterdir()
    assert process.returncode == 130 and f"the partial report is {run_dir / 'report.json'}" in err, err
    assert out.splitlines()[-1].startswith("INCOMPLETE: stopped after ") and out.rstrip().endswith("of 100000 steps")
    assert json.loads((run_dir / "report.json").read_text())["verdict"] == "INCOMPLETE"


def test_a_data_file_larger_than_the_memory_available_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    """The machine's memory is the environment, set small here: the archive's own headers are read."""
    X = np.random.default_rng(0).standard_normal((40, 2))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    monkeypatch.setattr(safety, "available_memory", lambda: 1000)  # bytes; the arrays take about 1 KiB
    assert run(tmp_path, "--data", str(tmp_path / "d.npz"), "--logdir", str(tmp_path / "runs")) == 2
    assert "d.npz: its arrays take" in capsys.readouterr().err


def test_check_and_experiment_outputs_are_checked_as_runs_are(tmp_path, earlier_run, capsys):
    """``check`` and ``experiment`` go through the same output check: never onto the checked file, never
    inside an earlier run, and nothing written when refused."""
    mine = tmp_path / "mine.py"
    mine.write_text("x = 1\n")
    cases = [  # (argv, what the one line says)
        (["check", str(mine), "--json", str(mine)], "is the FILE.py input file"),
        (["check", str(mine), "--json", str(earlier_run / "c.json")], f"inside the earlier run {earlier_run}"),
        (["experiment", "graph", "--json", str(earlier_run / "e.json")], f"inside the earlier run {earlier_run}"),
    ]
    before = sorted(p.name for p in earlier_run.iterdir())
    for argv, said in cases:
        assert main([*argv, "--logdir", str(tmp_path / "other")]) == 2, argv
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, argv
    assert mine.read_text() == "x = 1\n"
    assert sorted(p.name for p in earlier_run.iterdir()) == before
    assert not (tmp_path / "other").exists()
