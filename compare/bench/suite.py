"""How fast the twins train and what the checker costs on top: the suite behind ``backprop-parity bench``.

The machines these run on are shared and noisy, so every figure is a ratio of times taken side by
side in one run: each measurement alternates the things it compares, sizes every sample to a minimum
duration, and keeps the median of the repeats. Both sides run on the same number of threads, set
for torch (``torch.set_num_threads``) and for NumPy's BLAS (threadpoolctl).

What is measured (a training step is forward + backward + Adam, ReLU and cross-entropy, Adam at
torch's defaults, ``foreach=False`` as the checker builds it):

* throughput: the manual step against the torch step on one model, per dtype, and the manual step's
  FLOP rate (6 · batch · weights per step: 2 for the forward, 4 for the backward) against the
  machine's matrix-multiply rate measured in the same run (``np.matmul`` of two square matrices);
* parity overhead: a full lockstep run (both twins, every stage compared, TensorBoard at the run
  command's defaults) against the sum of the two bare training loops over the same steps;
* scaling: the step time of both sides against the hidden width at a fixed batch, and against the
  batch at a fixed width;
* memory: the peak RSS of a long ``run`` against a short one (the per-step record is streamed).
"""

import argparse
import contextlib
import datetime as dt
import io
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from threadpoolctl import threadpool_info, threadpool_limits

from compare.core import engine, mlp_pair
from compare.output.tensorboard import RunWriters
from manual import MLPSpec, init_state_dict
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from torch_ref import build_loss, build_model, build_optimizer, load_weights

# The two sides take turns on the same cores, and a thread pool that keeps spinning after its work
# holds a core the other side then waits for. OpenBLAS (NumPy's) spins for about 2^28 cycles (0.1 s) by
# default, which made a lockstep run 1.6x slower (10 steps of 784-1024-1024-10: 2.5 s against 1.5 s,
# 2 cores; the bare loops, which never alternate, barely change). GNU OpenMP (torch's pool, MKL's too)
# spins 300,000 rounds: alternating the two bare steps cost 1.13x their separate loops with it and 1.08x
# with 10,000 (four runs each, 2 cores; torch's own loop unchanged, 1.06 s and 1.07 s for 25 steps),
# where OMP_WAIT_POLICY=PASSIVE slowed torch's own loop by a tenth. The suite therefore runs in a child
# process with these variables set; both libraries read them when they load.
QUIET_POOLS = {
    "OPENBLAS_THREAD_TIMEOUT": "4",  # 2^4 cycles, OpenBLAS's minimum
    "GOMP_SPINCOUNT": "10000",
}
LOG_EVERY = 25  # the run command's --log-every default: TensorBoard "at defaults"
OPTIMIZER = "adam"  # at torch's defaults on both sides
TARGETS = {  # the targets: (comparison, bound)
    "manual_vs_torch": (">=", 0.9),  # manual steps per second / torch steps per second, float64
    "manual_vs_matmul_peak": (">=", 0.6),  # manual FLOP rate / np.matmul FLOP rate, float64
    "parity_overhead": ("<=", 1.3),  # lockstep run time / (bare manual loop + bare torch loop)
    "memory_growth": ("<=", 1.1),  # peak RSS of the long run / of the short run
}


@dataclass(frozen=True)
class Sizes:
    """What the suite runs: the headline model, the matmul probe, the lockstep run and the scaling grid."""

    layers: tuple[int, ...]  # the headline model, input width first
    batch: int
    matmul: int  # side of the square matrices whose product measures the machine's FLOP rate
    parity_steps: int  # steps of each lockstep run and bare loop
    parity_repeats: int  # runs of each
    widths: tuple[int, ...]  # hidden widths of the width sweep (two hidden layers), at batch ``batch``
    batches: tuple[int, ...]  # batches of the batch sweep, at hidden width ``sweep_width``
    sweep_width: int
    memory_steps: tuple[int, int]  # a short and a long `run`, whose peak RSS must match
    repeats: int  # samples per measurement; the median is kept
    min_sample_s: float  # each sample repeats its call until it lasts at least this long


