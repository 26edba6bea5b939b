"""Layers as computational-graph nodes: each ``forward`` caches what its local
derivative needs, each ``backward`` multiplies the upstream gradient ``dout`` by that
local derivative (the chain rule) and returns ``dx``. Backward never mutates ``dout``.

Letters: N batch, I input width, O output width.
"""

import numpy as np

LEAKY_RELU_SLOPE = 0.01  # torch.nn.LeakyReLU's default negative_slope


class Linear:
    """``y = x @ W.T + b`` with ``W`` of shape ``(O, I)``, torch's layout.

    As a graph: a multiply node (x, W) feeds an add node (+ b). The add node passes
    ``dout`` unchanged to both inputs; b was broadcast over the batch, so its gradient
    is summed over the batch. The multiply node hands each input ``dout`` times the
    other input.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.params: dict[str, np.ndarray] = {"weight": weight, "bias": bias}
        self.grads: dict[str, np.ndarray] = {}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x  # (N, I)
        return x @ self.params["weight"].T + self.params["bias"]  # (N, O)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self._x is not None, "backward before forward"
        self.grads["bias"] = dout.sum(axis=0)  # (O,)   add node, summed over the batch
        self.grads["weight"] = dout.T @ self._x  # (O, I) multiply node: dout times x
        return dout @ self.params["weight"]  # (N, I) multiply node: dout times W


class Activation:
    """A node without parameters: it only passes the gradient through its local derivative."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}


class ReLU(Activation):
    """``y = max(x, 0)``; local derivative 1 where ``x > 0``, else 0 (0 at exactly 0, as torch)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, 0.0).astype(x.dtype, copy=False)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._mask


class LeakyReLU(Activation):
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


class Sigmoid(Activation):
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


class Tanh(Activation):
    """``out = tanh(x)``; local derivative ``1 − out²``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self._out * self._out)


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}
