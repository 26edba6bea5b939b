"""User code written as the people the checker is for write it (not as this package does), for the
``tests/test_check_*.py`` tests: textbook layer classes with (in, out) weights and an in-place ReLU
backward, a textbook SoftmaxWithLoss on one-hot targets, textbook optimizers keeping their state under
their own names, an optax-style optimizer, a textbook two-layer network and a function-style one."""

from collections import OrderedDict

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


class Affine:
    """y = x @ W + b, W stored (in, out)."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dout @ self.W.T


class Relu:
    """The textbook ReLU whose backward zeroes ``dout`` in place (the false-alarm trap)."""

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class BatchNormalization:
    """Batch norm with gamma, beta and running statistics, torch's conventions (momentum 0.1 on the batch,
    running variance unbiased)."""

    def __init__(self, gamma, beta, momentum=0.1, eps=1e-5, unbiased_running_var=True):
        self.gamma, self.beta, self.momentum, self.eps = gamma, beta, momentum, eps
        self.running_mean = np.zeros_like(gamma)
        self.running_var = np.ones_like(gamma)
        self.unbiased = unbiased_running_var

    def forward(self, x):
        n = x.shape[0]
        mu = x.mean(axis=0)
        xc = x - mu
        var = np.mean(xc**2, axis=0)
        self.std = np.sqrt(var + self.eps)
        self.xn = xc / self.std
        running = var * n / (n - 1) if self.unbiased else var
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mu
        self.running_var = (1 - self.momentum) * self.running_var + self.momentum * running
        return self.gamma * self.xn + self.beta

    def backward(self, dout):
        n = dout.shape[0]
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        return (n * dxn - dxn.sum(axis=0) - self.xn * np.sum(dxn * self.xn, axis=0)) / (n * self.std)


class SoftmaxWithLoss:
    """Cross-entropy on one-hot targets ``t``; ``log_eps`` is the textbook's guard against log(0)."""

    def __init__(self, log_eps=0.0):
        self.log_eps = log_eps

    def forward(self, x, t):
        self.t, self.y = t, softmax(x)
        n = x.shape[0]
        return -np.sum(np.log(self.y[np.arange(n), t.argmax(axis=1)] + self.log_eps)) / n

    def backward(self, dout=1):
        return (self.y - self.t) * dout / self.t.shape[0]


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    """v ← μv − lr·g; θ ← θ + v (the classic form)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Adam:
    """Adam keeping m and v under its own names; ``eps_hat``: the paper's efficient form."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, eps_hat=False):
        self.lr, self.beta1, self.beta2, self.eps, self.eps_hat = lr, beta1, beta2, eps, eps_hat
        self.iter, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        c1, c2 = 1.0 - self.beta1**self.iter, 1.0 - self.beta2**self.iter
        for key in params:
            self.m[key] = self.beta1 * self.m[key] + (1 - self.beta1) * grads[key]
            self.v[key] = self.beta2 * self.v[key] + (1 - self.beta2) * grads[key] ** 2
            if self.eps_hat:
                params[key] -= self.lr * np.sqrt(c2) / c1 * self.m[key] / (np.sqrt(self.v[key]) + self.eps)
            else:
                params[key] -= self.lr / c1 * self.m[key] / (np.sqrt(self.v[key]) / np.sqrt(c2) + self.eps)


class OptaxSGD:
    """optax-style: init(params) -> state, update(grads, state, params) -> (updates, state)."""

    def __init__(self, lr, momentum=0.0):
        self.lr, self.momentum = lr, momentum

    def init(self, params):
        return {"trace": {key: np.zeros_like(val) for key, val in params.items()}, "count": 0}

    def update(self, grads, state, params=None):
        trace = {}
        for key, g in grads.items():
            trace[key] = g if state["count"] == 0 else self.momentum * state["trace"][key] + g
        updates = {key: -self.lr * t for key, t in trace.items()}
        return updates, {"trace": trace, "count": state["count"] + 1}


class TwoLayerNet:
    """The textbook network: params W1, b1, W2, b2 stored (in, out), ordered layers and a last loss layer."""

    def __init__(self, input_size, hidden_size, output_size, seed=0, relu=Relu):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.standard_normal((input_size, hidden_size)) * 0.5,
            "b1": rng.standard_normal(hidden_size) * 0.1,
            "W2": rng.standard_normal((hidden_size, output_size)) * 0.5,
            "b2": rng.standard_normal(output_size) * 0.1,
        }
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = LabelSoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        grads["W1"], grads["b1"] = self.layers["Affine1"].dW, self.layers["Affine1"].db
        grads["W2"], grads["b2"] = self.layers["Affine2"].dW, self.layers["Affine2"].db
        return grads


class LabelSoftmaxWithLoss(SoftmaxWithLoss):
    """The same loss on integer labels."""

    def forward(self, x, t):
        return super().forward(x, np.eye(x.shape[1])[t])


def two_layer_function(params, x, y):
    """A function-style network: (params, x, y) -> (loss, grads), integer labels."""
    h = x @ params["W1"] + params["b1"]
    a = np.maximum(h, 0)
    p = softmax(a @ params["W2"] + params["b2"])
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    d /= n
    dh = (d @ params["W2"].T) * (h > 0)
    return loss, {"W1": x.T @ dh, "b1": dh.sum(0), "W2": a.T @ d, "b2": d.sum(0)}
