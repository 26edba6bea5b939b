"""Layers as computational-graph nodes: each ``forward`` caches what its local
derivative needs, each ``backward`` multiplies the upstream gradient ``dout`` by that
local derivative (the chain rule) and returns ``dx``. Backward never mutates ``dout``.

Every node carries ``params`` (trainable, torch names), ``grads`` (filled by backward),
``buffers`` (state that is not trained, such as BatchNorm's running statistics) and a
``training`` flag, as ``nn.Module`` does.

Letters: N batch, I input width, O output width, H features of a normalised layer.
"""

import numpy as np

LEAKY_RELU_SLOPE = 0.01  # torch.nn.LeakyReLU's default negative_slope
BATCHNORM_MOMENTUM = 0.1  # torch.nn.BatchNorm1d's default: running ← (1 − m)·running + m·batch
BATCHNORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default


class Node:
    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True


class Linear(Node):
    """``y = x @ W.T + b`` with ``W`` of shape ``(O, I)``, torch's layout.

    As a graph: a multiply node (x, W) feeds an add node (+ b). The add node passes
    ``dout`` unchanged to both inputs; b was broadcast over the batch, so its gradient
    is summed over the batch. The multiply node hands each input ``dout`` times the
    other input.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, input_grad: bool = True) -> None:
        """``input_grad=False`` skips dx, which no one needs for the first layer (its input is the
        data; torch skips it too, the data not requiring grad): a third of that layer's backward."""
        super().__init__()
        self.params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
        self.input_grad = input_grad
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x  # (N, I)
        y = x @ self.params["weight"].T  # (N, O)
        if "bias" in self.params:
            y += self.params["bias"]  # in place: y is a fresh array
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        assert self._x is not None, "backward before forward"
        self.grads["weight"] = dout.T @ self._x  # (O, I) multiply node: dout times x
        if "bias" in self.params:
            self.grads["bias"] = dout.sum(axis=0)  # (O,) add node, summed over the batch
        return dout @ self.params["weight"] if self.input_grad else None  # (N, I) multiply node: dout times W


class ReLU(Node):
    """``y = max(x, 0)``; local derivative 1 where ``x > 0``, else 0 (0 at exactly 0, as torch)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, 0.0).astype(x.dtype, copy=False)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._mask


class LeakyReLU(Node):
    """``y = x`` where ``x > 0``, else ``0.01·x``; local derivative 1 or 0.01.

    Unlike ReLU the gradient never dies, the cure for vanishing gradients the lecture names.
    """

    def __init__(self, negative_slope: float = LEAKY_RELU_SLOPE) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, self.negative_slope * x).astype(x.dtype, copy=False)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self._mask, dout, self.negative_slope * dout).astype(dout.dtype, copy=False)


class Sigmoid(Node):
    """``out = 1 / (1 + e^{-x})``; local derivative ``out·(1 − out)``, at most 0.25.

    ``out(1 − out)`` is the delta term of the lecture notes; its 0.25 ceiling is why
    deep sigmoid nets see their gradients vanish.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # e^{-x} = inf for x ≪ 0 gives out = 0 exactly
            self._out = 1.0 / (1.0 + np.exp(-x))
        return self._out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._out * (1.0 - self._out)


class Tanh(Node):
    """``out = tanh(x)``; local derivative ``1 − out²``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self._out * self._out)


class Dropout(Node):
    """Inverted dropout: in training ``y = x · mask / (1 − p)`` with ``mask ~ Bernoulli(1 − p)``;
    in evaluation the identity. Local derivative: the same ``mask / (1 − p)``.

    Scaling at training time keeps the expected activation unchanged, so evaluation needs no
    rescaling. The boolean ``mask`` of the last training forward is kept so the checker can inject
    the very same draw into torch, whose RNG cannot reproduce NumPy's (torch applies its own scale).
    """

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.p = p
        self.rng = rng
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            self.mask = None
            return x
        self.mask = self.rng.random(x.shape) >= self.p  # (N, H) keep with probability 1 − p
        self._noise = (self.mask / (1.0 - self.p)).astype(x.dtype)  # torch's "noise": mask / (1 − p)
        return x * self._noise

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self.mask is None else dout * self._noise


class BatchNorm1d(Node):
    """Batch normalisation over the batch axis, torch's ``nn.BatchNorm1d`` (momentum 0.1, eps 1e-5).

    Training:  μ = mean(x), σ² = mean((x − μ)²) (biased), x̂ = (x − μ)/√(σ² + ε), y = γ·x̂ + β;
               running_mean ← (1 − m)·running_mean + m·μ
               running_var  ← (1 − m)·running_var + m·σ²·N/(N − 1)   (torch keeps the UNBIASED variance)
    Evaluation: x̂ = (x − running_mean)/√(running_var + ε).
    Backward (training), with d x̂ = dout·γ:
               dβ = Σ dout, dγ = Σ dout·x̂, dx = (1/N)/√(σ² + ε) · (N·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂)

    Convention: some textbooks keep the biased variance, use momentum 0.9 for the *old* value, or
    start running_var at 0; torch starts it at 1.
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        running_mean: np.ndarray,
        running_var: np.ndarray,
        num_batches_tracked: np.ndarray,
        momentum: float = BATCHNORM_MOMENTUM,
        eps: float = BATCHNORM_EPS,
    ) -> None:
        super().__init__()
        self.params = {"weight": weight, "bias": bias}
        self.buffers = {
            "running_mean": running_mean,
            "running_var": running_var,
            "num_batches_tracked": np.asarray(num_batches_tracked, dtype=np.int64).reshape(()),
        }
        self.momentum = momentum
        self.eps = eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
            return (x - self.buffers["running_mean"]) * inv_std * self.params["weight"] + self.params["bias"]
        n = x.shape[0]
        mean = x.mean(axis=0)  # (H,)
        centered = x - mean  # (N, H)
        var = (centered * centered).mean(axis=0)  # (H,) biased, used to normalise
        self._inv_std = 1.0 / np.sqrt(var + self.eps)  # (H,)
        self._xhat = centered * self._inv_std  # (N, H)
        m = self.momentum
        self.buffers["running_mean"] *= 1.0 - m
        self.buffers["running_mean"] += m * mean
        self.buffers["running_var"] *= 1.0 - m
        self.buffers["running_var"] += m * var * (n / (n - 1))  # unbiased, as torch keeps it
        self.buffers["num_batches_tracked"] += 1
        return self._xhat * self.params["weight"] + self.params["bias"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        n = dout.shape[0]
        self.grads["bias"] = dout.sum(axis=0)  # (H,)
        self.grads["weight"] = (dout * self._xhat).sum(axis=0)  # (H,)
        dxhat = dout * self.params["weight"]  # (N, H)
        return (self._inv_std / n) * (n * dxhat - dxhat.sum(axis=0) - self._xhat * (dxhat * self._xhat).sum(axis=0))


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}
