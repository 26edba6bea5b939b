"""``backprop-parity experiment``: each experiment at reduced size, its conclusion asserted from the
numbers it measured, and parity held throughout; the command's contract (list, bad input, exit 1 when
the twins disagree); the event files read back with TensorBoard's own reader; the bundled data.

Reduced sizes keep this file well under a minute on 2 cores; the thresholds come from the math
named next to each, with the margin measured at these sizes noted.
"""

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)

from compare.core.tolerances import tolerance
from compare.experiments import EXPERIMENTS, datasets, graph
from compare.experiments.base import ParityError, Session
from compare.experiments.optimizers import Params as OptimizersParams
from conftest import invoke
from manual import layers
from manual.optim import OPTIMIZERS

TOLERANCE = tolerance("float64", "grad").max_rel
FLOAT32 = float(2 * np.finfo(np.float32).eps)  # TensorBoard stores scalars as float32


def run_experiment(name: str, tmp_path: Path | None = None, **sizes) -> tuple[dict, Session]:
    """The experiment at ``sizes`` (its other settings at their defaults), in-process; event files
    only when ``tmp_path`` is given."""
    experiment = EXPERIMENTS[name]
    session = Session(name, tmp_path, io.StringIO(), tensorboard=tmp_path is not None)
    outcome = experiment.run(experiment.params(**sizes), session)
    return outcome.numbers, session


def assert_parity_held(session: Session, steps: int) -> None:
    """Every sub-run compared ``steps`` lockstep steps in all, each stage's worst within tolerance."""
    assert sum(entry.steps for entry in session.parity) == steps
    for entry in session.parity:
        assert entry.worst and max(entry.worst.values()) <= TOLERANCE, entry
        assert entry.measured_worst <= TOLERANCE, entry


