"""The fault catalog in float32: every fault still caught, at the step and stage the catalog expects
for float64, or earlier. The tensor may differ: float32's comparison sees a small error first where
float32 resolves it (adam-eps-inside-root: 2.weight, whose gradients are smallest), and the float64
witness, starting each step from torch's values, sees a rule whose state means something else than
torch's at once (momentum-lr-in-buffer keeps γ·b: step 2, not 6)."""

import json
from pathlib import Path

import numpy as np
import pytest

from compare.cli.main import main
from compare.faults import CATALOG


def run(tmp_path: Path, *args: str) -> tuple[int, dict | None]:
    logdir = tmp_path / f"runs{len(list(tmp_path.glob('runs*')))}"
    out = tmp_path / f"{logdir.name}.json"
    with np.errstate(all="ignore"):  # softmax-without-max-shift overflows, as it should
        status = main(
            ["run", *args, "--dtype", "float32", "--logdir", str(logdir), "--no-tensorboard", "--json", str(out)]
        )
    return status, json.loads(out.read_text()) if out.exists() else None


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_fault_is_caught_in_float32_where_expected(name, tmp_path):
    fault = CATALOG[name]
    status, report = run(tmp_path, "--inject", name, *fault.argv(tmp_path))
    assert status == 1, f"{name} went undetected in float32"
    failure = report["first_failure"]
    step, stage, _ = fault.expected
    assert failure["step"] < step or (failure["step"] == step and failure["stage"] == stage), failure
