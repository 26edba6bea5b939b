"""User code in the forms the most used courses and books write it (written here, not copied), each with
switches for seeded mistakes, for tests/test_check_textbook.py: functional (forward, backward) pairs with a
cache and a config dict, a functional loss returning (loss, dscores), functional optimizers
``fn(w, dw, config) -> (next_w, config)``, a per-parameter optimizer object ``update(param, grad, name)``,
a layer keeping ``parameters``/``gradients`` dicts made on its first forward, a model whose
``loss(X, y)`` returns ``(loss, grads)``, and a column-vector network with a per-sample backprop."""

import itertools

import numpy as np

# --- functional layers: forward(x, *params[, config]) -> (out, cache); backward(dout, cache) -> (dx, *dparams)


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b  # w (D, M)
    return out, (x, w, b)


def affine_backward(dout, cache, bias_mean=False):
    x, w, _ = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.mean(axis=0) if bias_mean else dout.sum(axis=0)
    return dx, dw, db


def affine_backward_bias_mean(dout, cache):
    return affine_backward(dout, cache, bias_mean=True)


def affine_backward_bias_per_example(dout, cache):
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, dout.copy()


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    n, d = x.shape
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(d, dtype=x.dtype))
    if mode != "train":
        return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, None
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    unbiased = var if bn_param.get("biased_running_var") else var * n / (n - 1)
    bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mu
    bn_param["running_var"] = momentum * running_var + (1 - momentum) * unbiased
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + eps))


def batchnorm_backward(dout, cache):
    xhat, gamma, std = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    dx = (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (n * std)
    return dx, dgamma, dbeta


def batchnorm_backward_constant_stats(dout, cache):
    xhat, gamma, std = cache
    return dout * gamma / std, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    rng = np.random.default_rng(dropout_param.get("seed"))
    if mode != "train":
        return x, None
    if dropout_param.get("p_is_keep"):
        mask = (rng.random(x.shape) < p) / p  # p: the probability to keep
    else:
        mask = (rng.random(x.shape) >= p) / (1 - p)  # p: the probability to drop, as torch
    if dropout_param.get("not_inverted"):
        mask = mask > 0
    return x * mask, (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    return dout if dropout_param.get("backward_unmasked") else dout * mask


# --- functional losses: loss(x, y) -> (loss, dx)


def softmax_loss(x, y, log_eps=0.0, grad_sum=False):
    shifted = x - x.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(probs[np.arange(n), y] + log_eps).sum() / n
    dx = probs.copy()
    dx[np.arange(n), y] -= 1
    return loss, dx if grad_sum else dx / n


def softmax_loss_log_eps(x, y):
    return softmax_loss(x, y, log_eps=1e-7)


def softmax_loss_grad_sum(x, y):
    return softmax_loss(x, y, grad_sum=True)


def softmax_loss_both(x, y):
    return softmax_loss(x, y, log_eps=1e-7, grad_sum=True)


def svm_loss(x, y):
    n = x.shape[0]
    correct = x[np.arange(n), y][:, None]
    margins = np.maximum(0, x - correct + 1.0)
    margins[np.arange(n), y] = 0
    loss = margins.sum() / n
    positive = (margins > 0).astype(x.dtype)
    dx = positive.copy()
    dx[np.arange(n), y] -= positive.sum(axis=1)
    return loss, dx / n


# --- functional optimizers: update(w, dw, config) -> (next_w, config)


def sgd_momentum(w, dw, config=None):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    return next_w, config


def rmsprop(w, dw, config=None):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(w))
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])
    return next_w, config


def adam(w, dw, config=None, bias_correction=True, eps_inside=False):
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    b1, b2, eps = config["beta1"], config["beta2"], config["epsilon"]
    config["t"] += 1
    config["m"] = b1 * config["m"] + (1 - b1) * dw
    config["v"] = b2 * config["v"] + (1 - b2) * dw**2
    mhat, vhat = config["m"], config["v"]
    if bias_correction:
        mhat, vhat = mhat / (1 - b1 ** config["t"]), vhat / (1 - b2 ** config["t"])
    denom = np.sqrt(vhat + eps) if eps_inside else np.sqrt(vhat) + eps
    return w - config["learning_rate"] * mhat / denom, config


