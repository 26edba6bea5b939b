"""The screenshot script (docs/tensorboard.md's pictures), run for real: the 20-run demo log directory, a
real TensorBoard on 127.0.0.1, a real headless Chromium; every page it captures has content (skipped, with one
line saying why, where no Chromium is installed: `.ci/run` installs Debian's when it can)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from screenshot import BROWSERS, PAGES, browser, rendered  # noqa: E402

from compare.cli.board import choose, served_runs  # noqa: E402
from compare.cli.main import build_parser  # noqa: E402
from compare.output.board import Board  # noqa: E402
from compare.output.runlist import listing  # noqa: E402

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(
        not any(map(shutil.which, BROWSERS)), reason="no chromium installed (apt-get install chromium; .ci/run does)"
    ),
]
TIMEOUT_S = 600  # 20 short runs and experiments, and three captures of a minute's virtual time each
SHOWN = ["custom_scalars.png", "hparams.png", "images.png"]  # board's default page, the overview, the pictures


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    out = tmp_path_factory.mktemp("img")
    command = [sys.executable, str(ROOT / "scripts" / "screenshot.py"), "--out", str(out), "--steps", "8"]
    command += ["--pages", ",".join(SHOWN)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", SHOWN)
def test_each_page_is_captured_with_content(shots, name):
    *_, width, height = PAGES[name]
    with Image.open(shots / name) as image:
        assert image.size == (width, height)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    # TensorBoard's orange bar alone is a few flat colours; a page with charts, tables or text has many
    # distinct grey levels and is neither blank nor one flat panel
    assert len(np.unique(pixels)) > 40
    body = pixels[80:, 300:]  # under the header, right of the run list: where the tab's content is
    assert body.std() > 10


RUN_CELL = re.compile(r'class="table-column-run[^"]*">(?:<!---->)*<div[^>]*>\s*([^<]+?)\s*</div>')


def test_board_s_default_address_shows_the_latest_and_every_failing_run_and_no_other(many_runs, tmp_path):
    """What a user sees at `board`'s address: the run table Time Series draws, read from the DOM the
    browser rendered (its Angular table is light DOM): the latest run and every failing one, nothing else."""
    logdir, failing = many_runs
    runs, _ = served_runs(logdir, [])
    args = build_parser().parse_args(["board", "--logdir", str(logdir)])
    chosen, _ = choose(args, runs, [], listing(logdir))
    with Board(runs) as board:
        board.wait(120)
        page = rendered(browser(), board.url("timeseries", chosen), tmp_path / "profile")
    shown = {cell.split("/")[0] for cell in RUN_CELL.findall(page)}
    assert failing and set(failing) <= shown, (failing, shown)
    assert shown == set(chosen), shown  # the latest run besides the failing ones, no passing run else
