"""A checker you can trust: no false alarm over random configurations, non-finite values named by
side, a third witness that says which side is wrong, interrupted runs that keep what they did,
and runs that repeat exactly."""

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compare.bench.sweep import hyperparameters
from compare.cli.main import main
from compare.core.override import NONE, Override
from compare.faults.catalog import CATALOG
from conftest import lockstep_run
from manual import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec
from manual.layers import Tanh
from manual.optim import REGISTRY

# ---------------------------------------------------------------------------------------------
# No false alarms: random architectures, activations, losses, optimizers, hyperparameters, dtypes
# and seeds, all under the documented tolerances. 200 examples in CI.


def no_false_alarm(override: Override, max_examples: int):
    """The property, as a function of the manual side's rule: with ``NONE`` it must hold; with a wrong
    rule it must fail (so the test can fail). ``derandomize``: the same draws on every machine and
    every run (Hypothesis derives them from the test's source), so CI cannot be flaky; no example
    database either, for the same reason."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing draw is reported as is
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(
        data=st.data(),
        widths=st.lists(st.integers(1, 9), min_size=2, max_size=5),
        activation=st.sampled_from(ACTIVATION_NAMES),
        loss=st.sampled_from(LOSS_NAMES),
        optimizer=st.sampled_from(sorted(REGISTRY)),
        dtype=st.sampled_from(["float64", "float32"]),
        dropout=st.sampled_from([0.0, 0.0, 0.3]),
        batchnorm=st.booleans(),
        seed=st.integers(0, 2**31 - 1),
    )
    def check(data, widths, activation, loss, optimizer, dtype, dropout, batchnorm, seed):
        # Outside the domain, and documented in the README: a Linear with fan-in 1 feeding BatchNorm. Each
        # row of its weight is a single number whose scale BatchNorm divides away, so its gradient is
        # exactly zero; both sides can only compute rounding noise there, and adaptive optimizers normalise
        # that noise into steps of size lr, so the two trajectories part by design, not by a bug.
        assume(not (batchnorm and 1 in widths[:-2]))
        spec = MLPSpec(tuple(widths), activation, loss, dropout, batchnorm)
        hparams = hyperparameters(optimizer, lambda a, b: data.draw(st.floats(a, b)), lambda: data.draw(st.booleans()))
        witness = 1 if dtype == "float32" else None  # float32 proven in float64 at every step, as the CLI does
        result = lockstep_run(
            spec, optimizer, hparams, dtype, steps=8, seed=seed, override=override, witness_every=witness
        )
        assume(not diverged(result))  # a diverging draw proves nothing
        assert result.first_failure is None, result.first_failure

    return check


def diverged(result) -> bool:
    """torch's own run left the finite numbers: a loss, or any compared tensor (an eval output, say)."""
    failure = result.first_failure
    torch_nonfinite = failure is not None and failure.diff.problem in ("nonfinite:torch", "nonfinite:both")
    return torch_nonfinite or not all(math.isfinite(r.loss_torch) for r in result.records)


def test_no_false_alarm_over_random_configurations():
    no_false_alarm(NONE, max_examples=200)()


def test_the_no_false_alarm_property_can_fail():
    """The same property, with the bias gradient averaged over the batch (a catalog fault that every
    architecture of the domain has): the first draw already fails."""
    with pytest.raises(AssertionError):
        no_false_alarm(CATALOG["bias-grad-averaged"].override, max_examples=5)()


# ---------------------------------------------------------------------------------------------
# Non-finite values are reported where they first appear, naming the side.


class TanhNaNFromStep3(Tanh):
    calls = 0

    def forward(self, x):
        TanhNaNFromStep3.calls += 1
        out = super().forward(x)
        return out if TanhNaNFromStep3.calls < 3 else out * np.nan


def nan_on_manual(lockstep):
    TanhNaNFromStep3.calls = 0
    lockstep.manual.model.layers[1] = TanhNaNFromStep3()


def nan_on_torch(lockstep):
    calls = []

    def hook(module, inputs, output):
        calls.append(1)
        return output if len(calls) < 3 else output * float("nan")

    lockstep.reference.model[1].register_forward_hook(hook)


@pytest.mark.parametrize(("patch", "side"), [(nan_on_manual, "manual"), (nan_on_torch, "torch")])
def test_nan_is_reported_at_its_first_step_and_tensor_naming_the_side(patch, side):
    spec = MLPSpec((3, 6, 4), "tanh", "mse")
    failure = lockstep_run(spec, "sgd", {"lr": 0.1}, patch=patch).first_failure
    assert (failure.step, failure.stage, failure.tensor) == (3, "forward", "1.out")
    assert failure.diff.problem == f"nonfinite:{side}"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the manual side overflows, as it should at lr 1e6
