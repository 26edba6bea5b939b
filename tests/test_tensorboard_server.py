"""End to end: a real TensorBoard server on 127.0.0.1 (``compare.output.board``, the one start-up helper)
serves a real run: both sides' curves, one parity run per stage, the HParams session groups; and the
``board`` command serves the latest run until Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from compare.cli.main import main
from compare.output.board import Board, get_json
from compare.output.parity_curves import RATIO

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
    assert groups["lr"]["hparams"]["2.lr"] == 0.002 and groups["e2e"]["hparams"]["1.optimizer"] == "adam"
    assert groups["bad"]["hparams"]["3.special"] == "inject bias-grad-averaged"
    passed = {
        name: next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == "summary/passed")
        for name, group in groups.items()
    }
    assert passed == {"e2e": 1.0, "lr": 1.0, "bad": 0.0}
    experiment = served.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {info["displayName"] for info in experiment["hparamInfos"]} >= {"optimizer", "lr", "special", "activation"}


def test_custom_scalars_layout_is_served(board):
    served, _ = board
    layout = served.get("/data/plugin/custom_scalars/layout")
    titles = [category["title"] for category in layout["category"]]
    assert titles == [
        "Loss: manual and torch, and manual − torch",
        "Parity by stage, under the tolerance (read at smoothing 0)",
    ]


def test_the_board_command_serves_the_latest_run_until_ctrl_c(runs, tmp_path):
    """A real process: it prints the address with every run ticked, serves only the latest run, and Ctrl-C
    ends it with exit 0."""
    command = [sys.executable, "-m", "compare", "board", "--logdir", str(runs), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        deadline, lines, url = time.monotonic() + WAIT_S, [], None
        while url is None and time.monotonic() < deadline and process.poll() is None:
            lines.append(process.stdout.readline())
            match = re.search(
                r"(http://127\.0\.0\.1:\d+)/#custom_scalars&_smoothingWeight=0&runSelectionState=", lines[-1]
            )
            url = match.group(1) if match else None
        assert url, "no address printed:\n" + "".join(lines)
        assert "TensorBoard on bad" in "".join(lines)  # the latest run
        assert {run.split("/")[0] for run in get_json(f"{url}/data/runs")} == {"bad"}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
