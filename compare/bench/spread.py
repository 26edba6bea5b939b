"""The measured rounding spread (``compare.core.spread``): how far apart a correct manual side and torch are,
in units of the spread, and what measuring it costs a passing run.

    .venv/bin/python -m compare.bench.spread [--seeds 60]

* ``ratios``: a lecture network (embedding, Linear with a bias, BatchNorm as tensor ops, tanh, Linear,
  cross-entropy; its backward by hand in torch tensors) checked by ``check_model`` against a twin written as
  an ``nn.Module`` of its own, so no structural floor applies: the bias's gradient, exactly 0, is noise on both
  sides. For every re-judged comparison, ``max|manual − torch| / S``, over seeds, batches 8/32/128, hidden
  widths 10/17/24 and 3 steps, in float64 and float32 (the factor lifted while measuring, so none is cut off):
  ``SPREAD_FACTOR`` in ``compare.core.tolerances`` must stand well above the largest.
* ``cost``: the bench's lockstep run (784-1024-1024-10, batch 256, Adam, float64), which passes: the time spent
  in ``Checks.rejudge`` and the number of recomputations (none in a passing run).
"""

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

import compare.core.spread as spread
from compare.bench.suite import FULL
from compare.bench.workloads import lockstep_run, problem
from compare.check.check_model import check_model
from compare.core.checks import Checks

V, E, B = 11, 4, 3  # vocabulary, embedding width, context
NAMES = ("C", "W1", "b1", "bngain", "bnbias", "W2", "b2")


def manual(p, x, y):
    """The network's loss and gradients, its backward written by hand (BatchNorm's fused backward)."""
    C, W1, b1, g, beta, W2, b2 = (p[name] for name in NAMES)
    n = x.shape[0]
    embcat = C[x].view(n, -1)
    hprebn = embcat @ W1 + b1
    bndiff = hprebn - hprebn.mean(0, keepdim=True)
    inv = ((bndiff**2).mean(0, keepdim=True) + 1e-5) ** -0.5
    bnraw = bndiff * inv
    h = torch.tanh(g * bnraw + beta)
    probs = torch.softmax(h @ W2 + b2, 1)
    dlogits = probs.clone()
    dlogits[range(n), y] -= 1
    dlogits /= n
    dh = (1 - h**2) * (dlogits @ W2.T)
    dhprebn = g * inv / n * (n * dh - dh.sum(0) - bnraw * (dh * bnraw).sum(0))
    dC = torch.zeros_like(C).index_add_(0, x.reshape(-1), (dhprebn @ W1.T).view(-1, C.shape[1]))
    grads = (dC, embcat.T @ dhprebn, dhprebn.sum(0), (bnraw * dh).sum(0, keepdim=True), dh.sum(0, keepdim=True))
    return -probs.log()[range(n), y].mean(), dict(zip(NAMES, (*grads, h.T @ dlogits, dlogits.sum(0)), strict=True))


class Twin(nn.Module):
    def __init__(self, params: dict) -> None:
        super().__init__()
        for name in NAMES:
            setattr(self, name, nn.Parameter(params[name].clone()))

    def forward(self, x):
        h = self.C[x].view(x.shape[0], -1) @ self.W1 + self.b1
        mean = h.mean(0, keepdim=True)
        var = ((h - mean) ** 2).mean(0, keepdim=True)
        return torch.tanh(self.bngain * (h - mean) * (var + 1e-5) ** -0.5 + self.bnbias) @ self.W2 + self.b2


def ratios(seeds: int) -> dict:
    lifted, spread.SPREAD_FACTOR = spread.SPREAD_FACTOR, float("inf")  # every re-judged check passes and is seen
    found: dict[str, list[float]] = {}
    try:
        for dtype in ("float64", "float32"):
            for seed in range(seeds):
                for batch in (8, 32, 128):
                    torch.manual_seed(seed)
                    hidden = 10 + seed % 3 * 7
                    shapes = ((V, E), (E * B, hidden), (hidden,), (1, hidden), (1, hidden), (hidden, V), (V,))
                    params = {name: torch.randn(shape) * 0.5 for name, shape in zip(NAMES, shapes, strict=True)}
                    rng = np.random.default_rng(seed)
                    X, y = rng.integers(0, V, (3 * batch, B)), rng.integers(0, V, 3 * batch)
                    options = {"params": params, "batch_size": batch, "steps": 3, "dtype": dtype}
                    report = check_model(manual, Twin(params), nn.CrossEntropyLoss(), X, y, **options)
                    for check in report.checks:
                        if check.spread:
                            found.setdefault(dtype, []).append(check.diff.max_abs / check.spread)
    finally:
        spread.SPREAD_FACTOR = lifted
    return {
        dtype: {"count": len(v), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9)), "max": max(v)}
        for dtype, v in found.items()
    }


def cost() -> dict:
    spent, recomputed = [0.0, 0], [0]
    rejudge, recomputations = Checks.rejudge, spread.recomputations

    def timed(self, recompute):
        start = time.perf_counter()
        try:
            return rejudge(self, recompute)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1

    def counted(recompute):
        recomputed[0] += 1
        return recomputations(recompute)

    Checks.rejudge, spread.recomputations = timed, counted
    try:
        run = lockstep_run(problem(FULL.layers, FULL.batch, "float64"), FULL.parity_steps)
        start = time.perf_counter()
        run()
        total = time.perf_counter() - start
    finally:
        Checks.rejudge, spread.recomputations = rejudge, recomputations
    return {"steps": FULL.parity_steps, "run_s": total, "rejudge_s": spent[0], "rejudges": spent[1],
            "recomputations": recomputed[0], "share": spent[0] / total}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=60)
    args = parser.parse_args()
    print(json.dumps({"SPREAD_FACTOR": spread.SPREAD_FACTOR, "ratios": ratios(args.seeds), "cost": cost()}, indent=2))


if __name__ == "__main__":
    main()
