"""The event files, read back with TensorBoard's own reader, hold what the run computed."""

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)

from compare.cli import main
from compare.tolerances import STAGES

STEPS = 15


def read_scalars(run_dir) -> dict[str, list]:
    accumulator = EventAccumulator(str(run_dir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    report_path = logdir / "report.json"
    argv = ["run", "--optimizer", "momentum", "--steps", str(STEPS), "--logdir", str(logdir), "--run-name", "tb"]
    assert main([*argv, "--json", str(report_path)]) == 0
    return logdir / "tb", json.loads(report_path.read_text())


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_both_sides_log_the_same_loss_tag_with_the_reported_values(run, side):
    run_dir, report = run
    scalars = read_scalars(run_dir / side)
    events = scalars["loss/train"]
    assert [event.step for event in events] == list(range(1, STEPS + 1))
    # TensorBoard stores float32: compare at float32 precision
    np.testing.assert_allclose([e.value for e in events], report["losses"][side], rtol=2 * np.finfo(np.float32).eps)


def test_parity_run_holds_every_stage_and_its_worst_matches_the_report(run):
    run_dir, report = run
    scalars = read_scalars(run_dir / "parity")
    assert set(report["worst"]) == set(STAGES) - {"eval"}  # no Dropout or BatchNorm: no eval stage
    for stage in report["worst"]:
        curve = [event.value for event in scalars[f"max_rel/{stage}"]]
        assert len(curve) == STEPS
        assert max(curve) == pytest.approx(report["worst"][stage]["max_rel"], rel=1e-6)
        assert {event.value for event in scalars[f"tolerance/{stage}"]} == {
            np.float32(report["tolerances"][stage]["max_rel"])
        }
    # the differences are tiny, not zero: float32 scalars resolve 1e-16
    assert 0 < max(event.value for event in scalars["max_rel/param"]) < 1e-12


def test_a_second_run_gets_its_own_directory(run, tmp_path):
    run_dir, _ = run
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    assert main(["run", "--steps", "3", "--logdir", str(run_dir.parent), "--run-name", "tb"]) == 2
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before
