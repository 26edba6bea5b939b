"""End to end: a real TensorBoard server on 127.0.0.1 (``compare.output.board``, the one start-up helper)
serves a real run: both sides' curves, one parity run per stage, the HParams session groups; and on a
log directory of 20 runs and 3 experiments, ``board``'s address opens the runs it says through
TensorBoard's own run filter, and the command names the failing runs, until Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from compare.cli.board import choose, served_runs
from compare.cli.main import build_parser, main
from compare.output.board import SELECTED_BY_DEFAULT, Board, get_json
from compare.output.parity_curves import RATIO
from compare.output.runlist import listing

pytestmark = pytest.mark.server
STEPS = 12
WAIT_S = 90  # bounded: the server loads a run in a few seconds here; a hung start fails the test, never the suite
STAGES_OF_A_PLAIN_RUN = ("forward", "loss", "grad", "state", "param")  # no dropout or batch norm: no eval
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["run", "--steps", str(STEPS), "--log-every", "4", "--logdir", str(logdir)]
    assert main([*argv, "--run-name", "e2e"]) == 0
    assert main([*argv, "--run-name", "lr", "--lr", "0.002"]) == 0
    assert main([*argv, "--run-name", "bad", "--inject", "bias-grad-averaged"]) == 1
    return logdir


@pytest.fixture(scope="module")
def board(runs):
    with Board({name: runs / name for name in ("e2e", "lr", "bad")}) as served:
        served.wait(WAIT_S)
        yield served, json.loads((runs / "e2e" / "report.json").read_text())


def test_the_server_lists_every_sub_run_and_one_run_per_parity_stage(board):
    served, _ = board
    listed = set(served.get("/data/runs"))
    expected = {"e2e/manual", "e2e/torch", "e2e/difference", "e2e/summary", "e2e/parity/tolerance"}
    assert expected | {f"e2e/parity/{stage}" for stage in STAGES_OF_A_PLAIN_RUN} <= listed
    assert "e2e/parity/eval" not in listed  # a stage the run does not have has no run


def test_each_parity_stage_is_served_under_the_tolerance_line(board):
    served, _ = board
    tolerance = served.get("/data/plugin/scalars/scalars", run="e2e/parity/tolerance", tag=RATIO)
    assert [step for _, step, _ in tolerance] == list(range(1, STEPS + 1))
    assert all(value == 0 for _, _, value in tolerance)  # log10(max_rel / tolerance) = 0 is the line
    for stage in STAGES_OF_A_PLAIN_RUN:
        points = served.get("/data/plugin/scalars/scalars", run=f"e2e/parity/{stage}", tag=RATIO)
        assert points and all(value < 0 for _, _, value in points)  # a passing run stays under it
    failing = served.get("/data/plugin/scalars/scalars", run="bad/parity/grad", tag=RATIO)
    assert failing[0][2] > 0  # the injected fault is over the line at step 1


def test_both_sides_carry_the_same_tags_and_their_difference_its_own(board):
    served, _ = board
    tags = served.get("/data/plugin/scalars/tags")
    assert {"loss/train", "lr", "loss/validation", "accuracy/validation"} <= set(tags["e2e/manual"])
    assert set(tags["e2e/manual"]) == set(tags["e2e/torch"])
    assert set(tags["e2e/difference"]) == {
        "loss/train_manual_minus_torch",
        "loss/validation_manual_minus_torch",
        "accuracy/validation_manual_minus_torch",
    }


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_loss_curves_served_equal_the_report(board, side):
    served, report = board
    points = served.get("/data/plugin/scalars/scalars", run=f"e2e/{side}", tag="loss/train")
    assert [step for _, step, _ in points] == list(range(1, STEPS + 1))
    expected = report["losses"][side]
    # TensorBoard stores float32: 1e-6 relative is float32's precision with room
    assert all(abs(value - want) <= 1e-6 * abs(want) for (_, _, value), want in zip(points, expected, strict=True))


def test_hparams_session_groups_are_named_by_run_with_the_verdict_as_a_metric(board):
    served, _ = board
    body = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 10}
    groups = {
        group["name"]: group for group in served.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]
    }
    assert set(groups) == {"e2e", "lr", "bad"}  # run names, not hashes
    assert groups["lr"]["hparams"]["4.lr"] == 0.002 and groups["e2e"]["hparams"]["3.optimizer"] == "adam"
    assert groups["bad"]["hparams"]["5.special"] == "inject bias-grad-averaged"
    assert (
        groups["bad"]["hparams"]["1.verdict"] == "FAIL step 1 grad" and groups["e2e"]["hparams"]["1.verdict"] == "PASS"
    )
    passed = {
        name: next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == "summary/passed")
        for name, group in groups.items()
    }
    assert passed == {"e2e": 1.0, "lr": 1.0, "bad": 0.0}
    experiment = served.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {info["displayName"] for info in experiment["hparamInfos"]} >= {"optimizer", "lr", "special", "activation"}


def test_runs_and_experiments_share_one_layout_each_chart_once(many_board):
    """TensorBoard merges the layouts of every run served: the experiments' repeats none of the runs'."""
    layout = many_board.get("/data/plugin/custom_scalars/layout")
    titles = [chart["title"] for category in layout["category"] for chart in category["chart"]]
    assert len(layout["category"]) == 2 and len(titles) == len(set(titles))


def test_custom_scalars_layout_is_served(board):
    served, _ = board
    layout = served.get("/data/plugin/custom_scalars/layout")
    titles = [category["title"] for category in layout["category"]]
    assert titles == [
        "Loss: manual and torch, and manual − torch",
        "Parity by stage, under the tolerance (read at smoothing 0)",
    ]


def served_filter(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(query, fragment) of an address ``board`` prints, decoded."""
    parts = urllib.parse.urlsplit(url)
    fragment = dict(urllib.parse.parse_qsl(parts.fragment.split("&", 1)[1]))
    return dict(urllib.parse.parse_qsl(parts.query)), fragment


