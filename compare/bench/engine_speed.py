"""What ``check_engine`` and ``check_function`` cost: ``python -m compare.bench.engine_speed``.

* ``check_engine`` on the tests' scalar engine (``tests/engines.py``'s ``Value``, micrograd's shape): the
  first call in the process (torch's first backward included) and the median of later ones; target ≤ 5 s.
* ``check_function`` on a (64, 256) input, a fused LayerNorm written as a custom ``autograd.Function``
  (``tests/test_check_function.py``'s) against ``torch.nn.functional.layer_norm``, per dtype (float32,
  float16, bfloat16; every draw and the float64 re-run included), on the CPU and on CUDA when present:
  the median of ``REPEATS``; target ≤ 1 s per dtype.

The engine and the Function are the tests' own, loaded from the checkout by path (a checkout is where a
benchmark runs). Wall times, one torch thread, as the CLI sets it.
"""

import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

from compare.check.check_engine import check_engine
from compare.check.check_function import check_function

TESTS = Path(__file__).resolve().parents[2] / "tests"
REPEATS = 5
TARGETS = {"check_engine_s": 5.0, "check_function_s": 1.0}
DTYPES = ("float32", "float16", "bfloat16")


def load(name: str) -> ModuleType:
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))  # the test module imports its helper engines by name
    spec = importlib.util.spec_from_file_location(name, TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure() -> dict:
    torch.set_num_threads(1)
    value = load("engines").Value
    first = seconds(lambda: check_engine(value))
    later = statistics.median(seconds(lambda: check_engine(value)) for _ in range(REPEATS))
    engine = {"first_s": first, "median_s": later}
    tests = load("test_check_function")
    generator = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, generator=generator) for shape in ((64, 256), (256,), (256,)))
    function = {}
    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    for device in devices:
        for dtype in DTYPES:

            def call(dtype=dtype, device=device):
                report = check_function(tests.LayerNormFn.apply, tests.layer_norm, x, w, b, dtype=dtype, device=device)
                assert report.passed, report

            call()  # the first call of a dtype pays for its kernels' first use
            function[f"{device} {dtype}"] = statistics.median(seconds(call) for _ in range(REPEATS))
    return {"check_engine": engine, "check_function_64x256": function}


def within_targets(results: dict) -> bool:
    engine_ok = results["check_engine"]["first_s"] <= TARGETS["check_engine_s"]
    return engine_ok and all(s <= TARGETS["check_function_s"] for s in results["check_function_64x256"].values())


def main() -> int:
    results = measure()
    print(json.dumps(results, indent=2))
    print(f"targets (check_engine <= {TARGETS['check_engine_s']} s, check_function <= {TARGETS['check_function_s']} s"
          f" per dtype): {'met' if within_targets(results) else 'MISSED'}")  # fmt: skip
    return 0 if within_targets(results) else 1


if __name__ == "__main__":
    sys.exit(main())
