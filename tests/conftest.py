"""Shared builders for the tests: hostile shapes (non-square layers, non-zero biases, batch > 1)."""

import importlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.cli import demo
from compare.cli import main as cli
from compare.core import engine, mlp_pair
from compare.core.override import NONE, Override
from manual import MLPSpec, init_state_dict

HOSTILE_WIDTHS = (3, 7, 5, 4)  # non-square everywhere: a transposed weight cannot pass unnoticed
BATCH = 8

torch.set_num_threads(1)  # as the CLI does: tiny twins, and torch's spinning threads slow everything


def make_batches(spec: MLPSpec, dtype: str, seed: int):
    """Endless random batches for ``spec``: x ~ N(0, 1); integer labels or float targets."""
    rng = np.random.default_rng(seed)
    width_in, width_out = spec.widths[0], spec.widths[-1]
    while True:
        x = rng.standard_normal((BATCH, width_in)).astype(dtype)
        if spec.loss == "cross_entropy":
            y = rng.integers(0, width_out, BATCH)
        elif spec.loss == "bce":
            y = rng.integers(0, 2, (BATCH, width_out)).astype(dtype)
        else:
            y = rng.standard_normal((BATCH, width_out)).astype(dtype)
        yield x, y


def lockstep_run(
    spec: MLPSpec,
    optimizer: str,
    hyperparameters: dict,
    dtype: str = "float64",
    steps: int = 12,
    seed: int = 0,
    manual_optimizer=None,
    stop_at_first_failure: bool = True,
    patch=None,
    schedule: list | None = None,
    clip: float | None = None,
    override: Override = NONE,
    **options,
) -> engine.RunResult:
    """A lockstep run on random data; ``override`` (a fault's, say) is built into the manual side, and
    ``patch(lockstep)`` may swap a piece of the manual model for a faulty one; ``options`` are further
    ``compare.core.engine.Options`` fields."""
    weights = init_state_dict(spec, np.random.default_rng(seed), getattr(np, dtype))
    lockstep = mlp_pair.twins(
        spec,
        weights,
        optimizer,
        hyperparameters,
        dtype,
        manual_optimizer,
        schedule,
        clip,
        seed,
        override=override,
        **options,
    )
    if patch is not None:
        patch(lockstep)
    return engine.run(lockstep, make_batches(spec, dtype, seed + 1), steps, stop_at_first_failure, lambda r: None)


def max_rel(actual: np.ndarray, reference: np.ndarray) -> float:
    """``max|actual − reference| / max|reference|``: error relative to the tensor's scale (0/0 is 0)."""
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, f"shape {actual.shape} != reference {reference.shape}"
    assert np.all(np.isfinite(actual)) and np.all(np.isfinite(reference)), "non-finite value"
    delta = float(np.max(np.abs(actual - reference), initial=0.0))
    scale = float(np.max(np.abs(reference), initial=0.0))
    if scale == 0.0:
        return 0.0 if delta == 0.0 else np.inf  # an all-zero reference must be matched exactly
    return delta / scale


def invoke(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``cli.main(argv)`` in-process: (exit status, stdout, stderr); argparse's exits become statuses."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def lines_in_order(shown: list[str], printed: list[str]) -> bool:
    """Whether every line of ``shown`` is among ``printed``, in the same order (others may lie between)."""
    position = 0
    for line in shown:
        try:
            position = printed.index(line, position) + 1
        except ValueError:
            return False
    return True


@pytest.fixture(scope="session")
def many_runs(tmp_path_factory):
    """(logdir, the names of the runs that did not pass): ``compare.cli.demo``'s 17 runs and 3
    experiments, built once per session at 4 steps each."""
    logdir = demo.build(tmp_path_factory.mktemp("many") / "runs", steps=4)
    reports = {path.parent.name: json.loads(path.read_text()) for path in logdir.glob("*/report.json")}
    return logdir, sorted(name for name, report in reports.items() if not report["passed"])


def starts_in_order(shown: list[str], printed: list[str]) -> bool:
    """Whether each line of ``shown`` starts one of ``printed``, in the same order (others may lie between)."""
    position = 0
    for line in shown:
        found = next((i for i in range(position, len(printed)) if printed[i].startswith(line)), None)
        if found is None:
            return False
        position = found + 1
    return True


# A user's ``check FILE.py`` file: a textbook Affine layer whose forward, backward or module body a test
# fills in (``sys.exit(0)``, a sleep that ignores its alarm, a fork), and a mark the test can find it by.
USER_LAYER_FILE = """
import os, signal, sys, threading, time
import numpy as np
from torch import nn

MARK = {mark!r}

class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b
    def forward(self, x):
        {forward}
        self.x = x
        return x @ self.W + self.b
    def backward(self, dout):
        {backward}
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T

{module}
rng = np.random.default_rng(1)
layer = Affine(rng.standard_normal((4, 3)), rng.standard_normal(3))
torch_module = nn.Linear(4, 3)
x = rng.standard_normal((8, 4))
"""


def user_layer_file(
    tmp_path: Path, forward: str = "pass", backward: str = "pass", module: str = "", mark: str = ""
) -> Path:
    """``tmp_path/mine.py``, ``USER_LAYER_FILE`` with the given code in its places."""
    file = tmp_path / "mine.py"
    file.write_text(
        textwrap.dedent(USER_LAYER_FILE).format(forward=forward, backward=backward, module=module, mark=mark)
    )
    return file


# A layer class in a module file of its own, for ``check_layer(..., isolate=True)``: a spawned child imports
# the class by its module's name. Its forward is the code a test gives (``os._exit(3)``, an ignored alarm).
LAYER_MODULE = """
import os, signal, time
import numpy as np

class {name}:
    def __init__(self):
        self.W, self.b = np.ones((4, 3)), np.zeros(3)
    def forward(self, x):
        {forward}
    def backward(self, dout):
        return dout @ self.W.T
"""


def layer_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, forward: str) -> type:
    """``name`` from ``tmp_path/<name>_layer.py`` (``LAYER_MODULE``), that folder put on ``sys.path``."""
    module = f"{name.lower()}_layer"
    (tmp_path / f"{module}.py").write_text(LAYER_MODULE.format(name=name, forward=forward))
    monkeypatch.syspath_prepend(str(tmp_path))
    return getattr(importlib.import_module(module), name)
