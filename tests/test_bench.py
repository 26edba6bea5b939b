"""``backprop-parity bench``: the suite runs, writes its JSON and a valid SVG plot, and refuses bad
input with exit 2. No timing is asserted: the machines are shared and noisy (the numbers live in
bench.json and the README, taken side by side in one run)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from compare.bench import suite as bench
from compare.cli import main as cli
from conftest import invoke


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, str]:
    """One ``bench --quick`` run on one thread, shared by the tests that read its output."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as patch:
        captured: list[str] = []
        patch.setattr("builtins.print", lambda *args, **_: captured.append(" ".join(map(str, args))))
        status = cli.main(["bench", "--quick", "--threads", "1", "--out", str(out)])
    assert status == 0
    return out, "\n".join(captured)


def test_quick_bench_writes_every_section(quick):
    out, _ = quick
    results = json.loads((out / "bench.json").read_text())
    assert results["threads"] == 1
    assert set(results["environment"]) == set(bench.QUIET_POOLS)
    assert results["sizes"]["layers"] == list(bench.QUICK.layers)
    for dtype in ("float64", "float32"):
        t = results["throughput"][dtype]
        assert t["flops_per_step"] == 6 * bench.QUICK.batch * (32 * 64 + 64 * 64 + 64 * 10)
        for key in ("manual_vs_torch", "manual_vs_matmul_peak", "matmul_seconds"):
            assert np.isfinite(t[key]) and t[key] > 0
        assert set(t["step_seconds"]) == set(t["gflops"]) - {"matmul"} == {"manual", "torch"}
    parity = results["parity_overhead"]
    assert parity["steps"] == bench.QUICK.parity_steps and parity["ratio"] > 0
    assert set(parity["run_seconds"]) == {"lockstep", "manual", "torch"}
    scale = results["scaling"]
    assert [p["width"] for p in scale["width"]] == list(bench.QUICK.widths)
    assert [p["batch"] for p in scale["batch"]] == list(bench.QUICK.batches)
    assert all(p["manual_seconds"] > 0 and p["torch_seconds"] > 0 for p in scale["width"] + scale["batch"])
    memory = results["memory"]
    assert memory["steps"] == list(bench.QUICK.memory_steps) and all(mib > 0 for mib in memory["peak_rss_mib"])
    assert set(results["targets"]) == set(bench.TARGETS)
    assert all(isinstance(target["met"], bool) for target in results["targets"].values())
    assert results["machine"]["numpy_blas"], "NumPy's BLAS must be visible to threadpoolctl to be limited"


def test_plot_is_valid_svg_with_a_line_per_side_and_panel(quick):
    out, _ = quick
    root = ET.fromstring((out / "scaling.svg").read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    lines = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {f"{axis}-{side}" for axis in ("width", "batch") for side in ("manual", "torch")} <= lines


def test_summary_names_threads_and_targets(quick):
    _, stdout = quick
    assert "1 threads on" in stdout
    for name in bench.TARGETS:
        assert name in stdout


def test_threads_are_set_for_both_sides_and_restored():
    before = torch.get_num_threads()
    with bench.threads(1):
        assert torch.get_num_threads() == 1
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--threads", "0"], "--threads 0"),
        (["--threads", "100000"], "--threads 100000"),
        (["--threads", "two"], "invalid int value"),
        (["--out", "FILE"], "is not a directory"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, words, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    argv = ["bench", "--quick", *(str(a_file) if arg == "FILE" else arg for arg in args)]
    status, _, err = invoke(argv, capsys)
    assert status == 2
    assert words in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not (tmp_path / "bench.json").exists()
