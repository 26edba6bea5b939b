"""The false-alarm sweep: random configurations of the whole domain, each run in lockstep; a correct
implementation must pass every one (drift is adjudicated, ``compare.core.adjudication``).

    python -m compare.bench.sweep --configs 5000 --seed 0 [--strict-trajectory] [--workers 2] [--optimizers a,b]

The domain: 2 to 5 layers of widths 1 to 9 (no fan-in-1 Linear feeding BatchNorm), every activation,
loss and optimizer (each one's lr and branches drawn from the registry: ``hyperparameters``), both dtypes,
learning-rate schedules, gradient clipping, dropout and BatchNorm, 8 to 200 steps of random batches of 8,
float32 runs with their float64 witness at every step. A run whose torch side leaves the finite numbers (a
diverging draw) proves nothing and is counted apart. Prints one line per failure and a summary.
"""

import argparse
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from compare.core import engine, mlp_pair, witness64
from manual import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec, init_state_dict
from manual.optim import REGISTRY
from manual.schedules import parse_schedule

SCHEDULES = (None, None, "step:20:0.5", "exp:0.98", "cosine:50", "warmup:5", "warmup:5,cosine:60")
BATCH = 8


@dataclass(frozen=True)
class Draw:
    """One configuration of the sweep."""

    widths: tuple[int, ...]
    activation: str
    loss: str
    optimizer: str
    hyperparameters: dict
    dtype: str
    dropout: float
    batchnorm: bool
    schedule: str | None
    clip: float | None
    steps: int
    seed: int


def hyperparameters(optimizer: str, uniform: Callable[[float, float], float], coin: Callable[[], bool]) -> dict:
    """A random configuration of ``optimizer``, from the registry alone: an lr from 1/30 to 3 times its
    ``default_lr`` (log-uniform), and each of its ``every_branch`` keywords taken or left at its default by a
    coin. The sweep draws with NumPy, the property test (tests/test_trust.py) with Hypothesis."""
    entry = REGISTRY[optimizer]
    given = {"lr": entry.default_lr * 10 ** uniform(-1.5, 0.5)}
    given |= {key: value for key, value in entry.rule.every_branch.items() if coin()}
    return entry.rule(**given).hyperparameters()


def draw(rng: np.random.Generator, optimizers: tuple[str, ...] = tuple(sorted(REGISTRY))) -> Draw:
    batchnorm = bool(rng.integers(2))
    while True:
        widths = tuple(int(w) for w in rng.integers(1, 10, int(rng.integers(2, 6))))
        if not (batchnorm and 1 in widths[:-2]):
            break
    optimizer = str(rng.choice(optimizers))
    return Draw(
        widths,
        str(rng.choice(ACTIVATION_NAMES)),
        str(rng.choice(LOSS_NAMES)),
        optimizer,
        hyperparameters(optimizer, rng.uniform, lambda: bool(rng.integers(2))),
        str(rng.choice(["float64", "float32"])),
        float(rng.choice([0.0, 0.0, 0.3])),
        batchnorm,
        SCHEDULES[int(rng.integers(len(SCHEDULES)))],
        None if rng.integers(3) else 1.0,
        int(rng.integers(8, 201)),
        int(rng.integers(2**31 - 1)),
    )


def batches(spec: MLPSpec, dtype: str, seed: int):
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal((BATCH, spec.widths[0])).astype(dtype)
        if spec.loss == "cross_entropy":
            y = rng.integers(0, spec.widths[-1], BATCH)
        elif spec.loss == "bce":
            y = rng.integers(0, 2, (BATCH, spec.widths[-1])).astype(dtype)
        else:
            y = rng.standard_normal((BATCH, spec.widths[-1])).astype(dtype)
        yield x, y


def run(d: Draw, strict: bool) -> tuple[str, str]:
    """``("pass" | "drift" | "diverged" | "fail", detail)``."""
    torch.set_num_threads(1)
    spec = MLPSpec(d.widths, d.activation, d.loss, d.dropout, d.batchnorm)
    weights = init_state_dict(spec, np.random.default_rng(d.seed), getattr(np, d.dtype))
    schedule = parse_schedule(d.schedule) if d.schedule else None
    parameters = sum(w.size for w in weights.values())
    witness = witness64.every(parameters, REGISTRY[d.optimizer].rule) if d.dtype == "float32" else None
    options = {"adjudicate": not strict, "witness_every": witness}
    lockstep = mlp_pair.twins(
        spec, weights, d.optimizer, d.hyperparameters, d.dtype, None, schedule, d.clip, d.seed, **options
    )
    result = engine.run(lockstep, batches(spec, d.dtype, d.seed + 1), d.steps, True, lambda record: None)
    failure = result.first_failure
    if (
        result.undecidable_from is not None
        or not all(math.isfinite(loss) for loss in result.losses_torch)
        or (failure is not None and failure.diff.problem in ("nonfinite:torch", "nonfinite:both"))
    ):
        return "diverged", ""
    if failure is not None:
        return "fail", f"step {failure.step} {failure.stage} {failure.tensor} max_rel {failure.diff.max_rel:.2e}"
    return ("drift", f"from step {result.drift.step}") if result.drift else ("pass", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compare.bench.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strict-trajectory", action="store_true", help="no drift adjudication (today's semantics)")
    parser.add_argument(
        "--optimizers",
        default=",".join(sorted(REGISTRY)),
        help="the optimizers drawn from, comma-separated (default: all)",
    )
    args = parser.parse_args(argv)
    optimizers = tuple(args.optimizers.split(","))
    unknown = sorted(set(optimizers) - set(REGISTRY))
    if unknown:
        parser.error(f"--optimizers: unknown {', '.join(unknown)} (choose from {', '.join(REGISTRY)})")
    rng = np.random.default_rng(args.seed)
    draws = [draw(rng, optimizers) for _ in range(args.configs)]
    counts = {"pass": 0, "drift": 0, "diverged": 0, "fail": 0}
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        outcomes = pool.map(run, draws, [args.strict_trajectory] * len(draws), chunksize=8)
        for index, (d, (outcome, detail)) in enumerate(zip(draws, outcomes, strict=True)):
            counts[outcome] += 1
            if outcome == "fail":
                print(f"FAIL #{index}: {detail}: {d}", flush=True)
    seconds = time.perf_counter() - started
    print(
        f"{args.configs} configurations (seed {args.seed}, {'strict' if args.strict_trajectory else 'adjudicated'}): "
        f"{counts['fail']} failed, {counts['drift']} passed with drift, {counts['pass']} passed, "
        f"{counts['diverged']} diverged (not counted), in {seconds:.0f} s"
    )
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
