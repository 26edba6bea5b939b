"""The command-line contract: exit 0 parity holds, 1 parity broken, 2 bad input or usage with
exactly one line on stderr and no traceback; the JSON report; run directories; weights and data files.

Most tests call ``compare.cli.main`` in-process; a few run the real programs in a subprocess.
Every run writes under pytest's ``tmp_path``, never into the repository's ``runs/``.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compare import exits
from conftest import invoke

STAGES = ("forward", "loss", "grad", "state", "param")
# The flags the README promises; ``--help`` must mention every one.
README_FLAGS = (
    "--optimizer --lr --momentum --dampening --nesterov --betas --eps --weight-decay --amsgrad "
    "--layers --activation --loss --dataset --data --weights --save-weights --steps --batch-size "
    "--seed --dtype --logdir --run-name --json --no-tensorboard --keep-going --alpha --centered --lr-decay "
    "--initial-accumulator-value --lr-schedule --clip-grad-norm --variant --dropout --batchnorm "
    "--device --world-size --dist-timeout"
).split()
LOSS_RTOL = {"float64": 1e-10, "float32": 1e-5}  # manual vs torch loss, per step, in the JSON report


def run_argv(logdir: Path, *args: str, steps: int = 5) -> list[str]:
    """A small, quiet run into ``logdir``; later flags in ``args`` override these."""
    return ["run", "--steps", str(steps), "--no-tensorboard", "--logdir", str(logdir), *args]


def tree_snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: relative path → (bytes, mtime in ns)."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def run_dirs(logdir: Path) -> list[Path]:
    return sorted(path for path in logdir.iterdir() if path.is_dir()) if logdir.is_dir() else []


def write_data(path: Path, X: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, X=X, y=y)
    return str(path)


# --- bad input -------------------------------------------------------------------------------

# Good data for the bad-input table: N = 40 examples, D = 2 features, labels 0..2.
N, D, C = 40, 2, 3
LAYERS = f"{D},4,{C}"  # parameters 0.weight (4, 2), 0.bias (4,), 2.weight (3, 4), 2.bias (3,)


def good_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "0.weight": rng.standard_normal((4, D)),
        "0.bias": rng.standard_normal(4),
        "2.weight": rng.standard_normal((C, 4)),
        "2.bias": rng.standard_normal(C),
    }


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Input files, good and broken, for the bad-input table's ``{name}`` placeholders."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "inputs"
    folder.mkdir()
    X = rng.standard_normal((N, D))
    y = np.arange(N) % C
    paths = {"tmp": str(tmp_path), "missing": str(folder / "missing.npz")}
    paths["data"] = write_data(folder / "data.npz", X, y)
    (folder / "corrupt.npz").write_bytes(rng.bytes(4096))
    paths["corrupt"] = str(folder / "corrupt.npz")
    whole = Path(paths["data"]).read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    paths["truncated"] = str(folder / "truncated.npz")
    objects = np.empty(N, dtype=object)
    objects[:] = [{"label": int(label)} for label in y]
    paths["object"] = write_data(folder / "object.npz", X, objects)  # np.savez pickles it
    X_nan = X.copy()
    X_nan[7, 1] = np.nan
    paths["nan"] = write_data(folder / "nan.npz", X_nan, y)
    paths["label_range"] = write_data(folder / "label_range.npz", X, np.arange(N) % (C + 2))
    np.savez(folder / "no_y.npz", X=X)
    paths["no_y"] = str(folder / "no_y.npz")
    paths["y_scalar"] = write_data(folder / "y_scalar.npz", X, np.array(1))
    paths["y_no_columns"] = write_data(folder / "y_no_columns.npz", X, np.zeros((N, 0)))
    paths["empty"] = write_data(folder / "empty.npz", np.zeros((0, D)), np.zeros(0, dtype=np.int64))
    paths["x_strings"] = write_data(folder / "x_strings.npz", np.full((N, D), "a"), y)
    paths["y_float_labels"] = write_data(folder / "y_float_labels.npz", X, (np.arange(N) % C).astype(float))
    weights = good_weights(rng)
    variants = {
        "wrong_shape": {**weights, "2.weight": weights["2.weight"].T},
        "missing_key": {name: w for name, w in weights.items() if name != "2.bias"},
        "extra_key": {**weights, "4.weight": rng.standard_normal((C, C))},
        "int_weights": {**weights, "0.weight": np.ones((4, D), dtype=np.int64)},
        "nan_weights": {**weights, "0.bias": np.full(4, np.nan)},
    }
    for name, arrays in variants.items():
        np.savez(folder / f"{name}.npz", **arrays)
        paths[name] = str(folder / f"{name}.npz")
    (folder / "a_file").write_text("not a folder\n")
    paths["a_file"] = str(folder / "a_file")
    return paths


# (id, arguments with {file} placeholders, words the one stderr line must contain)
BAD_INPUT = [
    ("data-empty", ["--data", "{empty}"], ["--data", "non-empty"]),
    ("data-x-strings", ["--data", "{x_strings}"], ["--data", "numbers"]),
    ("data-1d-float-labels", ["--data", "{y_float_labels}"], ["--data", "integer"]),
    ("schedule-unknown-kind", ["--lr-schedule", "linear:5"], ["--lr-schedule", "linear"]),
    ("schedule-bad-number", ["--lr-schedule", "step:ten:0.1"], ["--lr-schedule", "STEP_SIZE"]),
    ("schedule-missing-argument", ["--lr-schedule", "step:10"], ["--lr-schedule", "step"]),
    ("clip-zero", ["--clip-grad-norm", "0"], ["--clip-grad-norm"]),
    ("dropout-one", ["--dropout", "1"], ["--dropout"]),
    ("dropout-negative", ["--dropout", "-0.1"], ["--dropout"]),
    ("batchnorm-batch-of-one", ["--batchnorm", "--batch-size", "1"], ["--batchnorm", "batch"]),
    ("alpha-with-adam", ["--optimizer", "adam", "--alpha", "0.9"], ["--alpha", "adam"]),
    ("lr-decay-with-sgd", ["--optimizer", "sgd", "--lr-decay", "0.1"], ["--lr-decay", "sgd"]),
    ("variant-with-other-optimizer", ["--variant", "adam_eps_hat", "--optimizer", "sgd"], ["--variant", "adam"]),
    ("variant-unknown", ["--variant", "nadam"], ["--variant", "nadam"]),
    ("variant-foreign-flag", ["--variant", "classic_momentum", "--dampening", "0.1"], ["--dampening", "classic"]),
    ("bce-three-classes", ["--loss", "bce", "--dataset", "spiral"], ["bce"]),
    ("bce-wide-output", ["--loss", "bce", "--dataset", "xor", "--layers", "2,8,2"], ["bce"]),
    ("rmsprop-negative-alpha", ["--optimizer", "rmsprop", "--alpha", "-1"], ["alpha"]),
    ("unknown-optimizer", ["--optimizer", "lbfgs"], ["--optimizer", "lbfgs"]),
    ("unknown-activation", ["--activation", "gelu"], ["--activation", "gelu"]),
    ("unknown-loss", ["--loss", "hinge"], ["--loss", "hinge"]),
    ("zero-width-layer", ["--layers", "2,0,3"], ["--layers", "at least 1"]),
    ("non-integer-layers", ["--layers", "2,x,3"], ["--layers", "integers"]),
    ("float-layers", ["--layers", "2,8.5,3"], ["--layers", "integers"]),
    ("one-layer-width", ["--layers", "2"], ["--layers", "at least"]),
    ("layers-mismatch-data", ["--layers", "3,8,3"], ["--layers", "features"]),
    ("negative-steps", ["--steps", "-1"], ["--steps"]),
    ("zero-steps", ["--steps", "0"], ["--steps"]),
    ("too-many-steps", ["--steps", "1000001"], ["--steps"]),
    ("non-integer-steps", ["--steps", "ten"], ["--steps"]),
    ("negative-seed", ["--seed", "-1"], ["--seed"]),
    ("batch-size-zero", ["--data", "{data}", "--batch-size", "0"], ["--batch-size"]),
    (
        "batch-size-over-data",
        ["--data", "{data}", "--batch-size", str(N + 1), "--val-fraction", "0"],
        ["--batch-size", str(N)],
    ),
    ("batch-size-over-training-split", ["--data", "{data}", "--batch-size", str(N)], ["--batch-size", "training"]),
    ("val-fraction-one", ["--val-fraction", "1"], ["--val-fraction"]),
    ("log-every-zero", ["--log-every", "0"], ["--log-every"]),
    ("data-missing-file", ["--data", "{missing}"], ["--data", "no such file"]),
    ("data-corrupt", ["--data", "{corrupt}"], ["--data", "not an .npz"]),
    ("data-truncated", ["--data", "{truncated}"], ["--data", "cannot read"]),
    ("data-object-array", ["--data", "{object}"], ["--data", "pickle"]),
    ("data-nan", ["--data", "{nan}"], ["--data", "NaN"]),
    ("data-labels-out-of-range", ["--data", "{label_range}", "--layers", LAYERS], ["label", "out of range"]),
    ("data-missing-y", ["--data", "{no_y}"], ["--data", "'y'"]),
    ("data-and-dataset", ["--data", "{data}", "--dataset", "xor"], ["--dataset", "--data"]),
    ("weights-missing-file", ["--weights", "{missing}", "--layers", LAYERS], ["--weights", "no such file"]),
    ("weights-wrong-shape", ["--weights", "{wrong_shape}", "--layers", LAYERS], ["--weights", "'2.weight'"]),
    ("weights-missing-key", ["--weights", "{missing_key}", "--layers", LAYERS], ["--weights", "'2.bias'"]),
    ("weights-extra-key", ["--weights", "{extra_key}", "--layers", LAYERS], ["--weights", "'4.weight'"]),
    ("weights-integer", ["--weights", "{int_weights}", "--layers", LAYERS], ["--weights", "'0.weight'"]),
    ("weights-nan", ["--weights", "{nan_weights}", "--layers", LAYERS], ["--weights", "'0.bias'", "NaN"]),
    ("weights-corrupt", ["--weights", "{corrupt}", "--layers", LAYERS], ["--weights", "not an .npz"]),
    ("betas-one-number", ["--betas", "0.9"], ["--betas"]),
    ("betas-three-numbers", ["--betas", "0.9,0.99,0.999"], ["--betas"]),
    ("betas-not-numbers", ["--betas", "a,b"], ["--betas"]),
    ("betas-out-of-range", ["--betas", "0.9,1.5"], ["beta"]),
    ("momentum-with-adam", ["--optimizer", "adam", "--momentum", "0.9"], ["--momentum", "does not apply"]),
    ("betas-with-sgd", ["--optimizer", "sgd", "--betas", "0.9,0.99"], ["--betas", "does not apply"]),
    ("amsgrad-with-momentum", ["--optimizer", "momentum", "--amsgrad"], ["--amsgrad", "does not apply"]),
    ("nesterov-with-dampening", ["--optimizer", "momentum", "--nesterov", "--dampening", "0.5"], ["dampening"]),
    ("nesterov-without-momentum", ["--optimizer", "sgd", "--nesterov"], ["nesterov"]),
    ("negative-lr", ["--lr", "-0.1"], ["learning rate"]),
    ("nan-lr", ["--lr", "nan"], ["--lr", "finite"]),
    ("negative-weight-decay", ["--weight-decay", "-1"], ["weight_decay"]),
    ("run-name-slash", ["--run-name", "a/b"], ["--run-name", "slash"]),
    ("run-name-dot-dot", ["--run-name", ".."], ["--run-name"]),
    ("json-missing-folder", ["--json", "{tmp}/no/such/folder/report.json"], ["--json", "does not exist"]),
    ("json-is-a-folder", ["--json", "{tmp}"], ["--json", "directory"]),
    ("save-weights-missing-folder", ["--save-weights", "{tmp}/no/such/w.npz"], ["--save-weights", "does not exist"]),
    ("logdir-under-a-file", ["--logdir", "{a_file}/runs"], ["--logdir"]),
    ("logdir-under-a-file-named", ["--logdir", "{a_file}/runs", "--run-name", "r"], ["--logdir"]),
    ("logdir-is-a-file", ["--logdir", "{a_file}"], ["--logdir"]),
    ("logdir-is-a-file-named", ["--logdir", "{a_file}", "--run-name", "r"], ["--logdir"]),
    ("data-path-with-newline", ["--data", "{tmp}/no\nsuch.npz"], ["--data", "no such file"]),
    ("data-y-scalar", ["--data", "{y_scalar}"], ["--data", "y"]),
    ("data-y-no-columns", ["--data", "{y_no_columns}", "--loss", "mse"], ["--data", "y"]),
]


def case_id(case) -> str:
    return case.id if hasattr(case, "id") else case[0]


@pytest.mark.parametrize(("name", "args", "words"), BAD_INPUT, ids=[case_id(case) for case in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, args, words, files, tmp_path, capsys):
    logdir = tmp_path / "runs"
    a_file_before = Path(files["a_file"]).read_bytes()
    status, _, err = invoke(run_argv(logdir, *(arg.format(**files) for arg in args)), capsys)
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("backprop-parity") and "error:" in lines[0], err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert not logdir.exists() or not any(logdir.iterdir()), "a bad input left something in the logdir"
    assert Path(files["a_file"]).read_bytes() == a_file_before


def test_existing_run_name_is_refused_and_left_untouched(tmp_path, capsys):
    logdir = tmp_path / "runs"
    status, _, err = invoke(run_argv(logdir, "--run-name", "taken"), capsys)
    assert status == 0, err
    before = tree_snapshot(logdir)
    assert "taken/report.json" in before

    status, _, err = invoke(run_argv(logdir, "--run-name", "taken", "--optimizer", "sgd"), capsys)
    assert status == 2
    assert len(err.splitlines()) == 1, err
    assert "taken" in err and "already exists" in err
    assert tree_snapshot(logdir) == before
    assert run_dirs(logdir) == [logdir / "taken"]


# --- passing runs and the JSON report -----------------------------------------------------------

# (id, arguments, expected config entries, expected hyperparameters)
REPORT_CASES = [
    (
        "adam-float64",
        ["--optimizer", "adam", "--lr", "0.02", "--betas", "0.8,0.99", "--amsgrad", "--layers", "2,8,3"],
        {"optimizer": "adam", "dtype": "float64", "layers": [2, 8, 3], "seed": 0, "activation": "relu"},
        {"lr": 0.02, "betas": [0.8, 0.99], "eps": 1e-8, "weight_decay": 0.0, "amsgrad": True},
    ),
    (
        "momentum-float32",
        ["--optimizer", "momentum", "--nesterov", "--weight-decay", "0.01", "--dtype", "float32", "--seed", "3"],
        {"optimizer": "momentum", "dtype": "float32", "layers": [2, 16, 16, 3], "seed": 3},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True},
    ),
    (
        "sgd-tanh-mse-xor",
        ["--optimizer", "sgd", "--momentum", "0.5", "--activation", "tanh", "--loss", "mse", "--dataset", "xor"],
        {"optimizer": "sgd", "dtype": "float64", "activation": "tanh", "loss": "mse", "dataset": "xor"},
        {"lr": 0.1, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    ),
]


@pytest.mark.parametrize(("name", "args", "config", "hyperparameters"), REPORT_CASES, ids=[c[0] for c in REPORT_CASES])
def test_json_report(name, args, config, hyperparameters, tmp_path, capsys):
    logdir, report_path, steps = tmp_path / "runs", tmp_path / "report.json", 12
    status, out, err = invoke(run_argv(logdir, *args, "--json", str(report_path), steps=steps), capsys)
    assert status == 0, err
    assert err == ""
    assert "PASS" in out

    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert report["steps"] == steps
    assert report["first_failure"] is None
    assert set(report["worst"]) == set(STAGES)
    for stage, worst in report["worst"].items():
        assert isinstance(worst["max_abs"], float) and isinstance(worst["max_rel"], float), stage
        assert 0.0 <= worst["max_rel"] <= report["tolerances"][stage]["max_rel"], stage
    manual, torch_ = report["losses"]["manual"], report["losses"]["torch"]
    assert len(manual) == len(torch_) == steps
    np.testing.assert_allclose(manual, torch_, rtol=LOSS_RTOL[report["config"]["dtype"]], atol=0)

    resolved = report["config"]
    assert resolved["steps"] == steps and resolved["batch_size"] == 32 and resolved["weights"] is None
    assert {key: resolved[key] for key in config} == config
    assert resolved["hyperparameters"] == hyperparameters

    run_dir = Path(report["run_dir"])
    assert run_dir.is_dir() and run_dir.parent == logdir
    assert (run_dir / "report.json").read_bytes() == report_path.read_bytes()


def test_json_replaces_an_existing_file(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    report_path.write_text("stale\n")
    status, _, err = invoke(run_argv(tmp_path / "runs", "--json", str(report_path)), capsys)
    assert status == 0, err
    assert json.loads(report_path.read_text())["passed"] is True


def test_tensorboard_run_writes_event_files(tmp_path, capsys):
    logdir = tmp_path / "runs"
    status, _, err = invoke(["run", "--steps", "5", "--logdir", str(logdir), "--run-name", "tb"], capsys)
    assert status == 0, err
    for side in ("manual", "torch", "difference", "parity/grad", "summary"):
        assert list((logdir / "tb" / side).glob("events.out.tfevents.*")), side
    assert (logdir / "tb" / "report.json").is_file()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # NumPy reports the overflow it computes
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_run_whose_weights_overflow_ends_with_its_verdict(tmp_path, capsys):
    """SGD at lr 1e300 turns the weights into inf and NaN within a few steps: the run still logs every
    step (histograms of the finite values only) and ends with a DIVERGED verdict (both sides alike), exit 4,
    not a traceback."""
    logdir = tmp_path / "runs"
    argv = ["run", "--optimizer", "sgd", "--lr", "1e300", "--steps", "6", "--log-every", "2", "--keep-going"]
    status, out, err = invoke([*argv, "--logdir", str(logdir), "--run-name", "diverged"], capsys)
    assert status == exits.DIVERGED, err
    last = out[out.rindex("\nDIVERGED: ") + 1 :]  # the last line, wrapped: its continuations are indented
    assert last.startswith("DIVERGED: both sides alike")
    assert all(line.startswith("  ") for line in last.splitlines()[1:])
    assert "FAIL" not in out
    report = json.loads((logdir / "diverged" / "report.json").read_text())
    assert report["complete"] is True and report["passed"] is False and report["verdict"] == "DIVERGED"
    assert "nonfinite" in json.dumps(report)  # the weights did overflow: the test exercises what it says


def test_default_run_names_never_collide(tmp_path, capsys):
    logdir = tmp_path / "runs"
    status, _, err = invoke(run_argv(logdir), capsys)
    assert status == 0, err
    [first] = run_dirs(logdir)
    first_files = tree_snapshot(first)

    status, _, err = invoke(run_argv(logdir), capsys)
    assert status == 0, err
    dirs = run_dirs(logdir)
    assert len(dirs) == 2 and first in dirs
    assert tree_snapshot(first) == first_files, "the second run touched the first run's directory"
    for run_dir in dirs:
        assert re.fullmatch(r"\d{8}-\d{6}-adam(-2)?", run_dir.name)  # the defaults: only the optimizer is named
        assert json.loads((run_dir / "report.json").read_text())["run_dir"] == str(run_dir)


# --- weights and data files --------------------------------------------------------------------

SAVED_SHAPES = {
    "0.weight": (8, 2),
    "0.bias": (8,),
    "2.weight": (8, 8),
    "2.bias": (8,),
    "4.weight": (3, 8),
    "4.bias": (3,),
}


def test_save_weights_then_load_them(tmp_path, capsys):
    logdir, saved, report_path = tmp_path / "runs", tmp_path / "final.npz", tmp_path / "again.json"
    status, _, err = invoke(run_argv(logdir, "--layers", "2,8,8,3", "--save-weights", str(saved)), capsys)
    assert status == 0, err
    with np.load(saved, allow_pickle=False) as archive:
        weights = {key: archive[key] for key in archive.files}
    assert list(weights) == list(SAVED_SHAPES)
    assert {key: w.shape for key, w in weights.items()} == SAVED_SHAPES
    assert all(w.dtype == np.float64 and np.all(np.isfinite(w)) for w in weights.values())
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left behind"

    args = ["--layers", "2,8,8,3", "--weights", str(saved), "--json", str(report_path)]
    status, out, err = invoke(run_argv(logdir, *args), capsys)
    assert status == 0, err
    assert "PASS" in out
    assert json.loads(report_path.read_text())["config"]["weights"] == str(saved)


def test_weights_file_sets_the_starting_point(files, tmp_path, capsys):
    """Full-batch runs from one --weights file start at the same loss whatever the seed; the
    seed's own initialisation starts elsewhere."""
    weights = tmp_path / "init.npz"
    np.savez(weights, **good_weights(np.random.default_rng(5)))
    first_losses = {}
    for label, args in [
        ("seed1", ["--weights", str(weights), "--seed", "1"]),
        ("seed2", ["--weights", str(weights), "--seed", "2"]),
        ("init", ["--seed", "1"]),
    ]:
        report_path = tmp_path / f"{label}.json"
        common = ["--data", files["data"], "--layers", LAYERS, "--batch-size", str(N), "--val-fraction", "0"]
        common += ["--json", str(report_path)]
        status, _, err = invoke(run_argv(tmp_path / "runs", *common, *args), capsys)
        assert status == 0, err
        first_losses[label] = json.loads(report_path.read_text())["losses"]["manual"][0]
    assert first_losses["seed1"] == pytest.approx(first_losses["seed2"], rel=1e-12)
    assert first_losses["init"] != pytest.approx(first_losses["seed1"], rel=1e-3)


