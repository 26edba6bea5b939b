"""One verdict everywhere (``compare.core.verdict``): the last line a run prints, its exit status,
report.json's ``verdict``, its ``runs`` row, its HParams verdict cell and its Text card say the same word;
``runs show`` prints a past run's verdict back as it was printed, ``runs diff`` puts two runs side by side."""

import io
import json
import signal

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from compare import exits
from compare.core.metrics import TensorDiff
from compare.core.records import Check, Drift, RunResult, StepRecord
from compare.core.verdict import EXIT, Word, of_report, of_run
from compare.experiments import EXPERIMENTS, Session
from compare.output import report
from compare.output.runlist import listing
from conftest import invoke

WIDE = "400"  # columns: nothing the tests compare is wrapped
VERDICT_LINES = tuple(f"{word}:" for word in Word)

RUNS = [  # (flags, the verdict's word, the exit status)
    (["--steps", "3"], Word.PASS, 0),
    (["--steps", "4", "--optimizer", "sgd", "--lr", "1e308"], Word.DIVERGED, 4),
    (["--steps", "3", "--variant", "adam_eps_hat"], Word.DEPARTS, 1),
    (["--steps", "2", "--inject", "bias-grad-averaged"], Word.FAIL, 1),
]


def hparams_row(summary_dir) -> dict:
    events = EventAccumulator(str(summary_dir))
    events.Reload()
    content = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    return hparams_metadata.parse_session_start_info_plugin_data(content).hparams


def text_card(summary_dir) -> str:
    events = EventAccumulator(str(summary_dir))
    events.Reload()
    return events.Tensors("verdict/text_summary")[0].tensor_proto.string_val[0].decode()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("flags", "word", "status"), RUNS)
def test_every_place_says_the_one_verdict_and_it_is_the_last_line(tmp_path, capsys, monkeypatch, flags, word, status):
    monkeypatch.setenv("COLUMNS", WIDE)
    logdir = tmp_path / "runs"
    got, out, _ = invoke(["run", *flags, "--logdir", str(logdir)], capsys)
    (run_dir,) = logdir.iterdir()
    printed = (run_dir / "verdict.txt").read_text().splitlines()
    assert got == status == EXIT[word]
    assert out.splitlines()[-1] == printed[-1] and printed[-1].startswith(f"{word}:")  # the last line
    assert [line for line in printed if line.startswith(VERDICT_LINES)] == [printed[-1]]  # the one verdict line
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["verdict"] == word and of_report(saved).word is word
    (row,) = listing(logdir)
    assert row.verdict.startswith(str(word)) and row.passed is (word is Word.PASS)
    assert hparams_row(run_dir / "summary")["1.verdict"].string_value.startswith(str(word))
    assert text_card(run_dir / "summary").startswith(f"**{printed[-1]}**")  # the card's heading: the same line


def departure(step: int, max_rel: float) -> Check:
    return Check(step, "grad", "0.weight", TensorDiff(max_rel, max_rel, (0,)), max_rel=1e-10)


def result_of(records: list[StepRecord], complete: bool = True) -> RunResult:
    result = RunResult()
    for record in records:
        result.add(record)
    result.complete = complete
    return result


def test_a_drift_adjudicated_pass_says_so_with_how_much_and_from_which_step():
    drifted = departure(7, 8.33e-10)
    records = [StepRecord(step, 1.0, 1.0, 0.1, [departure(step, 1e-16)]) for step in range(1, 7)]
    records.append(StepRecord(7, 1.0, 1.0, 0.1, [drifted], drift=Drift(7, (drifted,), {"grad 0.weight": 1e-16})))
    result = result_of(records)
    decided = of_run(result)
    assert decided.word is Word.PASS_DRIFT and decided.passed and decided.exit_status() == exits.PASS
    assert decided.cell() == "PASS (drift x8.33 from 7)"  # beside a worst max_rel/tolerance of 8.33
    last = report.verdict(result, 7).splitlines()[-1]
    assert last.startswith("PASS (drift adjudicated): ") and "from step 7" in last and "8.33" in last
    assert of_report(report.build(result, {"dtype": "float64"}, None)).cell() == decided.cell()