def test_nan_in_the_report_is_null_with_its_problem(tmp_path):
    """A run that blows up on both sides (lr far too large) is reported, not crashed on."""
    out = tmp_path / "r.json"
    argv = ["run", "--optimizer", "sgd", "--lr", "1e6", "--loss", "mse", "--steps", "40", "--keep-going"]
    status = main([*argv, "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(out)])
    report = json.loads(out.read_text())  # strict JSON: no NaN literals
    assert status == 4 and report["verdict"] == "DIVERGED"  # both sides alike: nothing said about the rules
    assert report["first_failure"]["problem"] == "nonfinite:both"
    assert report["first_failure"]["max_rel"] is None


# ---------------------------------------------------------------------------------------------
# The third witness: finite differences side with the correct twin.


def test_gradcheck_agrees_with_both_when_parity_holds(tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", "--steps", "3", "--gradcheck", "--logdir", str(tmp_path), "--json", str(out)]) == 0
    found = json.loads(out.read_text())["gradcheck"]
    assert len(found) >= 6 and {w["sides_with"] for w in found} == {"both"}


def test_gradcheck_blames_the_manual_side_for_a_wrong_gradient(capsys):
    class TanhWrong(Tanh):
        def backward(self, dout):
            return dout * (1.0 - self._out)  # 1 − out instead of 1 − out²

    def patch(lockstep):
        lockstep.manual.model.layers[1] = TanhWrong()

    result = lockstep_run(MLPSpec((3, 6, 4), "tanh", "cross_entropy"), "sgd", {"lr": 0.1}, patch=patch, gradcheck=True)
    found = [w for r in result.records for w in r.gradcheck]
    assert result.first_failure.stage == "grad"
    assert {w.sides_with for w in found if w.param == "0.weight"} == {"torch"}


def test_gradcheck_needs_float64(tmp_path, capsys):
    assert main(["run", "--gradcheck", "--dtype", "float32", "--logdir", str(tmp_path)]) == 2
    assert "float64" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Nothing lost: an interrupted run flushes TensorBoard and writes a report marked incomplete.


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_keeps_what_it_did(sig, status, tmp_path):
    command = [sys.executable, "-m", "compare", "run", "--steps", "1000000", "--logdir", str(tmp_path)]
    process = subprocess.Popen(
        [*command, "--run-name", "cut"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it is training (the first progress line)
            if process.stdout.readline().startswith("step"):
                break
        time.sleep(1.0)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == status, err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "cut" / "report.json").read_text())
    assert report["complete"] is False and report["passed"] is False
    assert report["steps"] > 0 and len(report["losses"]["manual"]) == report["steps"]
    events = EventAccumulator(str(tmp_path / "cut" / "manual"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/train")] == list(range(1, report["steps"] + 1))


# ---------------------------------------------------------------------------------------------
# Deterministic: the same inputs and seed give the same report, apart from timestamps and paths.


def test_the_same_run_twice_gives_the_same_report(tmp_path):
    reports = []
    for name in ("first", "second"):
        out = tmp_path / f"{name}.json"
        argv = ["run", "--optimizer", "adam", "--dropout", "0.2", "--batchnorm", "--steps", "25"]
        assert main([*argv, "--logdir", str(tmp_path), "--run-name", name, "--json", str(out)]) == 0
        report = json.loads(out.read_text())
        for varying in ("started_at", "finished_at", "run_dir"):
            report.pop(varying)
        reports.append(json.dumps(report, sort_keys=True))
    assert reports[0] == reports[1]


def test_torch_threads_do_not_leak_between_tests():
    assert torch.get_num_threads() == 1  # as the CLI and conftest set it


# ---------------------------------------------------------------------------------------------
# --resync tells drift from a wrong rule: amplified rounding builds up over a run, a formula error
# shows at the step where it acts whatever values the step starts from.

DEEP = ["--layers", "2,16,16,16,16,16,16,16,16,16,3", "--optimizer", "sgd", "--lr", "0.1", "--steps", "400"]


@pytest.mark.slow
def test_resync_removes_the_drift_of_a_long_unstable_run(tmp_path):
    reports = {}
    for mode in ("drift", "resync"):
        out = tmp_path / f"{mode}.json"
        extra = ["--resync"] if mode == "resync" else ["--strict-trajectory"]  # free-running, not adjudicated
        status = main(["run", *DEEP, *extra, "--logdir", str(tmp_path), "--no-tensorboard", "--json", str(out)])
        reports[mode] = (status, json.loads(out.read_text()))
    status, drift = reports["drift"]
    # a 10-layer net at lr 0.1 amplifies rounding step after step until it crosses 1e-10 (step 151 here)
    assert status == 1 and drift["first_failure"]["step"] > 50
    status, resynced = reports["resync"]
    assert status == 0 and resynced["steps"] == 400
    assert max(stage["max_rel"] for stage in resynced["worst"].values()) < 1e-12


def test_resync_still_catches_a_wrong_rule_where_it_acts(tmp_path):
    out = tmp_path / "r.json"
    argv = ["run", "--resync", "--inject", "adam-eps-inside-root", "--steps", "5", "--logdir", str(tmp_path)]
    assert main([*argv, "--no-tensorboard", "--json", str(out)]) == 1
    failure = json.loads(out.read_text())["first_failure"]
    assert (failure["step"], failure["stage"], failure["tensor"]) == (1, "param", "0.weight")


def test_resync_refuses_a_variant(tmp_path, capsys):
    assert main(["run", "--resync", "--variant", "adam_eps_hat", "--logdir", str(tmp_path)]) == 2
    assert "--variant" in capsys.readouterr().err
