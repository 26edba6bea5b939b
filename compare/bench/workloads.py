"""What the suite times: a problem (model, weights, one batch), each side's bare training step, the
matrix product that measures the machine's peak, a full lockstep run and the bare loops it is held to."""

import itertools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compare.core import engine, mlp_pair
from compare.core.verdict import Verdict, Word
from compare.output.tensorboard import RunWriters
from manual import MLPSpec, init_state_dict
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from torch_ref import build_loss, build_model, build_optimizer, load_weights

LOG_EVERY = 25  # the run command's --log-every default: TensorBoard "at defaults"
OPTIMIZER = "adam"  # at torch's defaults on both sides


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
            writers.finish("bench", Verdict(Word.PASS))

    return run


def bare_loop(make_step: Callable[[Problem], Callable[[], None]], p: Problem, steps: int) -> Callable[[], None]:
    """``steps`` unchecked steps of one side per call, from a fresh model (as the lockstep run starts)."""

    def run() -> None:
        step = make_step(p)
        for _ in range(steps):
            step()

    return run