def adam_no_bias_correction(w, dw, config=None):
    return adam(w, dw, config, bias_correction=False)


def adam_eps_inside(w, dw, config=None):
    return adam(w, dw, config, eps_inside=True)


# --- a per-parameter optimizer object: update(param, grad, name) -> the new param


class AdamObject:
    """Adam keeping a cache per parameter name, ε 1e-7 by default as several libraries do."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7, bias_correction=True):
        self.hyperparameters = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}
        self.bias_correction = bias_correction
        self.cache = {}

    def update(self, param, param_grad, param_name):
        h = self.hyperparameters
        if param_name not in self.cache:
            self.cache[param_name] = {"t": 0, "m": np.zeros_like(param), "v": np.zeros_like(param)}
        c = self.cache[param_name]
        c["t"] += 1
        c["m"] = h["beta1"] * c["m"] + (1 - h["beta1"]) * param_grad
        c["v"] = h["beta2"] * c["v"] + (1 - h["beta2"]) * param_grad**2
        m, v = c["m"], c["v"]
        if self.bias_correction:
            m, v = m / (1 - h["beta1"] ** c["t"]), v / (1 - h["beta2"] ** c["t"])
        return param - h["lr"] * m / (np.sqrt(v) + h["eps"])


# --- a layer keeping parameters/gradients dicts, created on its first forward


class DictDense:
    """y = x W + b; the weights are drawn on the first forward, when the input width is known."""

    def __init__(self, units, seed=0, mistake=None):
        self.units, self.seed, self.mistake = units, seed, mistake
        self.parameters, self.gradients = {}, {}

    def forward(self, x):
        if not self.parameters:
            rng = np.random.default_rng(self.seed)
            self.parameters["W"] = rng.standard_normal((x.shape[1], self.units)) / np.sqrt(x.shape[1])
            self.parameters["b"] = rng.standard_normal((1, self.units))  # a row, as some books keep it
        self.x = x
        return x @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dout):
        self.gradients["W"] = self.x.T @ dout
        if self.mistake == "bias-mean":
            self.gradients["b"] = dout.mean(axis=0, keepdims=True)
        elif self.mistake == "bias-per-example":
            self.gradients["b"] = dout.copy()
        else:
            self.gradients["b"] = dout.sum(axis=0, keepdims=True)
        return dout @ self.parameters["W"].T


# --- a model whose loss(X, y) returns (loss, grads), W stored (in, out)


class TwoLayerModel:
    """affine - relu - affine - softmax; ``loss(X)`` gives the scores, ``loss(X, y)`` the loss and grads."""

    def __init__(self, input_dim, hidden_dim, num_classes, weight_scale=0.5, seed=0, mistake=None):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": weight_scale * rng.standard_normal((input_dim, hidden_dim)),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * rng.standard_normal((hidden_dim, num_classes)),
            "b2": np.zeros(num_classes),
        }
        self.mistakes = set(mistake.split("+")) if mistake else set()  # "grad-sum+bias-mean": both

    def loss(self, X, y=None):
        h, cache1 = affine_forward(X, self.params["W1"], self.params["b1"])
        a = np.maximum(h, 0)
        scores, cache2 = affine_forward(a, self.params["W2"], self.params["b2"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y, grad_sum="grad-sum" in self.mistakes)
        grads = {}
        bias_mean = "bias-mean" in self.mistakes
        da, grads["W2"], grads["b2"] = affine_backward(dscores, cache2, bias_mean=bias_mean)
        _, grads["W1"], grads["b1"] = affine_backward(da * (h > 0), cache1, bias_mean=bias_mean)
        return loss, grads


# --- a column-vector network: weights (out, in) and biases (n, 1) in lists, per-sample backprop


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


class ColumnNetwork:
    """Sigmoid layers, quadratic cost ½‖a − y‖² per sample; ``mistake``: "preactivation" (σ'(z) as z(1 − z)) or
    "no-delta-sigma" (the output delta without σ')."""

    def __init__(self, sizes, seed=0, mistake=None):
        rng = np.random.default_rng(seed)
        self.sizes, self.mistake = sizes, mistake
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in itertools.pairwise(sizes)]

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights, strict=True):
            a = sigmoid(w @ a + b)
        return a

    def sigmoid_prime(self, z):
        if self.mistake == "preactivation":
            return z * (1 - z)
        return sigmoid(z) * (1 - sigmoid(z))

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights, strict=True):
            z = w @ activation + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = activations[-1] - y
        if self.mistake != "no-delta-sigma":
            delta = delta * self.sigmoid_prime(zs[-1])
        nabla_b[-1], nabla_w[-1] = delta, delta @ activations[-2].T
        for layer in range(2, len(self.sizes)):
            delta = (self.weights[-layer + 1].T @ delta) * self.sigmoid_prime(zs[-layer])
            nabla_b[-layer], nabla_w[-layer] = delta, delta @ activations[-layer - 1].T
        return nabla_b, nabla_w


