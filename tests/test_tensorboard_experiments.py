"""An experiment's TensorBoard, read back: its conclusion as the first text, a layout, an HParams row
per sub-run, and its pictures, as images and as the same PNG files in its directory."""

import io
import json
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.image import imread
from matplotlib.text import Text
from tensorboard.backend.event_processing.event_accumulator import (
    STORE_EVERYTHING_SIZE_GUIDANCE,
    EventAccumulator,
)
from tensorboard.plugins.hparams import metadata as hparams_metadata

from compare import i18n
from compare.cli.main import main
from compare.experiments import EXPERIMENTS, Session
from compare.experiments.text import pad
from compare.output import figures
from compare.output.experiment_board import pictures_from

STEPS = 25
ACTIVATIONS = ("sigmoid", "relu")


def accumulator(run_dir) -> EventAccumulator:
    events = EventAccumulator(str(run_dir), size_guidance=STORE_EVERYTHING_SIZE_GUIDANCE)
    events.Reload()
    return events


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["experiment", "vanishing-gradients", "--steps", str(STEPS), "--logdir", str(logdir)]
    assert main(argv) == 0
    (root,) = logdir.iterdir()
    return root, json.loads((root / "summary.json").read_text())


def test_the_conclusion_is_the_first_text_of_the_experiment(experiment):
    root, summary = experiment
    events = accumulator(root / "summary")
    assert "custom_scalars__config__" in events.Tags()["tensors"]
    text = events.Tensors("conclusion/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("**PASS**\n\nconclusion: ")
    assert summary["conclusion"] in text and "parity: held at every one of" in text


@pytest.mark.parametrize("name", ["gradient_norm_by_depth", "loss_by_subrun"])
def test_pictures_are_images_in_tensorboard_and_the_same_png_files(experiment, name):
    root, _ = experiment
    (image,) = accumulator(root / "summary").Images(f"pictures/{name}")
    png = (root / f"{name}.png").read_bytes()
    assert image.encoded_image_string == png
    card = tuple(round(inches * figures.DPI) for inches in figures.SIZE)
    assert (image.width, image.height) == figures.png_size(png) == card == (360, 270)  # TensorBoard's card size
    pixels = imread(io.BytesIO(png))
    assert pixels.std() > 0.05  # not blank: curves, axes and text on white


def test_each_sub_run_has_an_hparams_row_with_its_activation_and_verdict(experiment):
    root, _ = experiment
    for activation in ("sigmoid", "tanh", "relu", "leaky_relu"):
        events = accumulator(root / activation / "summary")
        content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        values = hparams_metadata.parse_session_start_info_plugin_data(content).hparams
        start = hparams_metadata.parse_session_start_info_plugin_data(content)
        assert start.group_name == f"{activation} · vanishing-gradients"  # the Trial ID names the sub-run first
        assert values["5.special"].string_value == "experiment vanishing-gradients"
        assert values["activation"].string_value == activation and values["3.optimizer"].string_value == "sgd"
        assert values["4.lr"].number_value == EXPERIMENTS["vanishing-gradients"].params().lr
        assert values["1.verdict"].string_value == "PASS"
        passed = events.Scalars("summary/passed")
        assert [(e.step, e.value) for e in passed] == [(STEPS, 1.0)]


def test_gradient_norm_against_depth_is_drawn_from_the_measured_norms(tmp_path):
    """Each line of the picture is the sub-run's median gradient norm per layer, first layer to last."""
    experiment = EXPERIMENTS["vanishing-gradients"]
    params = experiment.params(steps=8, depth=4, activations=ACTIVATIONS)
    session = Session(experiment.name, tmp_path, io.StringIO(), tensorboard=False)
    experiment.run(params, session)
    figure = pictures_from(session.trained)["gradient_norm_by_depth"]
    drawn = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert set(drawn) == set(ACTIVATIONS)
    for trained in session.trained:
        expected = [np.median(trained.curve(f"grad_norm/layer{k:02d}")) for k in range(1, 5)]
        np.testing.assert_array_equal(drawn[trained.name].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_array_equal(drawn[trained.name].get_ydata(), expected)
    assert figure.axes[0].get_yscale() == "log"


def test_an_experiments_own_picture_goes_to_tensorboard_and_to_a_png(tmp_path):
    """The facility an experiment calls for a picture of its own (the spread of minima, say)."""
    session = Session("initialization", tmp_path, io.StringIO())
    figure = figures.lines(
        "final loss per start", "init seed", "loss", {"loss": ([0, 1, 2], [0.1, 0.3, 0.2])}, joined=False
    )
    session.picture("spread_of_minima", figure)
    session.conclude(["PASS"], [], passed=True)
    (image,) = accumulator(tmp_path / "summary").Images("pictures/spread_of_minima")
    assert image.encoded_image_string == (tmp_path / "spread_of_minima.png").read_bytes()
    (points,) = figure.axes[0].get_lines()
    assert points.get_linewidth() == 0 and points.get_marker() == "o"  # points, not a line


def test_overfitting_draws_train_against_validation(tmp_path):
    experiment = EXPERIMENTS["overfitting"]
    session = Session(experiment.name, tmp_path, io.StringIO(), tensorboard=False)
    experiment.run(experiment.params(steps=30), session)
    figure = pictures_from(session.trained)["train_vs_validation"]
    drawn = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert len(session.trained) > 1 and len(drawn) == 2 * len(session.trained)
    for trained in session.trained:
        validation, train = drawn[f"{trained.name} validation"], drawn[f"{trained.name} train"]
        np.testing.assert_array_equal(validation.get_ydata(), trained.curve("loss/validation"))
        np.testing.assert_array_equal(train.get_ydata(), trained.curve("loss/train_set"))


def test_the_initialization_experiment_draws_the_spread_of_its_minima(tmp_path):
    """One point per init seed, at the whole-set loss it reached: the picture and its PNG."""
    assert main(["experiment", "init", "--steps", "5", "--logdir", str(tmp_path)]) == 0
    (root,) = tmp_path.iterdir()
    summary = json.loads((root / "summary.json").read_text())
    (image,) = accumulator(root / "summary").Images("pictures/spread_of_minima")
    assert image.encoded_image_string == (root / "spread_of_minima.png").read_bytes()
    assert summary["numbers"]["loss_max"] > summary["numbers"]["loss_min"]  # a spread to draw


def test_a_korean_picture_is_lettered_in_hangul_and_coinciding_curves_stay_apart():
    """The --lang ko labels, drawn with the Hangul font koreanize-matplotlib ships (no glyph missing), and
    two identical curves (adam under adamw) each with its own line style and marker."""
    with i18n.language("ko"):
        title, step = i18n._("training loss of each sub-run"), i18n._("step")
    assert figures.has_hangul(title)  # translated
    same = ([1, 2, 3], [3.0, 2.0, 1.0])
    figure = figures.lines(title, step, "loss", {"adam": same, "adamw": same}, logy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for a missing glyph
        # (the log axis' 10^{-1} labels are math text, whose minus sign NanumGothic lacks)
        figures.png_bytes(figure)
    hangul = [text for text in figure.findobj(Text) if figures.has_hangul(text.get_text())]
    assert {text.get_text() for text in hangul} == {title, step}
    assert {Path(font_manager.findfont(text.get_fontproperties())).name for text in hangul} == {"NanumGothic.ttf"}
    assert Path(font_manager.findfont(figure.axes[0].title.get_fontproperties())).name == "NanumGothic.ttf"
    adam, adamw = figure.axes[0].get_lines()
    assert adam.get_linestyle() != adamw.get_linestyle() and adam.get_marker() != adamw.get_marker()


@pytest.mark.parametrize(
    ("text", "align"), [("활성화 함수", "<"), ("중앙값", ">"), ("median", ">"), ("1.491까지 단계", ">")]
)
def test_korean_table_cells_are_padded_by_display_width(text, align):
    """A Hangul syllable takes two terminal columns (East Asian width W): the cell is 16 columns wide."""
    cell = pad(text, 16, align)
    assert sum(2 if unicodedata.east_asian_width(char) == "W" else 1 for char in cell) == 16
    assert cell.strip() == text and (cell.startswith(text) if align == "<" else cell.endswith(text))


def test_a_korean_experiments_text_card_and_tables_are_korean(many_runs):
    """`--lang ko`: the text card's conclusion line is the Korean one, its table's header in Hangul."""
    logdir, _ = many_runs
    (root,) = logdir.glob("experiment-init-*")
    text = accumulator(root / "summary").Tensors("conclusion/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("**PASS**\n\n결론: ")
    assert "초기화 시드" in text  # the results table, as the terminal printed it