def test_a_stopped_run_is_incomplete_with_the_signal_or_the_abort_in_its_exit_status():
    result = result_of([StepRecord(1, 1.0, 1.0, 0.1, [departure(1, 1e-16)])], complete=False)
    decided = of_run(result)
    assert decided.word is Word.INCOMPLETE and decided.cell() == "INCOMPLETE 1 steps"
    assert decided.exit_status(signal.SIGINT) == exits.INTERRUPTED and decided.exit_status(aborted=True) == 3
    assert report.verdict(result, 10).splitlines()[-1] == "INCOMPLETE: stopped after 1 of 10 steps"


def test_a_diverged_sub_run_of_the_learning_rate_experiment_reads_diverged(tmp_path):
    experiment = EXPERIMENTS["learning-rate"]
    session = Session("learning-rate", tmp_path, io.StringIO())
    with np.errstate(over="ignore", invalid="ignore"):
        experiment.run(experiment.params(steps=5, lrs=(0.3, 1e308)), session)
    cells = {path.parent.name: hparams_row(path)["1.verdict"].string_value for path in tmp_path.glob("*/summary")}
    assert cells == {"lr-0.3": "PASS", "lr-1e+308": "DIVERGED step 2 loss"}
    assert text_card(tmp_path / "lr-1e+308" / "summary").startswith("**DIVERGED: the loss diverged at step 2")


def test_runs_show_prints_the_verdict_as_the_run_printed_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDE)
    logdir = tmp_path / "runs"
    argv = ["run", "--steps", "2", "--inject", "bias-grad-averaged", "--no-tensorboard", "--logdir", str(logdir)]
    _, printed, _ = invoke([*argv, "--run-name", "faulty"], capsys)
    status, shown, _ = invoke(["runs", "show", "faulty", "--logdir", str(logdir)], capsys)
    assert status == 0 and shown.startswith("stage     worst max_rel") and printed.endswith(shown)
    assert shown.splitlines()[-1].startswith("FAIL: first difference at step 1")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "show", "nothing"], "nothing: no run under"),
        (["runs", "show"], "runs show takes one RUN"),
        (["runs", "diff", "a"], "runs diff takes two runs"),
        (["runs", "a", "b"], "runs takes one PATTERN"),
    ],
)
def test_runs_show_and_diff_refuse_what_they_cannot_find_in_one_line(tmp_path, capsys, argv, message):
    status, _, err = invoke([*argv, "--logdir", str(tmp_path)], capsys)
    assert status == exits.USAGE and message in err and len(err.strip().splitlines()) == 1


def test_runs_diff_puts_settings_and_stage_figures_side_by_side(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    logdir = tmp_path / "runs"
    for name, flags in (("plain", []), ("faulty", ["--inject", "bias-grad-averaged"])):
        invoke(["run", "--steps", "2", "--no-tensorboard", "--logdir", str(logdir), "--run-name", name, *flags], capsys)
    status, out, _ = invoke(["runs", "diff", "plain", "faulty", "--logdir", str(logdir)], capsys)
    rows = {line[2:].split()[0]: line for line in out.splitlines()[1:]}
    assert status == 0 and out.splitlines()[0].split() == ["plain", "faulty"]
    assert rows["verdict"].startswith("* ") and "PASS" in rows["verdict"] and "FAIL step 1 grad" in rows["verdict"]
    assert rows["inject"].startswith("* ") and rows["inject"].rstrip().endswith("bias-grad-averaged")
    assert rows["dtype"].startswith("  ") and rows["dtype"].count("float64") == 2  # the same: not marked
    plain, faulty = (json.loads((logdir / name / "report.json").read_text()) for name in ("plain", "faulty"))
    for run in (plain, faulty):
        assert f"{run['worst']['grad']['max_rel']:.3e} / 1e-10 at step" in out


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_an_experiment_ends_on_its_verdict_line_in_either_language(tmp_path, capsys, lang):
    argv = ["experiment", "learning-rate", "--steps", "3", "--no-tensorboard", "--lang", lang]
    argv += ["--logdir", str(tmp_path)]
    status, out, _ = invoke(argv, capsys)
    assert status == 0 and out.splitlines()[-1].startswith("PASS: ")  # the word itself, in every language
