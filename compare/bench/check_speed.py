"""What checking a user's model costs: ``check_model`` against the user's own training steps plus torch's.

``python -m compare.bench.check_speed`` trains a textbook network (784-512-512-10, weights stored (in, out),
the in-place ReLU, SGD, batch 256, float64) three ways for the same steps: the user's own loop, torch's
own loop, and ``check_model`` (both, every tensor compared); it prints each one's CPU time (the least
of ``repeats``, process time, so that other processes on a shared machine count less) and the ratio
``check / (user + torch)``. The issue's target is 1.3. Run it with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) for a process time that is not spread over idle threads.

``python -m compare.bench.check_speed --small`` times, wall-clock after imports, a 60-step optimizer check
and a 30-step check of a small (2-16-16-3) network while another process keeps a core busy: small checks
run single-threaded (``compare.check.sandbox.threads``), so they do not wait on threads that busy core would hold.
"""

import itertools
import multiprocessing
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from compare.check.check_model import check_model
from compare.check.check_optimizer import check_optimizer

WIDTHS = (784, 512, 512, 10)
BATCH = 256


class _Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW, self.db = self.x.T @ dout, dout.sum(axis=0)
        return dout @ self.W.T


class _Relu:
    def forward(self, x):
        self.mask = x <= 0
        return np.where(self.mask, 0.0, x)

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class _SoftmaxWithLoss:
    def forward(self, z, t):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.p, self.t = e / e.sum(axis=1, keepdims=True), t
        return -np.log(self.p[np.arange(len(t)), t]).mean()

    def backward(self, dout=1):
        d = self.p.copy()
        d[np.arange(len(self.t)), self.t] -= 1
        return d / len(self.t)


class TextbookNet:
    """``params`` W1, b1, ... stored (in, out); ordered ``layers``; ``lastLayer``; ``loss`` and ``gradient``."""

    def __init__(self, seed: int = 0, widths: tuple[int, ...] = WIDTHS) -> None:
        rng = np.random.default_rng(seed)
        self.params, self.layers = {}, OrderedDict()
        count = len(widths) - 1
        for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths), start=1):
            self.params[f"W{k}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)
            self.params[f"b{k}"] = np.zeros(fan_out)
            self.layers[f"Affine{k}"] = _Affine(self.params[f"W{k}"], self.params[f"b{k}"])
            if k < count:
                self.layers[f"Relu{k}"] = _Relu()
        self.lastLayer = _SoftmaxWithLoss()

    def loss(self, x, t):
        for layer in self.layers.values():
            x = layer.forward(x)
        return self.lastLayer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward()
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {}
        for k in range(1, len(self.params) // 2 + 1):
            grads[f"W{k}"], grads[f"b{k}"] = self.layers[f"Affine{k}"].dW, self.layers[f"Affine{k}"].db
        return grads


class _SGD:
    def __init__(self, lr):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


def _twin(widths: tuple[int, ...] = WIDTHS) -> nn.Sequential:
    modules: list[nn.Module] = []
    for k, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        modules += [nn.Linear(fan_in, fan_out)] + ([nn.ReLU()] if k < len(widths) - 2 else [])
    return nn.Sequential(*modules).double()


def _timed(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def measure(steps: int = 30, repeats: int = 5, lr: float = 0.01) -> dict[str, float]:
    """The least CPU time of ``repeats`` for each way of training, and the ratio."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((BATCH * 4, WIDTHS[0])), rng.integers(0, WIDTHS[-1], BATCH * 4)
    batches = [
        (X[(i % 4) * BATCH : (i % 4 + 1) * BATCH], y[(i % 4) * BATCH : (i % 4 + 1) * BATCH]) for i in range(steps)
    ]

    def user() -> None:
        net, optimizer = TextbookNet(), _SGD(lr)
        for x, t in batches:
            optimizer.update(net.params, net.gradient(x, t))

    def reference() -> None:
        model, loss = _twin(), nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        for x, t in batches:
            optimizer.zero_grad()
            loss(model(torch.from_numpy(x)), torch.from_numpy(t)).backward()
            optimizer.step()

    def checked() -> None:
        optimizers = {"optimizer": _SGD(lr), "torch_optimizer": (torch.optim.SGD, {"lr": lr})}
        loss = nn.CrossEntropyLoss()
        report = check_model(TextbookNet(), _twin(), loss, X, y, batches=batches, layout="in_out", **optimizers)
        assert report.passed, report

    times = {
        name: min(_timed(f) for _ in range(repeats))
        for name, f in (("user", user), ("torch", reference), ("check", checked))
    }
    return {**times, "ratio": times["check"] / (times["user"] + times["torch"])}


class _Adam:
    """The textbook Adam, state under its own names."""

    def __init__(self, lr: float) -> None:
        self.lr, self.t, self.m, self.v = lr, 0, {}, {}

    def update(self, params, grads):
        self.t += 1
        for key in params:
            self.m[key] = 0.9 * self.m.get(key, 0) + 0.1 * grads[key]
            self.v[key] = 0.999 * self.v.get(key, 0) + 0.001 * grads[key] ** 2
            m_hat, v_hat = self.m[key] / (1 - 0.9**self.t), self.v[key] / (1 - 0.999**self.t)
            params[key] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


SMALL_WIDTHS = (2, 16, 16, 3)


def _optimizer_check() -> None:
    report = check_optimizer(_Adam(0.01), torch.optim.Adam, {"lr": 0.01}, steps=60, state_map={"exp_avg": "m"})
    assert report.passed, report


def _network_check() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((120, 2)), rng.integers(0, 3, 120)
    net, twin = TextbookNet(widths=SMALL_WIDTHS), _twin(SMALL_WIDTHS)
    report = check_model(net, twin, nn.CrossEntropyLoss(), X, y, batch_size=20, steps=30, layout="in_out")
    assert report.passed, report


SMALL_CASES = {"optimizer check (60 steps)": _optimizer_check, "network check (30 steps)": _network_check}


def _busy() -> None:
    while True:  # another process keeping a core busy, as a second test worker or a build would
        pass


def measure_small(repeats: int = 5) -> dict[str, float]:
    """Wall-clock seconds (least of ``repeats``, after imports) of a 60-step optimizer check and a 30-step
    small-network check, the checks' own thread settings left alone (``compare.check.sandbox.threads``: one thread
    for small checks), while another process keeps one core busy."""
    busy = multiprocessing.Process(target=_busy, daemon=True)
    busy.start()
    try:
        return {name: min(_wall(case) for _ in range(repeats)) for name, case in SMALL_CASES.items()}
    finally:
        busy.terminate()
        busy.join()


def _wall(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    if "--small" in sys.argv:
        print(", ".join(f"{key} {value:.3f} s" for key, value in measure_small().items()))
    else:
        torch.set_num_threads(1)
        result = measure()
        print(", ".join(f"{key} {value:.3f}" for key, value in result.items()))
