"""Layers in numpy-ml's form (https://github.com/ddbourgin/numpy-ml, ``numpy_ml/neural_nets/layers``), written
here from its structure, for tests/test_check_numpy_ml.py: ``parameters`` declared ``None`` until the first
forward (``_init_params`` runs there, when the input width is known; ``is_initialized`` says so), gradients
added into ``gradients`` by each backward until ``flush_gradients()`` (which the layer's ``update`` calls),
``forward(X, retain_derived=True)`` keeping its inputs in ``self.X``, ``backward(dLdy, retain_grads=True)``
returning dL/dX (a list when the layer holds several inputs), settings in a ``hyperparameters`` property.
FullyConnected keeps W as (n_in, n_out) and b as (1, n_out), with the identity as its default activation;
the norm layers keep ``scaler`` and ``intercept``; BatchNorm1D keeps its running statistics among its
``parameters``, moves them with momentum 0.9 on the old value, and from the biased batch variance (numpy-ml's
own choice: torch keeps the unbiased one). The weights are drawn from a generator seeded at construction
(numpy-ml draws from NumPy's global one). ``mistake`` switches seed a known mistake."""

import numpy as np


class LayerBase:
    def __init__(self, seed=0, lr=0.01):
        self.X, self.trainable, self.seed, self.lr = [], True, seed, lr
        self.gradients, self.parameters, self.derived_variables = {}, {}, {}

    def flush_gradients(self):
        assert self.trainable, "Layer is frozen"
        self.X = []
        self.derived_variables = {key: [] for key in self.derived_variables}
        self.gradients = {key: np.zeros_like(value) for key, value in self.gradients.items()}

    def update(self):
        """Plain gradient descent on the gathered gradients (numpy-ml hands them to its optimizer), then a flush."""
        for key, grad in self.gradients.items():
            if key in self.parameters:
                self.parameters[key] = self.parameters[key] - self.lr * grad
        self.flush_gradients()

    def backward(self, dLdy, retain_grads=True):
        assert self.trainable, "Layer is frozen"
        dLdy = dLdy if isinstance(dLdy, list) else [dLdy]
        dX = []
        for dy, x in zip(dLdy, self.X, strict=False):
            dx, grads = self._bwd(dy, x)
            dX.append(dx)
            if retain_grads:
                for key, value in grads.items():
                    self.gradients[key] += value
        return dX[0] if len(self.X) == 1 else dX


class FullyConnected(LayerBase):
    """Y = f(X W + b), W (n_in, n_out) drawn Glorot-uniform at the first forward, b zeros (1, n_out)."""

    def __init__(self, n_out, act_fn=None, seed=0, mistake=None):
        super().__init__(seed)
        self.n_in, self.n_out, self.act_fn, self.mistake = None, n_out, act_fn, mistake
        self.parameters = {"W": None, "b": None}
        self.is_initialized = False

    def _init_params(self):
        limit = np.sqrt(6 / (self.n_in + self.n_out))
        W = np.random.default_rng(self.seed).uniform(-limit, limit, (self.n_in, self.n_out))
        b = np.zeros((1, self.n_out))
        self.parameters = {"W": W, "b": b}
        self.derived_variables = {"Z": []}
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.is_initialized = True

    @property
    def hyperparameters(self):
        return {"layer": "FullyConnected", "n_in": self.n_in, "n_out": self.n_out, "act_fn": str(self.act_fn)}

    def _act(self, Z):
        return np.maximum(Z, 0) if self.act_fn == "ReLU" else Z

    def _act_grad(self, Z):
        return (Z > 0).astype(Z.dtype) if self.act_fn == "ReLU" else np.ones_like(Z)

    def forward(self, X, retain_derived=True):
        if not self.is_initialized:
            self.n_in = X.shape[1]
            self._init_params()
        Z = X @ self.parameters["W"] + self.parameters["b"]
        if retain_derived:
            self.X.append(X)
            self.derived_variables["Z"].append(Z)
        return self._act(Z)

    def _bwd(self, dLdy, X):
        W = self.parameters["W"]
        dZ = dLdy * self._act_grad(X @ W + self.parameters["b"])
        db = dZ.mean(axis=0, keepdims=True) if self.mistake == "bias-mean" else dZ.sum(axis=0, keepdims=True)
        return dZ @ W.T, {"W": X.T @ dZ, "b": db}