# (id, X kind, y kind, extra arguments, expected layers); X is (48, 3), labels are 0..3, targets (48, 2)
USER_DATA = [
    ("labels", "float", "labels", [], [3, 16, 16, 4]),
    ("labels-int-X", "int", "labels", ["--layers", "3,5,4", "--batch-size", "48", "--val-fraction", "0"], [3, 5, 4]),
    ("mse-targets", "float", "targets", ["--loss", "mse"], [3, 16, 16, 2]),
    ("mse-on-labels", "float", "labels", ["--loss", "mse", "--activation", "sigmoid"], [3, 16, 16, 4]),
]


@pytest.mark.parametrize(("name", "x_kind", "y_kind", "args", "layers"), USER_DATA, ids=[c[0] for c in USER_DATA])
def test_user_data(name, x_kind, y_kind, args, layers, tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((48, 3)) if x_kind == "float" else rng.integers(-3, 4, size=(48, 3))
    y = np.arange(48) % 4 if y_kind == "labels" else rng.standard_normal((48, 2))
    path = write_data(tmp_path / "mine.npz", X, y)
    report_path = tmp_path / "report.json"
    status, out, err = invoke(run_argv(tmp_path / "runs", "--data", path, "--json", str(report_path)) + args, capsys)
    assert status == 0, err
    assert "PASS" in out
    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert report["config"]["dataset"] == path
    assert report["config"]["layers"] == layers


# --- the real programs, in a subprocess --------------------------------------------------------

CONSOLE_SCRIPT = str(Path(sys.executable).parent / "backprop-parity")
LAUNCHERS = [("python-m", [sys.executable, "-m", "compare"]), ("console-script", [CONSOLE_SCRIPT])]


def launch(command: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("command", [c[1] for c in LAUNCHERS], ids=[c[0] for c in LAUNCHERS])
def test_program_passes(command, tmp_path):
    done = launch(command, *run_argv(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr
    assert "PASS" in done.stdout
    assert len(run_dirs(tmp_path / "runs")) == 1


def test_help_lists_every_flag():
    done = launch(LAUNCHERS[0][1], "run", "--help")
    assert done.returncode == 0, done.stderr
    missing = [flag for flag in README_FLAGS if flag not in done.stdout]
    assert missing == []


BAD_PROGRAM_RUNS = [
    ("zero-width-layer", ["--layers", "2,0,3"], "--layers"),
    ("unknown-optimizer", ["--optimizer", "lbfgs"], "--optimizer"),
    ("logdir-is-a-file", ["--logdir", "{a_file}"], "--logdir"),
]


@pytest.mark.parametrize(("name", "args", "word"), BAD_PROGRAM_RUNS, ids=[case_id(c) for c in BAD_PROGRAM_RUNS])
def test_program_bad_input(name, args, word, files, tmp_path):
    done = launch(LAUNCHERS[0][1], *run_argv(tmp_path / "runs", *(arg.format(**files) for arg in args)))
    assert "Traceback" not in done.stderr
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert word in done.stderr
    assert run_dirs(tmp_path / "runs") == []


def test_a_reader_that_goes_away_ends_the_run_quietly_with_its_report(tmp_path):
    """`backprop-parity run | head -1`: the pipe closes after one line; no traceback, exit 128 + SIGPIPE,
    and the run directory still gets the report of the steps done."""
    argv = [sys.executable, "-m", "compare", "run", "--steps", "200", "--logdir", str(tmp_path)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()  # the header
    assert process.stdout.readline().startswith(b"step      1")  # the next line comes at step 20
    process.stdout.close()
    status = process.wait(timeout=120)
    err = process.stderr.read().decode()
    assert status == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    (run_dir,) = run_dirs(tmp_path)
    document = json.loads((run_dir / "report.json").read_text())
    assert not document["complete"] and document["steps"] >= 1
