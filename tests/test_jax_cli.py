"""``backprop-parity run --sides A,B`` and ``--framework-defaults``: the JAX side through the command line,
its TensorBoard curves under its own name, and every bad input as one line and exit 2 before anything runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

from conftest import invoke


def run_argv(logdir: Path, *args: str, steps: int = 4) -> list[str]:
    return ["run", "--steps", str(steps), "--logdir", str(logdir), "--layers", "2,6,3", *args]


def test_manual_against_jax_passes_and_tensorboard_names_the_jax_side(tmp_path, capsys):
    args = run_argv(tmp_path, "--sides", "manual,jax", "--json", str(tmp_path / "r.json"))
    status, out, err = invoke(args, capsys)
    assert status == 0, out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["config"]["sides"] == ["manual", "jax"]
    run_dir = next(path for path in tmp_path.iterdir() if path.is_dir())
    assert {"manual", "jax"} <= {path.name for path in run_dir.iterdir()}
    assert any((run_dir / "jax").glob("events.out.tfevents.*"))  # jax's own curves, beside manual's
    assert "torch" not in {path.name for path in run_dir.iterdir()}


@pytest.mark.parametrize("sides", ["torch,jax", "jax,torch"])
def test_torch_against_jax_passes_whichever_order(tmp_path, capsys, sides):
    status, out, err = invoke([*run_argv(tmp_path, "--sides", sides, "--no-tensorboard")], capsys)
    assert status == 0, out + err
    assert "PASS" in out


BAD = [
    (["--sides", "manual,manual"], "--sides must be two different sides"),
    (["--sides", "manual,numpy"], "--sides must be two different sides"),
    (["--sides", "manual,torch,jax"], "--sides must be two different sides"),
    (["--sides", "manual,jax", "--optimizer", "asgd"], "optax has no ASGD"),
    (["--sides", "manual,jax", "--optimizer", "nadam"], "no momentum schedule"),
    (["--sides", "manual,jax", "--optimizer", "adagrad"], "give --eps 0"),
    (["--framework-defaults"], "needs jax among --sides"),
    (["--sides", "torch,jax", "--framework-defaults", "--eps", "1e-3"], "drop --eps"),
    (["--sides", "torch,jax", "--variant", "classic_momentum"], "--variant acts on the manual side"),
    (["--sides", "torch,jax", "--inject", "transposed-weight-grad"], "--inject acts on the manual side"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_sides_input_is_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, args, message):
    status, _, err = invoke(run_argv(tmp_path, *args), capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # no run directory written


@pytest.mark.parametrize(
    ("optimizer", "status", "named"),
    [
        ("adam", 0, "optax's defaults compute torch's rule"),
        ("adamw", 1, "weight_decay=1e-2"),
        ("rmsprop", 1, "eps_in_sqrt=False"),
        ("adagrad", 1, "initial_accumulator_value=0.1, eps=0"),
    ],
)
def test_framework_defaults_name_the_convention_and_its_keywords(tmp_path, capsys, optimizer, status, named):
    args = run_argv(tmp_path, "--sides", "torch,jax", "--framework-defaults", "--optimizer", optimizer)
    code, out, err = invoke([*args, "--no-tensorboard"], capsys)
    assert code == status, out + err
    assert named in out


def test_without_jax_the_jax_side_is_one_line_and_exit_2(tmp_path):
    """A ``jax`` package that fails to import stands first on the path, as where JAX is not installed."""
    shadow = tmp_path / "shadow" / "jax"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'jax'\")\n")
    repository = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{shadow.parent}:{repository}", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "compare", *run_argv(tmp_path / "runs", "--sides", "manual,jax")]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=repository)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "needs JAX" in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
