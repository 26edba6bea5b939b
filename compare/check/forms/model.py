"""The network forms of the courses, recognised without glue, and one ``InputError`` for any other.

* the textbook protocol: ``params`` (a dict), ``loss(x, t)`` and ``gradient(x, t)`` → grads;
* a model whose ``loss(X, y)`` returns ``(loss, grads)`` (and the scores without ``y``), ``params`` a dict;
* a column-vector network: ``weights`` and ``biases`` lists (weights (out, in), biases (n, 1)), samples as
  columns, and a per-sample ``backprop(x, y) -> (nabla_b, nabla_w)`` (the gradient of that sample's cost),
  ``feedforward(a)`` for the outputs. The checker feeds it columns, one sample at a time, and averages the
  per-sample gradients over the batch (the mean over the batch, as ``eta / len(batch)`` does); its
  parameters are named ``W1``, ``b1``, ... Its loss is torch's loss of its own outputs (it returns none);
* a function ``(params, x, y) -> (loss, grads)`` with ``params=``.

X and y are given as rows (samples) always; labels become one-hot columns for a column network.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from compare.check.forms.layer_loss import found
from compare.errors import InputError

MODEL_FORMS = (
    "an object with params (a dict), loss(x, t) and gradient(x, t); an object with params whose loss(X, y) "
    "returns (loss, grads); a column-vector network with weights and biases lists and backprop(x, y) -> "
    "(nabla_b, nabla_w); or a function (params, x, y) -> (loss, grads) with params="
)


def model_form(model: Any) -> str:
    """``gradient``, ``loss-grads``, ``column`` or ``function``; ``InputError`` for any other form."""
    if callable(getattr(model, "backprop", None)) and isinstance(getattr(model, "weights", None), list):
        return "column"
    if isinstance(getattr(model, "params", None), dict):
        if callable(getattr(model, "gradient", None)):
            return "gradient"
        if callable(getattr(model, "loss", None)):
            return "loss-grads"
    if callable(model) and not hasattr(model, "params"):
        return "function"
    raise InputError(f"the model is {found(model)}; accepted: {MODEL_FORMS}")


def one_hot_columns(y: np.ndarray, width: int, dtype: np.dtype) -> np.ndarray:
    """Targets as columns (C, N): labels become one-hot, rows are transposed."""
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind in "iu":
        return np.eye(width, dtype=dtype)[y].T
    return y.reshape(len(y), -1).T.astype(dtype)


class ColumnNetwork:
    """A column-vector network seen through the textbook protocol: ``params`` (``W1``, ``b1``, ...: the
    user's own arrays, written back into its lists before every call), ``gradient`` and ``loss``."""

    def __init__(self, network: Any, torch_loss: Callable) -> None:
        self.network = network
        self.torch_loss = torch_loss
        self.params: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True), start=1):
            self.params[f"W{i}"], self.params[f"b{i}"] = w, b

    def _sync(self) -> None:
        count = len(self.network.weights)
        self.network.weights = [self.params[f"W{i}"] for i in range(1, count + 1)]
        self.network.biases = [self.params[f"b{i}"] for i in range(1, count + 1)]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """The per-sample gradients of ``backprop``, averaged over the batch."""
        self._sync()
        width = np.shape(self.network.weights[-1])[0]
        targets = one_hot_columns(t, width, x.dtype)
        totals: dict[str, np.ndarray] = {}
        for n in range(x.shape[0]):
            result = self.network.backprop(x[n].reshape(-1, 1).copy(), targets[:, n : n + 1].copy())
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(f"backprop(x, y) must return (nabla_b, nabla_w); it returned a {type(result).__name__}")
            nabla_b, nabla_w = result
            for i, (db, dw) in enumerate(zip(nabla_b, nabla_w, strict=True), start=1):
                for name, value in ((f"b{i}", db), (f"W{i}", dw)):
                    totals[name] = totals.get(name, 0.0) + np.asarray(value)
        return {name: value / x.shape[0] for name, value in totals.items()}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The outputs as rows (N, C), one column fed at a time."""
        self._sync()
        columns = [np.asarray(self.network.feedforward(x[n].reshape(-1, 1).copy())) for n in range(x.shape[0])]
        return np.concatenate(columns, axis=1).T

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        """torch's loss of the network's own outputs (the network returns no loss of its own)."""
        out = torch.from_numpy(np.ascontiguousarray(self.predict(x)))
        target = torch.from_numpy(np.asarray(t))
        return float(self.torch_loss(out, target.to(out.dtype) if target.is_floating_point() else target))


class LossGrads:
    """A model whose ``loss(X, y)`` returns ``(loss, grads)`` seen through the textbook protocol."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.params = model.params
        self._loss: Any = None

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        result = self.model.loss(x, t)
        if not (isinstance(result, tuple) and len(result) == 2 and hasattr(result[1], "keys")):
            raise TypeError(f"loss(X, y) must return (loss, grads); it returned a {type(result).__name__}")
        self._loss = result[0]
        return dict(result[1])

    def loss(self, x: np.ndarray, t: np.ndarray) -> Any:
        return self._loss

    def predict(self, x: np.ndarray) -> Any:
        return self.model.loss(x)

    def __getattr__(self, name: str) -> Any:
        model = self.__dict__.get("model")
        if model is None:
            raise AttributeError(name)
        return getattr(model, name)


def adapt(model: Any, torch_loss: Callable) -> tuple[Any, str]:
    """The user's model (already the checker's copy) as the protocol ``UserModelSide`` drives, and its form."""
    form = model_form(model)
    if form == "column":
        return ColumnNetwork(model, torch_loss), form
    if form == "loss-grads":
        return LossGrads(model), form
    return model, form
