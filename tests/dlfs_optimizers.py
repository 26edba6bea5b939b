"""The optimizers of "Deep Learning from Scratch" (밑바닥부터 시작하는 딥러닝, ``common/optimizer.py``), written
here with the book's arithmetic operation for operation (the order of the operations decides the rounding, and
the checker compares to rounding), for tests/test_check_dlfs_optimizers.py.

Each keeps its state in dicts keyed by parameter name, created by its first ``update(params, grads)`` (``None``
until then), and changes ``params``' arrays in place:

* ``SGD``: θ −= lr·g;
* ``Momentum``: v ← μv − lr·g; θ += v (the classic form; v = −lr·b for torch's buffer b while lr is constant);
* ``Nesterov``: v ← μv − lr·g, then θ += μ²·v − (1 + μ)·lr·g with the velocity *after* its update (Bengio et
  al.'s reformulation takes the one before: that is torch's rule);
* ``AdaGrad``: h += g²; θ −= lr·g / (√h + 1e-7);
* ``RMSprop``: h ← ρh + (1 − ρ)g²; θ −= lr·g / (√h + 1e-7);
* ``Adam``: m += (1 − β1)(g − m); v += (1 − β2)(g² − v); θ −= lr_t·m / (√v + 1e-7) with
  lr_t = lr·√(1 − β2^t) / (1 − β1^t): the paper's ε-hat form, ε = 1e-7 written into the code.
"""

import numpy as np


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad:
    def __init__(self, lr=0.01):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate, self.h = lr, decay_rate, None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)