@pytest.fixture(scope="module")
def many_board(many_runs):
    logdir, _ = many_runs
    runs, _ = served_runs(logdir, [])
    with Board(runs) as served:
        served.wait(WAIT_S)
        yield served


def latest(logdir) -> str:
    marks = [path for name in ("report.json", "summary.json") for path in logdir.glob(f"*/{name}")]
    return max(marks, key=lambda path: path.stat().st_mtime).parent.name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], lambda logdir, failing: {latest(logdir), *failing}),
        (["--experiment", "vanishing-gradients"], lambda logdir, _: {p.name for p in logdir.glob("experiment-van*")}),
        (["NAME"], lambda logdir, failing: {failing[0]}),
        (["--all"], lambda logdir, _: {path.name for path in logdir.iterdir()}),
    ],
    ids=["latest-and-failing", "experiment", "named", "all"],
)
def test_the_address_opens_the_chosen_runs_through_tensorboards_run_filter(many_runs, many_board, argv, expected):
    """The filter in the address, applied to what the server lists, leaves exactly the chosen runs; it is
    short, and smoothing is 0 for both halves of TensorBoard (query: Time Series; fragment: the others)."""
    logdir, failing = many_runs
    argv = [failing[0] if arg == "NAME" else arg for arg in argv]
    args = build_parser().parse_args(["board", "--logdir", str(logdir), *argv])
    runs, named = served_runs(logdir, args.runs)
    chosen, said = choose(args, runs, named, listing(logdir))
    url = many_board.url(None, chosen)
    query, fragment = served_filter(url)
    crowded = len(many_board.chosen_runs(chosen)) > SELECTED_BY_DEFAULT  # the older dashboards would tick none
    assert urllib.parse.urlsplit(url).fragment.startswith("timeseries&" if crowded else "custom_scalars&")
    assert ("tagFilter" in query) == crowded
    assert query["smoothing"] == fragment["_smoothingWeight"] == "0"
    listed = many_board.get("/data/runs")
    if chosen is None:
        assert "runFilter" not in query and len(url) < 200
        matched = listed
    else:
        assert query["runFilter"] == fragment.get("regexInput", query["runFilter"]) and len(url) < 400  # was 26,480
        assert ("regexInput" in fragment) == (not crowded)
        matched = [run for run in listed if re.search(query["runFilter"], run)]  # JavaScript's RegExp agrees here
    assert {run.split("/")[0] for run in matched} == expected(logdir, failing)
    assert all(name in said for name in (failing if not argv else []))


def test_the_board_command_names_the_failing_runs_and_stops_on_ctrl_c(many_runs):
    """A real process on the 20-run log directory: who is shown (the failing runs by name), the address,
    how to open more, each a short line or two; Ctrl-C ends it with exit 0."""
    logdir, failing = many_runs
    command = [sys.executable, "-m", "compare", "board", "--logdir", str(logdir), "--port", "0"]
    env = {**os.environ, "COLUMNS": "100"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, lines = time.monotonic() + WAIT_S, []
        while not any(line.startswith("  more: ") for line in lines) and time.monotonic() < deadline:
            if process.poll() is not None:
                break
            lines.append(process.stdout.readline())
        assert any(line.startswith("  more: ") for line in lines), "".join(lines) + process.stderr.read()
        (url,) = [line.strip() for line in lines if line.startswith("  http://127.0.0.1:")]
        said = " ".join(line.strip() for line in lines[: lines.index(f"  {url}\n")])
        assert said.startswith("backprop-parity board: the latest, ") and all(name in said for name in failing)
        assert len(lines) <= 6 and all(len(line.rstrip("\n")) <= 100 for line in lines if "http" not in line)
        base, opener = url.split("/data/plugin/backprop_parity/open?")  # the settings page first: outliers shown
        query, _ = served_filter(base + urllib.parse.parse_qs(opener)["to"][0])
        listed = get_json(base + "/data/runs")
        assert {run.split("/")[0] for run in listed if re.search(query["runFilter"], run)} == {latest(logdir), *failing}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
