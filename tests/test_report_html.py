"""report.html, a run's verdict one can send: parsed (html.parser) it holds the verdict first, the
per-stage table, the diagnosis, the parity chart inline and the settings, fetches nothing, and fits a
phone; opened in headless Chromium where one is installed (skipped, with the reason, where not)."""

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from check_styles import Affine, SoftmaxWithLoss, TwoLayerNet
from PIL import Image
from torch import nn

from compare import check_layer, check_loss, check_model
from compare.cli.main import main
from compare.core.stages import STAGES
from compare.output.html import stage_rows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from screenshot import BROWSERS, browser, headless, rendered  # noqa: E402

FETCHING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("image", "href")}


class Page(HTMLParser):
    """What a test reads of a page: the tags in order, their text, what would fetch something."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self.fetches: list[str] = []
        self.meta: dict[str, str] = {}
        self.rows = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.current = tag
        values = dict(attrs)
        self.rows += tag == "tr"
        if tag == "meta" and "name" in values:
            self.meta[values["name"]] = values.get("content", "")
        for name, value in attrs:
            if (tag, name) in FETCHING or (name in ("src", "href") and "//" in (value or "")):
                self.fetches.append(f"{tag} {name}={value}")

    def handle_data(self, data):
        if data.strip():
            self.texts.setdefault(self.tags[-1] if self.tags else "", []).append(data.strip())


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["run", "--steps", "3", "--inject", "bias-grad-averaged", "--keep-going", "--logdir", str(logdir)]
    assert main(argv) == 1
    (run_dir,) = logdir.iterdir()
    return run_dir


def test_the_page_puts_the_verdict_first_then_table_diagnosis_chart_and_settings(faulty):
    page = Page((faulty / "report.html").read_text())
    printed = (faulty / "verdict.txt").read_text().splitlines()
    assert page.tags.index("h1") < page.tags.index("table") < page.tags.index("pre") < page.tags.index("svg")
    assert page.texts["h1"] == ["FAIL"] and page.texts["p"][0] == printed[-1]  # the word, then its line
    assert "\n".join(printed) in "\n".join(page.texts["pre"])  # the diagnosis as the terminal printed it
    report = json.loads((faulty / "report.json").read_text())
    section = (faulty / "report.html").read_text().split("<h2>Per stage</h2>")[1].split("<h2>")[0]
    assert re.findall(r"<tr><td>([^<]*)</td>", section) == [s for s in STAGES if s in report["worst"]]
    assert "inject" in page.texts["td"] and "bias-grad-averaged" in page.texts["td"]  # the settings


def test_the_page_fetches_nothing_and_fits_a_phone(faulty):
    page = Page((faulty / "report.html").read_text())
    assert page.fetches == [] and "script" not in page.tags
    assert page.meta["viewport"] == "width=device-width, initial-scale=1"
    assert "max-width:100%" in "".join(page.texts["style"])  # the chart shrinks to the screen


def test_a_check_writes_its_page_beside_its_curves(tmp_path):
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    net = TwoLayerNet(4, 6, 3)
    tensorboard_dir = tmp_path / "tb"
    loss = nn.CrossEntropyLoss()
    report = check_model(net, twin, loss, X, y, batch_size=20, steps=2, tensorboard_dir=tensorboard_dir)
    page = Page((tmp_path / "tb" / "report.html").read_text())
    assert page.texts["h1"] == ["PASS" if report.passed else "FAIL"] and page.fetches == []
    assert page.rows == 1 + len(report.worst_by_stage())


class LossWithoutMean(SoftmaxWithLoss):
    """The textbook mistake: the gradient of a mean loss not divided by the batch size."""

    def backward(self, dout=1):
        return (self.y - self.t) * dout


RNG = np.random.default_rng(7)
SCORES, X = RNG.standard_normal((6, 3)), RNG.standard_normal((6, 4))
ONE_HOT = np.eye(3)[RNG.integers(0, 3, 6)]
AFFINE = (RNG.standard_normal((4, 3)), RNG.standard_normal(3))
CHECKS = {  # name → (the check, run with report_dir=; the verdict its page must lead with)
    "layer": (lambda **kw: check_layer(Affine(*AFFINE), nn.Linear(4, 3), X, **kw), "PASS"),
    "layer-isolated": (lambda **kw: check_layer(Affine(*AFFINE), nn.Linear(4, 3), X, isolate=True, **kw), "PASS"),
    "loss-without-mean": (lambda **kw: check_loss(LossWithoutMean(), nn.CrossEntropyLoss(), SCORES, ONE_HOT, **kw),
                          "FAIL"),
}  # fmt: skip


@pytest.mark.parametrize("name", CHECKS)
def test_report_dir_gets_the_checks_page(tmp_path, name):
    check, verdict = CHECKS[name]
    report = check(report_dir=tmp_path / "pages")
    written = (tmp_path / "pages" / "report.html").read_text()
    page = Page(written)
    assert (report.passed, page.texts["h1"]) == (verdict == "PASS", [verdict]) and page.fetches == []
    assert page.rows == 1 + len(report.worst_by_stage())  # the per-stage table: a header and one row a stage
    assert "\n".join(page.texts["pre"]).startswith(str(report).splitlines()[0])  # the verdict table as printed
    assert report.notes[-1].startswith(f"report: {tmp_path / 'pages' / 'report.html'} ")


def test_report_dir_never_overwrites_a_page(tmp_path):
    (tmp_path / "report.html").write_text("a page kept\n")
    check, _ = CHECKS["layer"]
    with pytest.raises(ValueError, match=r"already holds report.html, which is never overwritten") as refused:
        check(report_dir=tmp_path)
    assert "\n" not in str(refused.value) and (tmp_path / "report.html").read_text() == "a page kept\n"
    with pytest.raises(ValueError, match="is a file"):
        check(report_dir=tmp_path / "report.html")


@pytest.mark.skipif(not any(map(shutil.which, BROWSERS)), reason="no chromium installed (apt-get install chromium)")
def test_headless_chromium_renders_the_verdict_and_the_chart(faulty, tmp_path):
    dom = rendered(browser(), (faulty / "report.html").resolve().as_uri(), tmp_path / "profile")
    assert "<h1" in dom and ">FAIL</h1>" in dom and "<svg" in dom
    shot = tmp_path / "phone.png"
    flags = ("--window-size=390,844", f"--screenshot={shot}", (faulty / "report.html").resolve().as_uri())
    subprocess.run(headless(browser(), tmp_path / "profile", *flags), capture_output=True, timeout=180, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (844, 390) and pixels.std() > 10  # a phone's screen, drawn: text and table on white


def test_a_drift_adjudicated_stage_is_marked_drift_beside_its_ratio_above_1():
    worst = {
        "grad": {"max_rel": 1.13e-10, "tolerance": 1e-10, "step": 151, "tensor": "12.bias"},
        "param": {"max_rel": 7e-12, "tolerance": 1e-10, "step": 280, "tensor": "6.weight"},
    }
    rows = stage_rows(worst, drift_steps=[151, 200])
    assert [(row[0], row[3], row[4]) for row in rows] == [("grad", "1.13", "drift"), ("param", "0.07", "ok")]