FULL = Sizes(
    layers=(784, 1024, 1024, 10),
    batch=256,
    matmul=2048,
    parity_steps=25,
    parity_repeats=5,  # with 3, four runs of the same code gave ratios from 1.20 to 1.27
    widths=(64, 128, 256, 512, 1024, 2048),
    batches=(1, 4, 16, 64, 256, 1024),
    sweep_width=1024,
    memory_steps=(100, 10_000),
    repeats=5,
    min_sample_s=0.2,
)
QUICK = Sizes(
    layers=(32, 64, 64, 10),
    batch=16,
    matmul=128,
    parity_steps=3,
    parity_repeats=2,
    widths=(64, 128),
    batches=(1, 16),
    sweep_width=64,
    memory_steps=(2, 8),
    repeats=2,
    min_sample_s=0.0,
)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Both sides on ``n`` threads: torch's intra-op pool and NumPy's BLAS."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def available_threads() -> int:
    """The cores this process may run on (its affinity mask, not the whole machine's count)."""
    return len(os.sched_getaffinity(0))


def machine() -> dict:
    """What the numbers were taken on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    blas = [
        {key: library.get(key) for key in ("internal_api", "version", "num_threads")}
        for library in threadpool_info()
        if library.get("user_api") == "blas"
    ]
    return {
        "cpu": model,
        "cores_available": available_threads(),
        "cores_total": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "torch": torch.__version__,
    }


# --- the things timed ------------------------------------------------------------------------------


@dataclass
class Problem:
    """A model, its initial weights and one batch, shared by both sides."""

    spec: MLPSpec
    weights: dict[str, np.ndarray]
    x: np.ndarray  # (N, D)
    y: np.ndarray  # (N,) labels

    @property
    def weight_count(self) -> int:
        """Elements of the weight matrices: each costs one multiply-add per example in the forward."""
        return sum(array.size for name, array in self.weights.items() if name.endswith(".weight"))

    def flops_per_step(self) -> int:
        """2 for the forward's multiply-adds, 4 for the backward's two products, per example and weight."""
        return 6 * len(self.x) * self.weight_count


def problem(layers: tuple[int, ...], batch: int, dtype: str, seed: int = 0) -> Problem:
    spec = MLPSpec(layers, "relu", "cross_entropy")
    rng = np.random.default_rng(seed)
    weights = init_state_dict(spec, rng, np.dtype(dtype))
    x = rng.standard_normal((batch, layers[0])).astype(dtype)
    return Problem(spec, weights, x, rng.integers(0, layers[-1], batch))


def manual_step(p: Problem) -> Callable[[], None]:
    """One hand-written training step per call: forward, loss, backward, Adam."""
    model = MLP(p.spec, p.weights)
    optimizer = OPTIMIZERS[OPTIMIZER]()
    params = model.named_parameters()
    state = optimizer.init(params)

    def step() -> None:
        outputs = model.forward(p.x)
        model.loss.forward(outputs[-1], p.y)
        model.backward(model.loss.backward())
        optimizer.step(params, model.named_grads(), state)

    return step


def torch_step(p: Problem) -> Callable[[], None]:
    """One torch training step per call: zero_grad, forward, loss, backward, Adam (foreach=False)."""
    model = build_model(p.spec, getattr(torch, str(p.x.dtype)))
    load_weights(model, p.spec, p.weights)
    optimizer = build_optimizer(OPTIMIZER, model, {})
    loss = build_loss(p.spec)
    x, y = torch.from_numpy(p.x), torch.from_numpy(p.y)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()

    return step


def matmul(n: int, dtype: str) -> tuple[Callable[[], None], int]:
    """``np.matmul`` of two random ``n × n`` matrices into a preallocated result, and its FLOPs."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    c = np.empty((n, n), dtype=dtype)
    return lambda: np.matmul(a, b, out=c), 2 * n**3


def lockstep_run(p: Problem, steps: int) -> Callable[[], None]:
    """A full checked run per call: fresh twins, every stage compared, TensorBoard at the defaults."""
    dtype = str(p.x.dtype)

    def run() -> None:
        lockstep = mlp_pair.twins(p.spec, p.weights, OPTIMIZER, {}, dtype, stats_every=LOG_EVERY)
        with tempfile.TemporaryDirectory() as run_dir:
            writers = RunWriters(Path(run_dir), dtype, LOG_EVERY)
            writers.start({"optimizer": OPTIMIZER, "layers": str(p.spec.widths), "dtype": dtype})

            def log(record: engine.StepRecord) -> None:
                writers.log_step(record, lockstep)

            result = engine.RunResult(keep_records=False)
            engine.run(lockstep, itertools.repeat((p.x, p.y)), steps, False, log, result)
            writers.finish("bench")

    return run


