"""The event files, read back with TensorBoard's own reader, hold what the run computed."""

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)
from torch.utils.tensorboard import summary

from compare.cli.main import main
from compare.core.tolerances import STAGES
from compare.output.tensorboard import HISTOGRAM_BINS, histogram_summary

STEPS = 15
LOG_EVERY = 4  # validation, norms and histograms at steps 1, 4, 8, 12
LOGGED = [1, 4, 8, 12]
FLOAT32 = 2 * np.finfo(np.float32).eps  # TensorBoard stores float32: compare at float32 precision


def accumulator(run_dir) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    events.Reload()
    return events


def read_scalars(run_dir) -> dict[str, list]:
    events = accumulator(run_dir)
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    report_path = logdir / "report.json"
    argv = ["run", "--optimizer", "momentum", "--steps", str(STEPS), "--logdir", str(logdir), "--run-name", "tb"]
    argv += ["--log-every", str(LOG_EVERY)]
    assert main([*argv, "--json", str(report_path)]) == 0
    return logdir / "tb", json.loads(report_path.read_text())


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_both_sides_log_the_same_loss_tag_with_the_reported_values(run, side):
    run_dir, report = run
    scalars = read_scalars(run_dir / side)
    events = scalars["loss/train"]
    assert [event.step for event in events] == list(range(1, STEPS + 1))
    # TensorBoard stores float32: compare at float32 precision
    np.testing.assert_allclose([e.value for e in events], report["losses"][side], rtol=FLOAT32)


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


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_validation_curves_equal_the_reported_ones(run, side):
    run_dir, report = run
    scalars = read_scalars(run_dir / side)
    assert [v["step"] for v in report["validation"]] == LOGGED
    for metric in ("loss", "accuracy"):
        events = scalars[f"{metric}/validation"]
        assert [e.step for e in events] == LOGGED
        np.testing.assert_allclose(
            [e.value for e in events], [v[side][metric] for v in report["validation"]], rtol=FLOAT32
        )


def test_per_parameter_curves_overlay_and_agree(run):
    run_dir, _ = run
    manual, torch = read_scalars(run_dir / "manual"), read_scalars(run_dir / "torch")
    params = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    for metric in ("grad_norm", "param_norm", "update_ratio"):
        for name in params:
            a, b = manual[f"{metric}/{name}"], torch[f"{metric}/{name}"]
            assert [e.step for e in a] == [e.step for e in b] == LOGGED
            np.testing.assert_allclose([e.value for e in a], [e.value for e in b], rtol=FLOAT32)
            assert all(e.value > 0 for e in a)


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_histograms_of_weights_and_gradients_every_k_steps(run, side):
    run_dir, _ = run
    events = accumulator(run_dir / side)
    tags = set(events.Tags()["histograms"])
    assert {"weights/0.weight", "grads/0.weight", "weights/4.bias", "grads/4.bias"} <= tags
    assert [h.step for h in events.Histograms("weights/2.weight")] == LOGGED
    assert events.Histograms("grads/2.weight")[0].histogram_value.num == 16 * 16  # every element counted


def test_config_verdict_hparams_and_layout_are_written(run):
    run_dir, _ = run
    for side in ("manual", "torch", "parity"):
        tensors = set(accumulator(run_dir / side).Tags()["tensors"])
        assert {"config/text_summary", "verdict/text_summary", "_hparams_/session_start_info"} <= tensors
    assert "custom_scalars__config__" in accumulator(run_dir / "parity").Tags()["tensors"]
    assert sorted(path.name for path in run_dir.iterdir()) == ["manual", "parity", "report.json", "torch"]
    verdict = accumulator(run_dir / "parity").Tensors("verdict/text_summary")[0].tensor_proto.string_val[0]
    assert b"PASS" in verdict


def test_runs_lists_each_run_with_its_verdict(run, capsys):
    run_dir, _ = run
    assert main(["runs", "--logdir", str(run_dir.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "date", "optimizer", "dtype", "steps", "verdict"]
    row = next(line for line in lines if line.startswith("tb "))
    assert row.split()[3:7] == ["momentum", "float64", str(STEPS), "PASS"]


def test_event_checksums_equal_tensorboards_own():
    """compare.output.events frames records with a C CRC-32C; it must equal tensorboard's pure-Python one."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    from compare.output.events import masked_crc32c

    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 8, 100, 4096):
        data = rng.bytes(size)
        assert masked_crc32c(data) == reference(data)


def near_an_edge(values: np.ndarray) -> bool:
    """Whether a value lies within rounding of a bucket edge, where np.histogram spends two more passes."""
    low, high = float(values.min()), float(values.max())
    position = (values.astype(np.float64) - low) / (high - low) * HISTOGRAM_BINS
    inner = (position > 0) & (position < HISTOGRAM_BINS)  # the smallest and largest sit on edges by definition
    return bool(np.any(np.abs(position - np.round(position))[inner] < 1e-9))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_histogram_summary_is_what_torch_writes(dtype):
    """Byte for byte the histogram ``summary.histogram`` makes, transposed and single-element arrays too."""
    array = np.random.default_rng(0).standard_normal((300, 500)).astype(dtype)  # 150,000 values: three blocks
    assert not near_an_edge(array)  # where the two may differ by design
    for values in (array, array.T, array[:1, :1], np.full(7, 2.5, dtype=dtype)):
        expected = summary.histogram("weights/0.weight", values, HISTOGRAM_BINS)
        assert histogram_summary("weights/0.weight", values).SerializeToString() == expected.SerializeToString()


def test_histogram_leaves_out_nonfinite_values():
    """A diverged run's weights: the finite ones are counted, and none at all gives no histogram."""
    values = np.array([1.0, np.nan, -2.0, np.inf, 3.0, -np.inf])
    histogram = histogram_summary("w", values).value[0].histo
    expected = summary.histogram("w", np.array([1.0, -2.0, 3.0]), HISTOGRAM_BINS).value[0].histo
    assert histogram == expected
    assert histogram_summary("w", np.full(4, np.nan)) is None
