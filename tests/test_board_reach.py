"""Every result one click away on ``board``: an experiment's pictures and conclusion each at an address
of their own (its summary run alone, whatever TensorBoard's 40-run default), every address through the
settings page that turns "Ignore outliers" off, the Text tab without a tag filter (each card once), and
no absolute path in what TensorBoard shows (its footer's data location)."""

import base64
import hashlib
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from compare.cli.board import experiment_lines
from compare.cli.main import main
from compare.output.board import SELECTED_BY_DEFAULT, Board

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    assert main(["run", "--steps", "2", "--logdir", str(logdir), "--run-name", "plain"]) == 0
    argv = ["experiment", "learning-rate", "--steps", "3", "--logdir", str(logdir)]
    assert main(argv) == 0
    assert main(["experiment", "chain-rule", "--logdir", str(logdir)]) == 0  # a text of its own: its derivation
    runs = {path.name: path for path in logdir.iterdir()}
    with Board(runs, label=f"{len(runs)} runs under runs (backprop-parity board)") as board:
        board.wait()
        yield board, logdir


def fetch(url: str) -> tuple[str, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode(), dict(response.headers)


def test_an_experiments_pictures_and_conclusion_each_have_an_address(served):
    board, logdir = served
    (name,) = [path.name for path in logdir.iterdir() if path.name.startswith("experiment-learning")]
    assert len(board.chosen_runs([name])) > SELECTED_BY_DEFAULT  # the older dashboards would tick none of them
    lines = experiment_lines(board, [name])
    assert [line.split(": ")[0].strip() for line in lines] == ["pictures", "conclusion"]
    for line, tab in zip(lines, ("images", "text"), strict=True):
        target = urllib.parse.parse_qs(urllib.parse.urlsplit(line.split(": ", 1)[1]).query)["to"][0]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
        assert urllib.parse.urlsplit(target).fragment.startswith(f"{tab}&") and "tagFilter" not in target
        listed = board.get("/data/runs")
        assert [run for run in listed if re.search(query["runFilter"][0], run)] == [f"{name}/summary"]


def test_every_address_turns_ignore_outliers_off_then_opens_the_dashboard(served):
    board, _ = served
    url = board.url(None, None)
    page, headers = fetch(board.address(url))
    (script,) = re.findall(r"<script>(.*)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in headers["Content-Security-Policy"]  # TensorBoard's policy lets it run
    assert "settings.ignoreOutliers = false" in script and 'localStorage.setItem("_ignoreYOutliers", "false")' in script
    assert f'location.replace("{url[len(board.base) :]}")' in script
    with pytest.raises(urllib.error.HTTPError):  # only this server's own pages
        fetch(f"{board.base}/data/plugin/backprop_parity/open?to=https://example.com/")


def test_the_text_tab_has_no_tag_filter_and_opens_on_the_verdicts_and_conclusions(served):
    board, _ = served
    assert "tagFilter" not in board.url("text", ["plain"])  # a filter shows each card twice
    tags = board.get("/data/plugin/text/tags")
    prefixes = sorted({tag.split("/")[0] for run_tags in tags.values() for tag in run_tags})
    assert prefixes == ["conclusion", "verdict", "workings"]  # the Text tab opens the first two


def test_the_footer_names_no_absolute_path(served):
    board, logdir = served
    location = board.get("/data/environment")["data_location"]
    assert location == "3 runs under runs (backprop-parity board)" and str(logdir) not in location