def bare_loop(make_step: Callable[[Problem], Callable[[], None]], p: Problem, steps: int) -> Callable[[], None]:
    """``steps`` unchecked steps of one side per call, from a fresh model (as the lockstep run starts)."""

    def run() -> None:
        step = make_step(p)
        for _ in range(steps):
            step()

    return run


def medians(calls: dict[str, Callable[[], None]], repeats: int, min_sample_s: float) -> dict[str, float]:
    """Median seconds per call of each function, the functions alternated so that a change in the
    machine's load hits them alike. Each is warmed up (allocation, caches) and each sample repeats it
    until the sample lasts at least ``min_sample_s``, as long as a second call took."""
    counts = dict.fromkeys(calls, 1)
    for name, call in calls.items():
        call()
        if min_sample_s > 0:
            start = time.perf_counter()
            call()
            counts[name] = max(1, math.ceil(min_sample_s / max(time.perf_counter() - start, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(counts[name]):
                call()
            samples[name].append((time.perf_counter() - start) / counts[name])
    return {name: statistics.median(values) for name, values in samples.items()}


# --- the suite -------------------------------------------------------------------------------------


def throughput(sizes: Sizes, dtype: str) -> dict:
    p = problem(sizes.layers, sizes.batch, dtype)
    peak, peak_flops = matmul(sizes.matmul, dtype)
    seconds = medians(
        {"manual": manual_step(p), "torch": torch_step(p), "matmul": peak}, sizes.repeats, sizes.min_sample_s
    )
    manual_rate, peak_rate = p.flops_per_step() / seconds["manual"], peak_flops / seconds["matmul"]
    return {
        "layers": list(sizes.layers),
        "batch": sizes.batch,
        "flops_per_step": p.flops_per_step(),
        "step_seconds": {"manual": seconds["manual"], "torch": seconds["torch"]},
        "matmul_size": sizes.matmul,
        "matmul_seconds": seconds["matmul"],
        "gflops": {
            "manual": manual_rate / 1e9,
            "torch": p.flops_per_step() / seconds["torch"] / 1e9,
            "matmul": peak_rate / 1e9,
        },
        "manual_vs_torch": seconds["torch"] / seconds["manual"],
        "manual_vs_matmul_peak": manual_rate / peak_rate,
    }


def parity_overhead(sizes: Sizes, dtype: str = "float64") -> dict:
    p = problem(sizes.layers, sizes.batch, dtype)
    steps = sizes.parity_steps
    calls = {
        "lockstep": lockstep_run(p, steps),
        "manual": bare_loop(manual_step, p, steps),
        "torch": bare_loop(torch_step, p, steps),
    }
    seconds = medians(calls, sizes.parity_repeats, 0.0)  # a run is long enough to be its own sample
    return {
        "layers": list(sizes.layers),
        "batch": sizes.batch,
        "dtype": dtype,
        "steps": steps,
        "log_every": LOG_EVERY,
        "run_seconds": seconds,
        "ratio": seconds["lockstep"] / (seconds["manual"] + seconds["torch"]),
    }


def scaling(sizes: Sizes, dtype: str = "float64") -> dict:
    """Step times of both sides: against the hidden width at batch ``sizes.batch``, and against the
    batch at width ``sizes.sweep_width``; the model is ``D, W, W, C`` with the headline's D and C."""
    d, c = sizes.layers[0], sizes.layers[-1]

    def point(width: int, batch: int) -> dict:
        p = problem((d, width, width, c), batch, dtype)
        seconds = medians({"manual": manual_step(p), "torch": torch_step(p)}, sizes.repeats, sizes.min_sample_s)
        return {"width": width, "batch": batch, "manual_seconds": seconds["manual"], "torch_seconds": seconds["torch"]}

    return {
        "dtype": dtype,
        "layers": "D,W,W,C",
        "input": d,
        "classes": c,
        "width": [point(width, sizes.batch) for width in sizes.widths],
        "batch": [point(sizes.sweep_width, batch) for batch in sizes.batches],
    }


# Peak RSS is read from the kernel's accounting for a child (os.wait4), which on Linux also counts what
# the child held between fork and exec: a copy of its parent. So the run is started from this small
# interpreter, not from the benchmark (torch loaded, hundreds of MiB): it prints "status maxrss_kib".
MEASURE_PEAK_RSS = (
    "import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "_, status, usage = os.wait4(child.pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)"
)


def peak_rss_mib(steps: int, logdir: str) -> float:
    """Peak RSS of a fresh ``backprop-parity run --keep-going`` (TensorBoard on, the defaults otherwise);
    it runs every step whatever the verdict."""
    run = [sys.executable, "-m", "compare", "run", "--steps", str(steps), "--logdir", logdir, "--keep-going"]
    measured = subprocess.run([sys.executable, "-c", MEASURE_PEAK_RSS, *run], capture_output=True, text=True)
    status, maxrss_kib = map(int, measured.stdout.split())
    if status not in (0, 1):  # 1: parity broke somewhere, which does not matter here
        raise RuntimeError(f"a run of {steps} steps exited {status}")
    return maxrss_kib / 1024  # KiB on Linux


def memory(sizes: Sizes) -> dict:
    """Memory does not grow with run length: the per-step record is streamed, not stored (as bench/memory.py)."""
    with tempfile.TemporaryDirectory() as logdir:
        short, long = (peak_rss_mib(steps, logdir) for steps in sizes.memory_steps)
    return {"steps": list(sizes.memory_steps), "peak_rss_mib": [short, long], "ratio": long / short}


def targets(results: dict) -> dict:
    values = {
        "manual_vs_torch": results["throughput"]["float64"]["manual_vs_torch"],
        "manual_vs_matmul_peak": results["throughput"]["float64"]["manual_vs_matmul_peak"],
        "parity_overhead": results["parity_overhead"]["ratio"],
        "memory_growth": results["memory"]["ratio"],
    }
    return {
        name: {
            "value": value,
            "target": f"{TARGETS[name][0]} {TARGETS[name][1]}",
            "met": value >= TARGETS[name][1] if TARGETS[name][0] == ">=" else value <= TARGETS[name][1],
        }
        for name, value in values.items()
    }


def run_suite(sizes: Sizes, n_threads: int, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Every measurement, on ``n_threads`` threads for both sides; the JSON document ``bench`` writes."""
    results: dict = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sizes": asdict(sizes),
        "threads": n_threads,
        "environment": {name: os.environ.get(name) for name in QUIET_POOLS},
    }
    with threads(n_threads):
        results["machine"] = machine()  # inside: the BLAS thread counts as measured
        results["throughput"] = {}
        for dtype in ("float64", "float32"):
            progress(f"throughput {dtype}")
            results["throughput"][dtype] = throughput(sizes, dtype)
        progress("parity overhead")
        results["parity_overhead"] = parity_overhead(sizes)
        progress("scaling")
        results["scaling"] = scaling(sizes)
    progress(f"memory ({' and '.join(map(str, sizes.memory_steps))}-step runs)")
    results["memory"] = memory(sizes)
    results["targets"] = targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m compare.bench.suite``: the suite, in the child process ``backprop-parity bench`` starts."""
    parser = argparse.ArgumentParser(prog="python -m compare.bench.suite", description=main.__doc__)
    parser.add_argument("--sizes", choices=("full", "quick"), required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--json", type=Path, required=True, help="where the results go")
    args = parser.parse_args(argv)
    sizes = QUICK if args.sizes == "quick" else FULL
    results = run_suite(sizes, args.threads, lambda what: print(f"bench: {what} ...", flush=True))
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def child(sizes: str, n_threads: int, json_path: Path) -> subprocess.CompletedProcess:
    """Run the suite in a fresh interpreter with ``QUIET_POOLS`` (a variable already set is kept)."""
    command = [sys.executable, "-m", "compare.bench.suite", "--sizes", sizes, "--threads", str(n_threads)]
    return subprocess.run([*command, "--json", str(json_path)], env={**QUIET_POOLS, **os.environ}, check=False)


# --- the plot (matplotlib, as the experiments' pictures) ----------------------------------------------

SIDE_STYLES = {"manual": "-", "torch": "--"}  # line style per side
TITLES = {"width": "step time vs hidden width (batch {batch})", "batch": "step time vs batch (width {width})"}


def svg_plot(scale: dict) -> str:
    """Step time against width and against batch, both sides, log-log axes: one SVG document; each data
    line carries the id ``<axis>-<side>``."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axes, axis in zip(figure.subplots(1, 2), ("width", "batch"), strict=True):
        points = scale[axis]
        for side, style in SIDE_STYLES.items():
            xs, ms = [p[axis] for p in points], [1e3 * p[f"{side}_seconds"] for p in points]
            axes.plot(xs, ms, style, marker="o", markersize=4, label=side, gid=f"{axis}-{side}")
        axes.set(xscale="log", yscale="log", xlabel=axis, ylabel="ms per step", title=TITLES[axis].format(**points[0]))
        axes.grid(True, which="major", alpha=0.3)
        axes.legend()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