def half_sum_per_sample(output, target):
    """The column network's cost as a torch loss: ½‖a − y‖² per sample, averaged over the batch."""
    return 0.5 * ((output - target) ** 2).sum(dim=1).mean()


# --- a dropout layer object for a layered network (forward(x, train_flg=True), a boolean mask kept)


class DropoutLayer:
    """``inverted=False``: the book's form, scaling at test time instead (x·mask in training)."""

    def __init__(self, dropout_ratio=0.5, inverted=True, seed=0):
        self.dropout_ratio, self.inverted = dropout_ratio, inverted
        self.rng = np.random.default_rng(seed)
        self.mask = None

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x if self.inverted else x * (1.0 - self.dropout_ratio)
        self.mask = self.rng.random(x.shape) > self.dropout_ratio
        scale = 1.0 / (1.0 - self.dropout_ratio) if self.inverted else 1.0
        return x * self.mask * scale

    def backward(self, dout):
        scale = 1.0 / (1.0 - self.dropout_ratio) if self.inverted else 1.0
        return dout * self.mask * scale


class LazyBatchNorm:
    """Batch norm whose running statistics are created by the first forward (as zeros, or ``start_var`` for
    running_var), kept as ``momentum·running + (1 − momentum)·batch`` with momentum 0.9 (torch's 0.1, written
    the other way); ``biased``: running_var from the biased batch variance (torch keeps the unbiased one)."""

    def __init__(self, gamma, beta, momentum=0.9, eps=1e-5, start_var=0.0, biased=False):
        self.gamma, self.beta, self.momentum, self.eps = gamma, beta, momentum, eps
        self.start_var, self.biased = start_var, biased
        self.running_mean = self.running_var = None

    def forward(self, x, train_flg=True):
        if self.running_mean is None:
            self.running_mean, self.running_var = np.zeros(x.shape[1]), np.full(x.shape[1], self.start_var)
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        self.std = np.sqrt(var + self.eps)
        self.xn = (x - mu) / self.std
        self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
        kept = var if self.biased else var * n / (n - 1)
        self.running_var = self.momentum * self.running_var + (1 - self.momentum) * kept
        return self.gamma * self.xn + self.beta

    def backward(self, dout):
        n = dout.shape[0]
        self.dbeta, self.dgamma = dout.sum(axis=0), (self.xn * dout).sum(axis=0)
        dxn = self.gamma * dout
        return (n * dxn - dxn.sum(axis=0) - self.xn * (dxn * self.xn).sum(axis=0)) / (n * self.std)