def scalars(run_dir: Path) -> dict[str, list]:
    events = EventAccumulator(str(run_dir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


# --- the experiments, each at reduced size ---------------------------------------------------------


def test_graph_gives_the_lecture_numbers_and_torch_agrees():
    numbers, session = run_experiment("graph")
    # deep-learning-from-scratch §5.3-5.4: the bill and every gradient of it
    expected = {
        "apple/price": 220.0,
        "apple/dprice/dapple_price": 2.2,
        "apple/dprice/dapple_count": 110.0,
        "apple/dprice/dtax": 200.0,
        "apple_orange/price": 715.0,
        "apple_orange/dprice/dapple_price": 2.2,
        "apple_orange/dprice/dapple_count": 110.0,
        "apple_orange/dprice/dorange_price": 3.3,
        "apple_orange/dprice/dorange_count": 165.0,
        "apple_orange/dprice/dtax": 650.0,
        "composite/z": 9.0,
        "composite/dz/dx": 6.0,  # 2t · 1 at t = 3
        "composite/dz/dy": 6.0,
    }
    assert {key: numbers[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    assert len(session.parity) == len(graph.GRAPHS)
    assert all(entry.measured_worst <= TOLERANCE and entry.measured > 0 for entry in session.parity)


@pytest.mark.parametrize(
    ("node", "inputs", "local"), [(graph.AddNode, (3.0, 4.0), (1.0, 1.0)), (graph.MulNode, (3.0, 4.0), (4.0, 3.0))]
)
def test_add_passes_the_gradient_on_and_multiply_swaps_its_inputs(node, inputs, local):
    instance = node()
    instance.forward(*inputs)
    assert instance.backward(2.0) == tuple(2.0 * d for d in local)


def test_a_wrong_local_gradient_is_caught_by_autograd(monkeypatch):
    monkeypatch.setattr(graph.MulNode, "backward", lambda self, dout: (dout * self.x, dout * self.y))  # not swapped
    with pytest.raises(ParityError, match="apple"):
        run_experiment("graph")


def test_vanishing_gradients_sigmoid_starves_the_first_layer(tmp_path):
    numbers, session = run_experiment("vanishing-gradients", tmp_path, steps=20, width=16)
    ratio = {a: numbers[f"{a}/ratio_median"] for a in ("sigmoid", "tanh", "relu", "leaky_relu")}
    # Through 9 hidden sigmoids the gradient is multiplied by σ' ≤ 0.25 nine times (0.25⁹ ≈ 3.8e-6),
    # while He-initialised ReLU layers pass it on at about its size: orders of magnitude apart
    # (measured: sigmoid 1.1e-6, ReLU 0.13, a factor 8e-6).
    assert ratio["sigmoid"] < 1e-3 * ratio["relu"]
    # tanh' ≤ 1 and LeakyReLU' ∈ {0.01, 1} do not shrink it so (measured 0.39 and 0.12)
    assert min(ratio["tanh"], ratio["relu"], ratio["leaky_relu"]) > 1e-2
    assert_parity_held(session, steps=4 * 20)
    sigmoid = scalars(tmp_path / "sigmoid" / "manual")
    torch_side = scalars(tmp_path / "sigmoid" / "torch")
    for tag in ("grad_norm/layer01", "grad_norm/layer10", "grad_norm/ratio_first_to_last", "loss/train"):
        assert [e.step for e in sigmoid[tag]] == [e.step for e in torch_side[tag]] == list(range(1, 21))
        np.testing.assert_allclose([e.value for e in sigmoid[tag]], [e.value for e in torch_side[tag]], rtol=FLOAT32)


def test_learning_rate_sweep_from_slow_to_diverged():
    numbers, session = run_experiment("learning-rate", steps=60)
    verdicts = {lr: numbers[f"lr_{lr:g}/verdict"] for lr in (0.003, 0.03, 0.3, 3.0, 30.0)}
    # full-batch GD on iris (measured at 60 steps): 0.003 and 0.03 are far behind, 0.3 descends
    # smoothly, 3 overshoots (loss up on 39 % of the steps), 30 blows up at the second step
    assert verdicts == {0.003: "slow", 0.03: "slow", 0.3: "good", 3.0: "oscillating", 30.0: "diverged"}
    assert numbers["lr_30/diverged_at"] == 2
    assert numbers["lr_30/last"] > 10 * numbers["lr_30/first"]
    assert numbers["lr_0.3/rises"] == 0.0  # a small enough step never raises a full-batch loss
    # parity held on every step that ran, the diverging run's included (its 2nd step was still finite)
    assert_parity_held(session, steps=4 * 60 + 2)


def test_an_overflow_on_both_sides_is_divergence_not_a_parity_failure():
    with np.errstate(over="raise", invalid="raise"):  # the experiment itself must keep the overflow quiet
        numbers, session = run_experiment("learning-rate", steps=5, lrs=(0.3, 1e308))
    assert numbers["lr_1e+308/diverged_at"] == 2
    assert numbers["lr_1e+308/verdict"] == "diverged"
    # step 2 overflowed on both sides: not compared, not counted; step 1 held
    assert [(entry.steps, entry.diverged_at) for entry in session.parity] == [(5, None), (1, 2)]
    assert_parity_held(session, steps=6)


def test_batch_size_noise_and_cost():
    numbers, session = run_experiment("batch-size", steps=60)
    full, mini, single = "full-batch", "batch-32", "single-example"
    # exact gradient descent at a small rate never raises the loss it descends
    assert numbers[f"{full}/full_loss_rises"] == 0.0
    assert numbers[f"{single}/full_loss_rises"] > 0.2  # measured 53 %
    # the smaller the batch, the noisier the loss it trains on (gradient variance ∝ 1/batch)
    assert (
        numbers[f"{single}/train_loss_jitter"]
        > numbers[f"{mini}/train_loss_jitter"]
        > numbers[f"{full}/train_loss_jitter"]
    )
    # per example seen, small batches get further (measured 0.77 vs 1.50 after 60 examples)
    assert numbers[f"{single}/full_at_budget"] < numbers[f"{full}/full_at_budget"]
    assert numbers[f"{full}/examples_seen"] == 300 * 60 and numbers[f"{single}/examples_seen"] == 60
    assert_parity_held(session, steps=3 * 60)


def test_every_optimizer_races_from_the_same_start():
    numbers, session = run_experiment("optimizers", steps=60)
    ranking = numbers["ranking"].split(",")
    raced = OptimizersParams().optimizers
    assert sorted(ranking) == sorted(raced) and set(raced) <= set(OPTIMIZERS)
    assert all(numbers[f"{name}/full_last"] < numbers["initial_loss"] for name in raced)
    # plain SGD has neither momentum nor per-parameter scaling: slowest here (measured at 60 and 300 steps)
    assert ranking[-1] == "sgd" and numbers["sgd/steps_to_target"] == 60
    assert all(numbers[f"{name}/steps_to_target"] < 60 for name in ranking[:-1])
    assert_parity_held(session, steps=len(raced) * 60)


def test_overfitting_and_its_cures():
    numbers, session = run_experiment("overfitting", steps=150)
    plain = {key.split("/")[1]: value for key, value in numbers.items() if key.startswith("plain/")}
    # 26k weights, 100 examples: the training set is learned by heart, and the validation loss turns
    # back up after its minimum (measured: 0.459 at step 30, 0.557 at 150)
    assert plain["train_last"] < 0.01 and plain["train_accuracy_last"] == 1.0
    assert plain["val_climb"] > 0.05 and plain["val_lowest_step"] < 100
    # weight decay keeps the weights, and the confidence of wrong answers, from growing: no climb
    assert numbers["weight-decay/val_climb"] < plain["val_climb"]
    assert numbers["weight-decay/val_last"] < plain["val_last"]
    # dropout reaches a lower validation minimum (measured 0.319 vs 0.459)
    assert numbers["dropout/val_lowest"] < plain["val_lowest"]
    assert_parity_held(session, steps=4 * 150)
    assert all("eval" in entry.worst for entry in session.parity if "dropout" in entry.name)


def test_initialisations_end_in_different_minima():
    numbers, session = run_experiment("init", steps=100, inits=3)
    # the spread is far above rounding (parity holds to 1e-10): measured 0.244 to 0.307
    assert numbers["loss_max"] - numbers["loss_min"] > 0.01
    assert numbers["probe_disagreement_max"] > 0.01  # different functions, which permuting units cannot give
    assert numbers["weight_distance_mean"] > 0.5
    assert_parity_held(session, steps=3 * 100)


# --- the command -----------------------------------------------------------------------------------


def test_list_shows_each_experiment_on_one_line(capsys):
    status, out, err = invoke(["experiment", "--list"], capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list(EXPERIMENTS)
    assert list(EXPERIMENTS) == [
        "graph",
        "chain-rule",
        "vanishing-gradients",
        "learning-rate",
        "batch-size",
        "optimizers",
        "overfitting",
        "init",
    ]


@pytest.fixture
def not_a_folder(tmp_path: Path) -> str:
    path = tmp_path / "file"
    path.write_text("x")
    return str(path)


BAD_INPUT = [
    ([], "name an experiment"),
    (["nope"], "invalid choice"),
    (["graph", "--steps", "5"], "experiment graph takes no --steps"),
    (["chain-rule", "--seed", "1"], "experiment chain-rule takes no --seed"),
    (["vanishing-gradients", "--steps", "0"], "--steps must be between 1"),
    (["init", "--seed", "-1"], "--seed must be >= 0"),
    (["learning-rate", "--dataset", "mnist"], "invalid choice"),
    (["graph", "--list"], "either an experiment NAME or --list"),
    (["graph", "--json", "{tmp}/missing/summary.json"], "--json"),
    (["graph", "--logdir", "{file}"], "exists and is not a directory"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, not_a_folder, capsys):
    logdir = tmp_path / "runs"
    argv = ["experiment", *(a.format(tmp=tmp_path, file=not_a_folder) for a in args)]
    if "--logdir" not in argv:
        argv += ["--logdir", str(logdir)]
    status, _, err = invoke(argv, capsys)
    assert status == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not logdir.exists()  # nothing written


def test_a_broken_derivative_fails_the_experiment_with_exit_1(tmp_path, capsys, monkeypatch):
    # sigmoid's backward without its (1 − out): the textbook slip the chain-rule experiment is about
    monkeypatch.setattr(layers.Sigmoid, "backward", lambda self, dout: dout * self._out)
    status, out, _ = invoke(["experiment", "chain-rule", "--logdir", str(tmp_path), "--no-tensorboard"], capsys)
    assert status == 1
    assert "FAIL: parity broken in sub-run step" in out and "conclusion:" not in out
    (root,) = tmp_path.iterdir()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["passed"] is False and summary["parity_failure"]["subrun"] == "step"


def test_cli_run_logs_both_twins_and_ends_with_a_conclusion(tmp_path, capsys):
    json_path = tmp_path / "summary.json"
    argv = ["experiment", "batch-size", "--steps", "20", "--logdir", str(tmp_path / "runs"), "--json", str(json_path)]
    status, out, _ = invoke(argv, capsys)
    assert status == 0
    assert re.search(r"^parity: held at every one of 60 lockstep steps in 3 sub-runs", out, re.M)
    assert re.search(r"^conclusion: SGD at lr 0\.1 on spiral", out, re.M)
    (root,) = (tmp_path / "runs").iterdir()
    assert root.name.startswith("experiment-batch-size-")
    assert sorted(p.name for p in root.iterdir()) == [
        "batch-32",
        "full-batch",
        "loss_by_subrun.png",
        "single-example",
        "summary",
        "summary.json",
    ]
    summary = json.loads(json_path.read_text())
    assert summary == json.loads((root / "summary.json").read_text())
    assert summary["passed"] is True and summary["params"]["steps"] == 20
    for subrun in ("full-batch", "batch-32", "single-example"):
        manual, torch_side = scalars(root / subrun / "manual"), scalars(root / subrun / "torch")
        for tag in ("loss/train", "lr", "loss/full", "accuracy/full"):
            assert [e.step for e in manual[tag]] == [e.step for e in torch_side[tag]] == list(range(1, 21))
            np.testing.assert_allclose([e.value for e in manual[tag]], [e.value for e in torch_side[tag]], rtol=FLOAT32)
        parity = scalars(root / subrun / "parity" / "grad")
        assert max(e.value for e in parity["parity/max_rel"]) <= TOLERANCE
        line = scalars(root / subrun / "parity" / "tolerance")["parity/log10_max_rel_over_tolerance"]
        assert {e.value for e in line} == {0.0}  # max_rel / tolerance: 0 is the line for every dtype
    # TensorBoard's value is the summary's, at float32
    last = summary["numbers"]["full-batch/full_last"]
    assert scalars(root / "full-batch" / "torch")["loss/full"][-1].value == pytest.approx(last, rel=FLOAT32)


def test_each_invocation_gets_a_new_directory(tmp_path, capsys):
    logdir = tmp_path / "runs"
    assert invoke(["experiment", "graph", "--logdir", str(logdir)], capsys)[0] == 0
    (first,) = logdir.iterdir()
    before = {path: path.stat().st_mtime_ns for path in first.rglob("*")}
    assert invoke(["experiment", "graph", "--logdir", str(logdir)], capsys)[0] == 0
    assert len(list(logdir.iterdir())) == 2
    assert {path: path.stat().st_mtime_ns for path in first.rglob("*")} == before


# --- the bundled real data -------------------------------------------------------------------------


def test_bundled_files_match_the_checksums_in_their_readme():
    folder = Path(datasets.__file__).parent / "data"
    readme = (folder / "README.md").read_text()
    for name in ("iris.csv", "digits.csv.gz"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"`{name}` | {(folder / name).stat().st_size:,} | `{digest}`" in readme


@pytest.mark.parametrize(
    ("name", "shape", "classes", "per_class"),
    [("iris", (150, 4), 3, {50}), ("digits", (1797, 64), 10, set(range(174, 184)))],
)
def test_real_data_sets_load_offline(name, shape, classes, per_class):
    dataset = datasets.load(name, np.random.default_rng(0))
    assert dataset.X.shape == shape and dataset.X.dtype == np.float64
    counts = np.bincount(dataset.y)
    assert len(counts) == classes and set(counts.tolist()) <= per_class
    if name == "iris":  # standardised
        np.testing.assert_allclose(dataset.X.mean(axis=0), 0, atol=1e-12)
        np.testing.assert_allclose(dataset.X.std(axis=0), 1, rtol=1e-12)
    else:
        assert dataset.X.min() == 0 and dataset.X.max() == 1
