"""The event files, read back with TensorBoard's own reader, hold what the run computed."""

import json

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)
from tensorboard.plugins.hparams import metadata as hparams_metadata
from torch.utils.tensorboard import summary

from compare.cli.main import main
from compare.core.stages import STAGES
from compare.output.histograms import HISTOGRAM_BINS, histogram_summary
from compare.output.overview import FAILED_STAGE, FAILED_STEP, PASSED, WORST
from compare.output.parity_curves import FLOOR, MAX_ABS, MAX_REL, RATIO
from compare.output.tensorboard import AFTER_FAILURE

STEPS = 15
LOG_EVERY = 4  # validation, norms and histograms at steps 1, 4, 8, 12
LOGGED = [1, 4, 8, 12]
FLOAT32 = 2 * float(np.finfo(np.float32).eps)  # TensorBoard stores float32: compare at float32 precision


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


def test_each_stage_has_its_own_run_and_its_worst_matches_the_report(run):
    run_dir, report = run
    assert set(report["worst"]) == set(STAGES) - {"eval"}  # no Dropout or BatchNorm: no eval stage
    assert not (run_dir / "parity" / "eval").exists()  # an absent stage is absent, not a curve at 0
    for stage in report["worst"]:
        scalars = read_scalars(run_dir / "parity" / stage)
        assert set(scalars) == {RATIO, MAX_REL, MAX_ABS}
        curve = scalars[MAX_REL]
        assert curve[0].step == 1 and {e.step for e in curve} <= set(range(1, STEPS + 1))
        assert max(e.value for e in curve) == pytest.approx(report["worst"][stage]["max_rel"], rel=FLOAT32)
    # the differences are tiny, not zero: float32 scalars resolve 1e-16
    assert 0 < max(e.value for e in read_scalars(run_dir / "parity" / "param")[MAX_REL]) < 1e-12


def test_exact_zeros_are_a_floor_before_the_first_difference_and_a_gap_after(run):
    """No comb of spikes: once a stage has differed, an exact 0 leaves no point; before, it sits at the floor.
    Every other point is log10(max_rel / tolerance), the raw max_rel beside it."""
    run_dir, report = run
    tolerance = report["tolerances"]["grad"]["max_rel"]
    for stage_dir in (run_dir / "parity").iterdir():
        if stage_dir.name == "tolerance":
            continue
        scalars = read_scalars(stage_dir)
        rel, log = scalars[MAX_REL], scalars[RATIO]
        assert [e.step for e in rel] == [e.step for e in log]
        first = next((i for i, e in enumerate(rel) if e.value != 0), len(rel))
        assert all(e.value == 0 for e in rel[:first]) and all(e.value != 0 for e in rel[first:])
        for r, lg in zip(rel, log, strict=True):
            expected = FLOOR if r.value == 0 else max(np.log10(r.value / tolerance), FLOOR)
            assert lg.value == pytest.approx(expected, abs=1e-5)  # float32 of a log10 near -6


def test_the_tolerance_line_has_a_point_at_every_step(run):
    """As many points as each stage: "ignore outliers" scales to the 5th-95th percentile of all points."""
    run_dir, _ = run
    line = read_scalars(run_dir / "parity" / "tolerance")[RATIO]
    assert [e.step for e in line] == list(range(1, STEPS + 1))
    assert {e.value for e in line} == {0.0}  # max_rel / tolerance = 1 is the line, for every dtype


def test_the_loss_difference_has_its_own_curve(run):
    run_dir, report = run
    curve = read_scalars(run_dir / "difference")["loss/train_manual_minus_torch"]
    assert [e.step for e in curve] == list(range(1, STEPS + 1))
    expected = np.subtract(report["losses"]["manual"], report["losses"]["torch"]).astype(np.float32)
    np.testing.assert_array_equal([e.value for e in curve], expected)  # float32 of the float64 difference


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