class LayerNorm1D(LayerBase):
    """Y = scaler · (X − mean) / √(var + ε) + intercept, the statistics of each example over its features."""

    def __init__(self, epsilon=1e-5, seed=0):
        super().__init__(seed)
        self.n_in = self.n_out = None
        self.epsilon = epsilon
        self.parameters = {"scaler": None, "intercept": None}
        self.is_initialized = False

    def _init_params(self):
        scaler, intercept = np.random.default_rng(self.seed).random(self.n_in), np.zeros(self.n_in)
        self.parameters = {"scaler": scaler, "intercept": intercept}
        self.gradients = {"scaler": np.zeros_like(scaler), "intercept": np.zeros_like(intercept)}
        self.is_initialized = True

    @property
    def hyperparameters(self):
        return {"layer": "LayerNorm1D", "n_in": self.n_in, "n_out": self.n_out, "epsilon": self.epsilon}

    def forward(self, X, retain_derived=True):
        if not self.is_initialized:
            self.n_in = self.n_out = X.shape[1]
            self._init_params()
        if retain_derived:
            self.X.append(X)
        norm = (X - X.mean(axis=1, keepdims=True)) / np.sqrt(X.var(axis=1, keepdims=True) + self.epsilon)
        return self.parameters["scaler"] * norm + self.parameters["intercept"]

    def _bwd(self, dLdy, X):
        n_in = X.shape[1]
        std = np.sqrt(X.var(axis=1, keepdims=True) + self.epsilon)
        norm = (X - X.mean(axis=1, keepdims=True)) / std
        dnorm = dLdy * self.parameters["scaler"]
        dX = (n_in * dnorm - dnorm.sum(axis=1, keepdims=True) - norm * (dnorm * norm).sum(axis=1, keepdims=True)) / (
            n_in * std
        )
        return dX, {"scaler": (dLdy * norm).sum(axis=0), "intercept": dLdy.sum(axis=0)}


class BatchNorm1D(LayerBase):
    """Y = scaler · (X − batch mean) / √(batch var + ε) + intercept; running statistics kept among the
    parameters, started at zeros and ones at the first forward, moved as 0.9·running + 0.1·batch.
    ``unbiased_running_var``: the running variance from the unbiased batch variance, as torch keeps it."""

    def __init__(self, momentum=0.9, epsilon=1e-5, seed=0, unbiased_running_var=False):
        super().__init__(seed)
        self.n_in = self.n_out = None
        self.momentum, self.epsilon, self.unbiased_running_var = momentum, epsilon, unbiased_running_var
        self.parameters = {"scaler": None, "intercept": None, "running_var": None, "running_mean": None}
        self.is_initialized = False

    def _init_params(self):
        scaler, intercept = np.random.default_rng(self.seed).random(self.n_in), np.zeros(self.n_in)
        self.parameters = {
            "scaler": scaler, "intercept": intercept,
            "running_mean": np.zeros(self.n_in), "running_var": np.ones(self.n_in),
        }  # fmt: skip
        self.gradients = {"scaler": np.zeros_like(scaler), "intercept": np.zeros_like(intercept)}
        self.is_initialized = True

    @property
    def hyperparameters(self):
        return {"layer": "BatchNorm1D", "n_in": self.n_in, "epsilon": self.epsilon, "momentum": self.momentum}

    def forward(self, X, retain_derived=True):
        if not self.is_initialized:
            self.n_in = self.n_out = X.shape[1]
            self._init_params()
        mean, var = self.parameters["running_mean"], self.parameters["running_var"]
        if self.trainable and retain_derived:
            mean, var = X.mean(axis=0), X.var(axis=0)
            kept = var * len(X) / (len(X) - 1) if self.unbiased_running_var else var
            m = self.momentum
            self.parameters["running_mean"] = m * self.parameters["running_mean"] + (1 - m) * mean
            self.parameters["running_var"] = m * self.parameters["running_var"] + (1 - m) * kept
        if retain_derived:
            self.X.append(X)
        return self.parameters["scaler"] * (X - mean) / np.sqrt(var + self.epsilon) + self.parameters["intercept"]

    def _bwd(self, dLdy, X):
        n = X.shape[0]
        std = np.sqrt(X.var(axis=0) + self.epsilon)
        norm = (X - X.mean(axis=0)) / std
        dnorm = dLdy * self.parameters["scaler"]
        dX = (n * dnorm - dnorm.sum(axis=0) - norm * (dnorm * norm).sum(axis=0)) / (n * std)
        return dX, {"scaler": (dLdy * norm).sum(axis=0), "intercept": dLdy.sum(axis=0)}


