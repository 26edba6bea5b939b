"""A network written with a home-made autograd engine, as ``check_model``'s function protocol.

``engine_model(forward, leaf)`` is the function ``(params, x, y) -> (loss, grads)`` that ``check_model``
trains in lockstep with the torch twin: each step it makes every parameter a leaf of the engine (a tensor
engine: one leaf per array; a scalar engine: a NumPy object array of leaves, one per element, so that
``x @ W.T + b`` and ``.mean()`` work on it as on numbers), calls ``forward(leaves, x, y)`` for the loss
node, runs the engine's backward from it and reads every leaf's gradient back into arrays.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from compare.check.check_engine import Protocol


def engine_model(
    forward: Callable[[dict[str, Any], np.ndarray, np.ndarray], Any],
    leaf: Callable[[Any], Any],
    *,
    value: Callable[[Any], Any] = Protocol.value,
    grad: Callable[[Any], Any] = Protocol.grad,
    backward: Callable[[Any], Any] = Protocol.backward,
    tensor: bool | None = None,
) -> Callable[[Mapping[str, np.ndarray], np.ndarray, np.ndarray], tuple[float, dict[str, np.ndarray]]]:
    """``forward(leaves, x, y)`` → the loss node; ``leaf``, ``value``, ``grad``, ``backward`` and ``tensor``
    as ``check_engine`` takes them."""
    protocol = Protocol(leaf, value, grad, backward)
    tensor = protocol.is_tensor_engine() if tensor is None else tensor
    make = np.frompyfunc(lambda v: leaf(float(v)), 1, 1)
    read = np.frompyfunc(lambda node: float(grad(node)), 1, 1)

    def model(params: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        leaves = {name: leaf(np.array(p)) if tensor else make(p) for name, p in params.items()}
        loss = forward(leaves, x, y)
        backward(loss)
        if tensor:
            grads = {name: np.asarray(grad(node), dtype=np.float64) for name, node in leaves.items()}
        else:
            grads = {name: read(node).astype(np.float64) for name, node in leaves.items()}
        return float(np.asarray(value(loss))), grads

    return model