def test_verdict_text_hparams_and_layout_are_written_once_in_the_summary_run(run):
    run_dir, _ = run
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "difference",
        "manual",
        "parity",
        "report.html",
        "report.json",
        "summary",
        "torch",
        "verdict.txt",
    ]
    for side in ("manual", "torch", "difference"):
        assert accumulator(run_dir / side).Tags()["tensors"] == []  # the configuration is not repeated
    events = accumulator(run_dir / "summary")
    assert {"verdict/text_summary", "_hparams_/session_start_info", "_hparams_/experiment"} <= set(
        events.Tags()["tensors"]
    )
    assert "custom_scalars__config__" in events.Tags()["tensors"]
    text = events.Tensors("verdict/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("**PASS: parity holds")  # the verdict first
    assert text.count("**configuration**") == 1 and "| optimizer | momentum |" in text
    assert "| hyperparameters | lr=" in text and "{" not in text  # settings as flags, not a Python dict


def test_hparams_have_one_typed_column_per_setting_and_the_verdict_as_metrics(run):
    run_dir, report = run
    events = accumulator(run_dir / "summary")
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    values = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
    assert values["3.optimizer"].string_value == "momentum" and values["activation"].string_value == "relu"
    assert values["4.lr"].number_value == report["config"]["hyperparameters"]["lr"]  # a number: sortable
    assert values["momentum"].number_value == 0.9 and values["steps"].number_value == STEPS
    assert values["nesterov"].bool_value is False and values["5.special"].string_value == ""
    assert values["1.verdict"].string_value == "PASS"  # the row is written when the run ends
    content = events.SummaryMetadata("_hparams_/experiment").plugin_data.content
    experiment = hparams_metadata.parse_experiment_plugin_data(content)
    # TensorBoard shows five columns by default, sorted by name: these five sort first
    names = sorted(info.name for info in experiment.hparam_infos)[:5]
    assert names == ["1.verdict", "2.worst", "3.optimizer", "4.lr", "5.special"]
    shown = {info.name: info.display_name for info in experiment.hparam_infos}
    assert [shown[name] for name in names] == ["verdict", "worst max_rel/tol", "optimizer", "lr", "special"]
    assert [m.name.tag for m in experiment.metric_infos] == [PASSED, WORST, FAILED_STEP, FAILED_STAGE]
    metrics = read_scalars(run_dir / "summary")
    assert [(e.step, e.value) for e in metrics[PASSED]] == [(STEPS, 1.0)]
    worst = max(check["max_rel"] / report["tolerances"][stage]["max_rel"] for stage, check in report["worst"].items())
    assert metrics[WORST][0].value == pytest.approx(worst, rel=FLOAT32)
    assert values["2.worst"].number_value == pytest.approx(worst, rel=1e-12)  # float64 in the HParams row
    assert FAILED_STEP not in metrics and FAILED_STAGE not in metrics  # passed: empty cells


def test_a_run_stopped_at_its_failure_draws_its_curves_past_it(tmp_path):
    """An injected fault fails at step 1: the report stops there, the charts go on AFTER_FAILURE steps."""
    argv = ["run", "--steps", "40", "--inject", "bias-grad-averaged", "--logdir", str(tmp_path), "--run-name", "f"]
    assert main(argv) == 1
    run_dir = tmp_path / "f"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["steps"] == 1 and report["first_failure"]["stage"] == "grad"
    drawn = list(range(1, 1 + 1 + AFTER_FAILURE))
    assert [e.step for e in read_scalars(run_dir / "manual")["loss/train"]] == drawn
    grad = read_scalars(run_dir / "parity" / "grad")[RATIO]
    assert [e.step for e in grad] == drawn and all(e.value > 0 for e in grad)  # above the tolerance line
    summary_metrics = read_scalars(run_dir / "summary")
    assert [(e.step, e.value) for e in summary_metrics[PASSED]] == [(1, 0.0)]
    assert [(e.step, e.value) for e in summary_metrics[FAILED_STEP]] == [(1, 1.0)]
    assert summary_metrics[FAILED_STAGE][0].value == STAGES.index("grad") + 1
    content = accumulator(run_dir / "summary").SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    row = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
    assert row["1.verdict"].string_value == "FAIL step 1 grad"
    text = accumulator(run_dir / "summary").Tensors("verdict/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("**FAIL: first difference at step 1, stage grad")


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


BOARD_REFUSALS = [
    ("an-empty-logdir", [], "no runs with TensorBoard event files under"),
    ("a-run-that-is-not-there", ["nope"], "nope: no such run under"),
    ("a-run-without-event-files", ["quiet"], "no TensorBoard event files in"),
]


@pytest.mark.parametrize(("case", "names", "message"), BOARD_REFUSALS, ids=[case[0] for case in BOARD_REFUSALS])
def test_board_refuses_what_it_cannot_serve_in_one_line(tmp_path, capsys, case, names, message):
    logdir = tmp_path / "runs"
    logdir.mkdir()
    if case == "a-run-without-event-files":
        assert main(["run", "--steps", "2", "--no-tensorboard", "--logdir", str(logdir), "--run-name", "quiet"]) == 0
        capsys.readouterr()
    assert main(["board", *names, "--logdir", str(logdir), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err


def test_a_histogram_wider_than_the_largest_float_is_counted_not_a_crash():
    """Weights of ±1e307 and more after a diverging step (SGD at lr 1e308): max - min overflows to inf,
    which made every bucket index negative; each value is counted once, the edges span the range."""
    values = np.array([-1.7e308, -1e307, 0.0, 2.5, 1.7e308])
    histogram = histogram_summary("weights/w", values).value[0].histo
    assert sum(histogram.bucket) == len(values) and histogram.bucket_limit[-1] == 1.7e308
    assert all(np.isfinite(histogram.bucket_limit))