class Conv2D(LayerBase):
    """Cross-correlation of an NHWC input with a kernel W (kh, kw, in_ch, out_ch) made at the first forward,
    plus b (1, 1, 1, out_ch), zero padding ``pad`` on each side, stride 1."""

    def __init__(self, out_ch, kernel_shape, pad=0, act_fn=None, seed=0):
        super().__init__(seed)
        self.in_ch, self.out_ch, self.kernel_shape, self.pad, self.act_fn = None, out_ch, kernel_shape, pad, act_fn
        self.parameters = {"W": None, "b": None}
        self.is_initialized = False

    def _init_params(self):
        fr, fc = self.kernel_shape
        limit = np.sqrt(6 / ((self.in_ch + self.out_ch) * fr * fc))
        W = np.random.default_rng(self.seed).uniform(-limit, limit, (fr, fc, self.in_ch, self.out_ch))
        b = np.zeros((1, 1, 1, self.out_ch))
        self.parameters = {"W": W, "b": b}
        self.gradients = {"W": np.zeros_like(W), "b": np.zeros_like(b)}
        self.derived_variables = {"Z": [], "out_rows": [], "out_cols": []}
        self.is_initialized = True

    @property
    def hyperparameters(self):
        return {"layer": "Conv2D", "pad": self.pad, "stride": 1, "kernel_shape": self.kernel_shape}

    def _windows(self, X):
        """Each kernel offset (i, j) with the padded input's window it multiplies."""
        p, (fr, fc) = self.pad, self.kernel_shape
        padded = np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))
        rows, cols = padded.shape[1] - fr + 1, padded.shape[2] - fc + 1
        return (
            padded,
            rows,
            cols,
            [(i, j, padded[:, i : i + rows, j : j + cols, :]) for i in range(fr) for j in range(fc)],
        )

    def forward(self, X, retain_derived=True):
        if not self.is_initialized:
            self.in_ch = X.shape[3]
            self._init_params()
        _, rows, cols, windows = self._windows(X)
        Z = sum(window @ self.parameters["W"][i, j] for i, j, window in windows) + self.parameters["b"]
        if retain_derived:
            self.X.append(X)
            self.derived_variables["Z"].append(Z)
            self.derived_variables["out_rows"].append(rows)
            self.derived_variables["out_cols"].append(cols)
        return np.maximum(Z, 0) if self.act_fn == "ReLU" else Z

    def _bwd(self, dLdy, X):
        padded, rows, cols, windows = self._windows(X)
        W, p = self.parameters["W"], self.pad
        Z = sum(window @ W[i, j] for i, j, window in windows) + self.parameters["b"]
        dZ = dLdy * (Z > 0) if self.act_fn == "ReLU" else dLdy
        dW, dpadded = np.zeros_like(W), np.zeros_like(padded)
        for i, j, window in windows:
            dW[i, j] = window.reshape(-1, self.in_ch).T @ dZ.reshape(-1, self.out_ch)
            dpadded[:, i : i + rows, j : j + cols, :] += dZ @ W[i, j].T
        dX = dpadded[:, p : p + X.shape[1], p : p + X.shape[2], :]
        return dX, {"W": dW, "b": dZ.sum(axis=(0, 1, 2)).reshape(1, 1, 1, -1)}
