"""A departure of the free-running trajectory is judged by one step from identical values: drift passes
(recorded, resynced), a wrong rule fails where it shows; a side that raises is a finding."""

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from compare.cli.main import main
from compare.core import adjudication, distributed, engine, mlp_pair, witness64
from compare.core.torch_side import TorchSide
from compare.inputs import world
from compare.inputs.config import RunConfig
from compare.inputs.prepare import batch_stream, prepare
from conftest import lockstep_run, make_batches
from manual import MLPSpec, init_state_dict
from manual.layers import Linear
from manual.optim.radam import RAdam
from manual.optim.sgd import SGD

# The README's 10-layer ReLU net at SGD lr 0.1: free-running, rounding amplified by training crosses
# float64's tolerance after about 150 steps; no rule in it is wrong.
DEEP = ["--layers", "2,16,16,16,16,16,16,16,16,16,3", "--optimizer", "sgd", "--lr", "0.1", "--steps", "300"]


@pytest.mark.slow
def test_drift_passes_with_a_drift_line_and_strict_trajectory_fails(tmp_path, capsys):
    adjudicated, strict = tmp_path / "a.json", tmp_path / "s.json"
    assert main(["run", *DEEP, "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(adjudicated)]) == 0
    out = capsys.readouterr().out
    argv = ["run", *DEEP, "--strict-trajectory", "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(strict)]
    assert main(argv) == 1
    drift, failure = json.loads(adjudicated.read_text())["drift"], json.loads(strict.read_text())["first_failure"]
    assert drift["first_step"] == failure["step"]  # the same departure, judged
    assert {(t["stage"], t["tensor"]) for t in drift["tensors"]} >= {(failure["stage"], failure["tensor"])}
    assert all(t["one_step_max_rel"] <= t["tolerance"] < t["max_rel"] for t in drift["tensors"])
    assert "PASS" in out and "drift: from step" in out


@dataclass
class SGDWrongFromStep(SGD):
    """SGD whose update is off by a relative 1e-6 from step ``start`` on: a rule wrong late in the run."""

    start: int = 5
    steps: int = 0

    def hyperparameters(self) -> dict:
        return {key: value for key, value in super().hyperparameters().items() if key not in ("start", "steps")}

    def step(self, params, grads, state) -> None:
        self.steps += 1
        factor = 1.0 + 1e-6 if self.steps >= self.start else 1.0
        super().step(params, {name: g * factor for name, g in grads.items()}, state)


def test_a_rule_wrong_late_in_the_run_is_a_failure_not_drift():
    """Its departure starts at step 5, after free-running steps: one step from identical values
    still departs, so it is a wrong rule (float64's param tolerance is 1e-10; the error is 1e-6 of an
    update of about 1e-2 of the parameter)."""
    spec = MLPSpec((3, 7, 5, 4), "tanh", "mse")
    result = lockstep_run(spec, "sgd", {"lr": 0.1}, manual_optimizer=SGDWrongFromStep(lr=0.1), steps=10)
    assert result.first_failure is not None and result.first_failure.step == 5
    assert result.drift is None


def test_a_departure_from_identical_values_is_never_adjudicated():
    """Step 1 starts from identical values: its departure is a wrong rule without a second step."""
    spec = MLPSpec((3, 7, 5, 4), "tanh", "mse")
    wrong = SGDWrongFromStep(lr=0.1, start=1)
    result = lockstep_run(spec, "sgd", {"lr": 0.1}, manual_optimizer=wrong, steps=3)
    assert result.first_failure.step == 1 and result.drift is None
    assert wrong.steps == 1  # no scratch step ran on the real side


# ---------------------------------------------------------------------------------------------
# A side that raises is a finding.


class LinearTransposedBackward(Linear):
    def backward(self, dout):
        self.grads["weight"] = self._x.T @ dout  # (I, O): fine for the shapes, then
        return dout @ self.params["weight"].T  # (N, O) @ (I, O)... raises on a non-square layer


def transposed_backward(lockstep):
    layers = lockstep.manual.model.layers
    layers[2] = LinearTransposedBackward(layers[2].params["weight"], layers[2].params["bias"])


def raising_torch_hook(lockstep):
    def hook(module, inputs, output):
        raise RuntimeError("a hook that fails")

    lockstep.reference.model[2].register_forward_hook(hook)


@pytest.mark.parametrize(
    ("patch", "side", "stage", "layer", "kind"),
    [
        (transposed_backward, "manual", "grad", "2 (LinearTransposedBackward)", "ValueError"),
        (raising_torch_hook, "torch", "forward", "-", "RuntimeError"),
    ],
)
def test_a_side_that_raises_is_a_finding(patch, side, stage, layer, kind):
    result = lockstep_run(MLPSpec((3, 7, 5, 4), "tanh", "mse"), "sgd", {"lr": 0.1}, patch=patch)
    raised = result.raised
    assert (raised.side, raised.step, raised.stage, raised.type) == (side, 1, stage, kind)
    if side == "manual":
        assert raised.layer == layer
    assert result.first_failure.diff.problem == f"raised:{kind}"
    assert "Traceback" in raised.traceback
    assert not result.passed


def test_the_command_line_reports_a_raising_side_in_one_line_and_exits_1(tmp_path, capsys, monkeypatch):
    def backward(self, dout):
        raise ValueError("shapes (8,5) and (7,5) not aligned")

    monkeypatch.setattr(Linear, "backward", backward)
    out = tmp_path / "r.json"
    assert main(["run", "--steps", "3", "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(out)]) == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.out + printed.err
    line = next(line for line in printed.out.splitlines() if line.startswith("FAIL"))
    assert "manual side raised at step 1, stage grad, layer 4 (Linear): ValueError: shapes" in line
    report = json.loads(out.read_text())
    assert report["first_failure"]["problem"] == "raised:ValueError"
    assert report["raised"]["traceback"].startswith("Traceback")
    assert np.isnan(report["losses"]["manual"][0] or np.nan)


@pytest.mark.distributed
def test_a_data_parallel_reference_is_adjudicated_on_a_single_process_copy():
    """The copy of a data-parallel torch side is a plain twin of rank 0's replica: a step on it (and on
    a manual copy holding torch's values) agrees, and the group is untouched (the run goes on)."""
    prepared = prepare(RunConfig(world_size=2, batch_size=16))
    config = prepared.config
    pair = mlp_pair.Pair(config.spec, prepared.weights, config.optimizer, config.hyperparameters, config.dtype)
    group = distributed.Group(world.membership(2), torch.device("cpu"), 60.0, prepared)
    try:
        reference = group.side(mlp_pair.torch_twin(pair), config.spec, None)
        lockstep = engine.Lockstep(mlp_pair.manual_side(pair), reference)
        batches = batch_stream(prepared)
        x, y = next(batches)
        lockstep.step(1, x, y)
        scratch = adjudication.scratch_reference(reference)
        manual = lockstep.manual.clone()
        manual.load(reference.values(), reference.state())
        assert type(scratch) is TorchSide
        assert engine.Lockstep(manual, scratch, engine.Options(adjudicate=False)).step(2, x, y).first_failure is None
        assert lockstep.step(2, *next(batches)).first_failure is None  # the group still answers
        group.close()
    finally:
        if not group.closed:
            group.abort()


# ---------------------------------------------------------------------------------------------
# The departing step itself is adjudicated: from the values before it, on its own batch.


class RAdamThreshold4(RAdam):
    """The rectified rule with the paper's ρ_t > 4 (torch: > 5): with β2 = 0.999 it differs at step 5 alone."""

    threshold = 4.0


# (dtype, widths, the rule the float64 witness is scheduled for, the witness's period): float64 on a small net;
# float32 on a net of at least 2^14 parameters, witnessed at every step (a rule that branches on its step
# count) or, scheduled as for a rule that does not, at steps 1 and 100 only: the departing step's own re-run
# catches it then
LARGE = (32, 128, 96, 4)
THRESHOLD_RUNS = [
    ("float64", (3, 7, 5, 4), None, None),
    ("float32", LARGE, RAdam, 1),
    ("float32", LARGE, SGD, witness64.EVERY_LARGE),
]


@pytest.mark.parametrize(("dtype", "widths", "scheduled_for", "period"), THRESHOLD_RUNS)
def test_a_rule_that_acts_at_one_step_is_caught_at_that_step(dtype, widths, scheduled_for, period):
    spec = MLPSpec(widths, "tanh", "mse")
    parameters = sum(a * b + b for a, b in itertools.pairwise(widths))
    witness = witness64.every(parameters, scheduled_for) if dtype == "float32" else None
    assert witness == period and (dtype == "float64" or parameters >= witness64.EVERY_STEP_MAX_PARAMETERS)
    hyperparameters = {"lr": 0.01}
    mutant = RAdamThreshold4(**hyperparameters)
    result = lockstep_run(
        spec, "radam", hyperparameters, dtype, steps=8, manual_optimizer=mutant, witness_every=witness
    )
    assert result.drift is None
    assert result.first_failure is not None and result.first_failure.step == 5


def test_the_departing_step_is_rerun_from_the_values_before_it():
    """The rectified rule with torch's threshold passes the same runs: the mutant's step 5 is its finding."""
    spec = MLPSpec((3, 7, 5, 4), "tanh", "mse")
    result = lockstep_run(spec, "radam", {"lr": 0.01}, steps=8, manual_optimizer=RAdam(lr=0.01))
    assert result.first_failure is None


# ---------------------------------------------------------------------------------------------
# The kept manual side copies only what load() does not overwrite (compare.core.rewind).


def _arrays(side) -> dict[str, np.ndarray]:
    """Everything the manual side holds that a step reads: parameters, buffers, optimizer state."""
    state = {f"{name}/{key}": np.asarray(v) for name, e in side.optimizer_state.items() for key, v in e.items()}
    return {**side.model.named_parameters(), **side.model.named_buffers(), **state}


def test_the_rewind_clone_once_loaded_is_the_full_clone_once_loaded():
    """A net with BatchNorm and dropout, Adam one step in, and a state entry torch lacks: the clone that skips
    what ``load`` overwrites holds, once loaded, exactly what a full clone holds (its gradients included), and
    the step it then takes (dropout masks drawn from its kept generator) is bit for bit the full clone's. The
    entry torch lacks is a real copy (the live side moving on does not change it)."""
    spec = MLPSpec((5, 8, 3), "relu", "cross_entropy", dropout=0.5, batchnorm=True)
    weights = init_state_dict(spec, np.random.default_rng(0), np.float64)
    lockstep = mlp_pair.twins(spec, weights, "adam", {"lr": 0.01}, "float64")
    batches = make_batches(spec, "float64", 1)
    lockstep.step(1, *next(batches))
    live, reference = lockstep.manual, lockstep.reference
    live.optimizer_state["0.weight"]["own"] = np.full(3, 7.0)  # a rule's own state: torch has no such key
    full = live.clone()
    rewound = live.clone_for_rewind(reference.values().keys(), reference.state())
    live.optimizer_state["0.weight"]["own"] += 1.0
    lockstep.step(2, *next(batches))  # the live side moves on: the kept ones must not
    for kept in (full, rewound):
        kept.load(reference.values(), reference.state())
    assert rewound.optimizer_state["0.weight"]["own"].tolist() == [7.0] * 3
    kept_grads = full.model.named_grads()  # copied too: a side that never zeroes its gradients adds to them
    assert kept_grads.keys() == rewound.model.named_grads().keys()
    assert all(np.array_equal(kept_grads[name], g) for name, g in rewound.model.named_grads().items())
    x, y = next(batches)
    for kept in (full, rewound):
        kept.train_pass(x, y)
        kept.update()
    assert _arrays(full).keys() == _arrays(rewound).keys()
    assert all(np.array_equal(_arrays(full)[name], value) for name, value in _arrays(rewound).items())
