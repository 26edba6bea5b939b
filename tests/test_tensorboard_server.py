"""End to end: a real TensorBoard server on 127.0.0.1 serves both sides' curves of a real run."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from compare.cli.main import main

pytestmark = pytest.mark.server
STEPS = 12
WAIT_S = 90  # bounded: the server starts in a few seconds here; a hung start fails the test, never the suite


def get(base: str, path: str, **params) -> object:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    report = logdir / "report.json"
    argv = ["run", "--steps", str(STEPS), "--log-every", "4", "--logdir", str(logdir), "--run-name", "e2e"]
    assert main([*argv, "--json", str(report)]) == 0
    tmp = tmp_path_factory.mktemp("tb-tmp")  # TensorBoard writes an info file into TMPDIR
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    try:
        deadline = time.monotonic() + WAIT_S
        base = None
        lines = []
        while base is None and time.monotonic() < deadline and process.poll() is None:
            line = process.stderr.readline()  # the URL is printed on stderr
            lines.append(line)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if match:
                base = f"http://127.0.0.1:{match.group(1)}"
        assert base, "TensorBoard did not print its URL:\n" + "".join(lines)
        while time.monotonic() < deadline:  # poll, bounded, until the runs are loaded
            runs = get(base, "/data/runs")
            if {"e2e/manual", "e2e/torch", "e2e/parity"} <= set(runs):
                break
            time.sleep(0.5)
        yield base, json.loads(report.read_text())
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_server_lists_the_three_sub_runs(server):
    base, _ = server
    assert {"e2e/manual", "e2e/torch", "e2e/parity"} <= set(get(base, "/data/runs"))


def test_both_sides_carry_the_same_tags(server):
    base, _ = server
    tags = get(base, "/data/plugin/scalars/tags")
    assert {"loss/train", "lr", "loss/validation", "accuracy/validation"} <= set(tags["e2e/manual"])
    assert set(tags["e2e/manual"]) == set(tags["e2e/torch"])
    assert {"max_rel/grad", "tolerance/grad", "max_abs/param"} <= set(tags["e2e/parity"])


@pytest.mark.parametrize("side", ["manual", "torch"])
def test_loss_curves_served_equal_the_report(server, side):
    base, report = server
    points = get(base, "/data/plugin/scalars/scalars", run=f"e2e/{side}", tag="loss/train")
    assert [step for _, step, _ in points] == list(range(1, STEPS + 1))
    expected = report["losses"][side]
    assert all(abs(value - want) <= 1e-6 * abs(want) for (_, _, value), want in zip(points, expected, strict=True))


def test_custom_scalars_layout_is_served(server):
    base, _ = server
    layout = get(base, "/data/plugin/custom_scalars/layout")
    titles = [category["title"] for category in layout["category"]]
    assert titles == ["Loss (manual vs torch)", "Parity (read at smoothing 0)"]
