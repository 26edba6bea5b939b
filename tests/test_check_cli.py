"""``backprop-parity check FILE.py``: the file convention, exit statuses, the JSON report in a new run
directory, exceptions in the user's code as one line (the traceback only when asked for)."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from compare.cli.main import main

LAYER = """
import numpy as np
from torch import nn

class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b
    def forward(self, x):
        self.x = x
        return x @ self.W + self.b
    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.{reduce}(axis=0)
        return dout @ self.W.T

rng = np.random.default_rng(1)
layer = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3))
torch_module = nn.Linear(4, 3)
x = rng.standard_normal((8, 4))
"""

MODEL = """
import sys
sys.path.insert(0, {tests!r})
import numpy as np
import torch
from torch import nn
from check_styles import TwoLayerNet, Adam

model = TwoLayerNet(4, 6, 3)
torch_model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
torch_loss = nn.CrossEntropyLoss()
rng = np.random.default_rng(0)
X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
optimizer, torch_optimizer = Adam(lr=0.01), (torch.optim.Adam, {{"lr": 0.01}})
options = {{"steps": 4, "batch_size": 20}}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(("reduce", "status"), [("sum", 0), ("mean", 1)])
def test_a_layer_file_passes_or_fails_with_the_report_written(tmp_path, capsys, reduce, status):
    file = write(tmp_path, LAYER.format(reduce=reduce))
    assert main(["check", file, "--logdir", str(tmp_path / "runs"), "--json", str(tmp_path / "r.json")]) == status
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").iterdir()
    document = json.loads((run_dir / "report.json").read_text())
    assert document == json.loads((tmp_path / "r.json").read_text())
    assert document["passed"] is (status == 0)
    if status:
        assert document["checks"]["layer"]["first_failure"]["tensor"] == "db"
        assert "diagnosis: bias-grad-averaged" in out
    page = (run_dir / "report-layer.html").read_text()  # the check's page to send, its verdict first
    assert f'<h1 style="color:{"#1a7f37" if status == 0 else "#cf222e"}">{"FAIL" if status else "PASS"}</h1>' in page
    assert "bias-grad-averaged" in page if status else "<table>" in page


def test_a_model_file_with_its_optimizers_and_options_and_its_curves(tmp_path, capsys):
    file = write(tmp_path, MODEL.format(tests=str(Path(__file__).parent)))
    assert main(["check", file, "--logdir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[model] PASS: your model, 4 step(s)")
    (run_dir,) = (tmp_path / "runs").iterdir()
    document = json.loads((run_dir / "report.json").read_text())
    losses = {}
    for side in ("manual", "torch"):
        events = EventAccumulator(str(run_dir / side))
        events.Reload()
        losses[side] = [event.value for event in events.Scalars("loss/train")]
    assert len(losses["manual"]) == 4
    # TensorBoard stores float32: the two sides' losses agree to float32's rounding
    assert np.allclose(losses["manual"], losses["torch"], rtol=2 * np.finfo(np.float32).eps, atol=0)
    parity = EventAccumulator(str(run_dir / "parity" / "param"))
    parity.Reload()
    worst = max(event.value for event in parity.Scalars("parity/max_rel"))
    assert worst <= 1e-10 and document["passed"]


def test_an_exception_in_user_code_is_one_line_and_exit_1_the_traceback_on_request(tmp_path, capsys):
    file = write(tmp_path, LAYER.format(reduce="nonexistent"))
    assert main(["check", file, "--logdir", str(tmp_path / "runs")]) == 1
    captured = capsys.readouterr()
    assert "step 1, grad, backward(dout): your code raised AttributeError" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert main(["check", file, "--logdir", str(tmp_path / "runs"), "--traceback"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_bad_input_is_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    assert main(["check", write(tmp_path, "a = 1\n"), "--logdir", str(tmp_path / "runs")]) == 2
    assert "defines none of the checks' names" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_file_that_raises_while_loading_is_exit_1_in_one_line(tmp_path, capsys):
    assert main(["check", write(tmp_path, "raise RuntimeError('no data')\n")]) == 1
    assert capsys.readouterr().err.strip().endswith("raised while loading: RuntimeError: no data")
