"""Terminal text that survives a narrow terminal and Hangul: widths counted as a terminal draws them,
lines wrapped by word (never inside a number), tables padded by display width; a readable run header;
the optimizers experiment's summary true to what it races."""

import io
import re

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from compare import i18n
from compare.cli.runs import COLUMNS, fit
from compare.experiments import EXPERIMENTS, Session
from compare.experiments.optimizers import Params
from compare.output import figures, textwidth
from conftest import invoke
from manual.optim import OPTIMIZERS


@pytest.mark.parametrize(
    ("text", "columns"),
    [("PASS", 4), ("결론", 4), ("판정: 좋음", 10), ("max_rel 1.0e-10", 15), ("∂L/∂W", 5), ("", 0)],
)
def test_display_width_counts_a_hangul_syllable_as_two_columns(text, columns):
    assert textwidth.width(text) == columns
    assert textwidth.width(textwidth.ljust(text, 16)) == 16


def test_a_cut_cell_keeps_to_its_columns_with_hangul():
    cut = textwidth.cut("실행 학습률 0.003 판정", 9)
    assert cut.endswith("…") and textwidth.width(cut) <= 9


NUMBERS = "max_abs 5.676e-01, max_rel 9.688e-01 > tolerance 1.0e-10 at step 12345, look at --lr 1e+308 (2.37e-05)"


@pytest.mark.parametrize("columns", [20, 37, 60, 100])
def test_long_lines_wrap_by_word_and_never_inside_a_number(columns):
    lines = textwidth.wrap(NUMBERS, columns)
    assert " ".join(line.strip() for line in lines) == NUMBERS  # nothing lost, every word whole
    numbers = set(re.findall(r"[-+]?\d[\d.e+-]*", NUMBERS))
    assert all(set(re.findall(r"[-+]?\d[\d.e+-]*", line)) <= numbers for line in lines)
    assert all(len(line) <= columns for line in lines if " " in line.strip())
    assert all(line.startswith("  ") for line in lines[1:])  # a continuation is indented


def test_the_runs_table_lines_up_hangul_by_display_width():
    rows = [tuple(header for header, _ in COLUMNS)]
    rows += [("run-a", "PASS", "실험 학습률", "0.01", "float64", "adam", "relu", "3", "2026-12-07 12:00")]
    rows += [("run-b", "FAIL step 1 grad", "", "0.1", "float32", "sgd", "tanh", "30", "2026-12-07 12:01")]
    lines = fit(rows, 200)
    cells = ("lr", "0.01", "0.1")
    starts = {textwidth.width(line[: line.index(cell)]) for line, cell in zip(lines, cells, strict=True)}
    assert len(starts) == 1  # the lr column starts at the same terminal column on every row


def test_the_run_header_reads_as_flags_not_a_dict(tmp_path, capsys):
    argv = ["run", "--steps", "1", "--optimizer", "adam", "--betas", "0.8,0.99", "--no-tensorboard"]
    _, out, _ = invoke([*argv, "--logdir", str(tmp_path)], capsys)
    header = out.splitlines()[0]
    assert header.startswith("backprop-parity: adam lr=0.01 betas=(0.8, 0.99) on spiral") and "{" not in header


def test_the_optimizers_experiment_says_which_optimizers_it_races():
    summary, raced = EXPERIMENTS["optimizers"].summary, Params().optimizers
    assert f"{len(raced)} of the package's {len(OPTIMIZERS)} optimizers" in summary
    assert f"the other {len(OPTIMIZERS) - len(raced)}" in summary
    assert [name.lower() for name in re.findall(r"[A-Z][A-Za-z]+", summary.split(" (")[0])] == list(raced)


@pytest.mark.parametrize(
    "title",
    [
        "gradient norm against layer depth (median over training)",
        "층 깊이에 따른 기울기 크기 (학습 전체의 중앙값, 하위 실행별)",
    ],
)
def test_a_picture_title_fits_its_card(title):
    """The depth picture's title ran off the 360-pixel card ("median ove"): every line is inside it."""
    series = {name: ([1, 2, 3], [1.0, 0.5, 0.25]) for name in ("relu", "leaky_relu")}
    figure = figures.lines(title, "layer", "norm", series, logy=True)
    figures.set_hangul(figure)
    FigureCanvasAgg(figure).draw()
    extent = figure.axes[0].title.get_window_extent()
    assert extent.x0 >= 0 and extent.x1 <= figure.bbox.width


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_an_experiments_table_lines_up_in_either_language(lang):
    """The Korean table's headings ran past their columns (3 columns off): each column is now as wide as
    its widest heading or cell, counted in terminal columns."""
    experiment = EXPERIMENTS["optimizers"]
    session = Session("optimizers", None, io.StringIO())
    with i18n.language(lang):
        outcome = experiment.run(experiment.params(steps=3, optimizers=("sgd", "adam")), session)
    widths = {textwidth.width(line) for line in outcome.table}
    assert len(outcome.table) == 3 and len(widths) == 1  # every right-aligned row ends where the heading ends


def test_hangul_text_wraps_by_display_width():
    """A Korean conclusion wrapped by characters ran past the terminal (137 columns at a width of 110)."""
    text = "결론: 같은 2-16-16-3 신경망을 8가지로 초기화하고 spiral에서 똑같이 Adam 4단계를 학습하면, " * 3
    lines = textwidth.wrap(text.strip(), 40)
    assert len(lines) > 1 and all(textwidth.width(line) <= 40 for line in lines)
    assert " ".join(line.strip() for line in lines) == " ".join(text.split())


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_wrapped_lines_and_a_pipe_the_lines_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    assert all(len(line) <= 40 for line in textwidth.for_terminal(NUMBERS, Terminal()))
    assert textwidth.for_terminal(NUMBERS, io.StringIO()) == [NUMBERS]  # a script reads it line by line
