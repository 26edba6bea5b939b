"""The call forms a user's layer or loss may take, recognised without glue, and one ``InputError``
before any work for a form the checker does not know.

Layers:

* an object with ``forward(x)`` and ``backward(dout)`` → dx (parameters as ``compare.check.forms.access`` finds
  them, possibly created by the first forward);
* a pair of functions ``(forward, backward)``: ``forward(x, *params[, config]) -> (out, cache)`` and
  ``backward(dout, cache) -> (dx, *dparams)`` (or dx alone), with ``params=[w, b]`` in the order
  ``forward`` takes them (named by its signature: ``affine_forward(x, w, b)`` → ``w``, ``b``) and
  ``config=`` the dict it takes last (a batch norm's ``mode``, ``eps``, ``momentum`` and running
  statistics, a dropout's ``p`` and ``mode``), handed a copy with ``mode="train"`` (an empty one when
  ``forward`` takes one more argument than ``params`` and none is given).

Losses: an object with ``forward(scores, targets)`` and ``backward()``; a pair ``(loss_fn, grad_fn)``; a
function ``loss(scores, targets) -> (loss, dscores)``.
"""

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from compare.errors import InputError

LAYER_FORMS = (
    "an object with forward(x) and backward(dout) -> dx; or (forward, backward) functions, "
    "forward(x, *params[, config]) -> (out, cache) and backward(dout, cache) -> (dx, *dparams), "
    "with params=[...] and config={...}"
)
LOSS_FORMS = (
    "an object with forward(scores, targets) and backward(); (loss_fn, grad_fn); or a function "
    "loss(scores, targets) -> (loss, dscores)"
)


def found(value: Any) -> str:
    """What the user handed, in a few words, for an error message."""
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(item).__name__ for item in value)})"
    names = ("forward", "backward", "update", "init", "step", "loss", "gradient", "backprop")
    methods = [name for name in names if callable(getattr(value, name, None))]
    name = type(value).__name__
    kind = "a function" if inspect.isroutine(value) else f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
    return f"{kind} with methods {', '.join(methods)}" if methods else kind


def _pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(callable(item) for item in value)


def param_names(forward: Callable, count: int) -> list[str]:
    """The names ``forward`` gives its parameters after x (``affine_forward(x, w, b)`` → ``w``, ``b``)."""
    try:
        names = list(inspect.signature(forward).parameters)[1 : 1 + count]
    except (TypeError, ValueError):  # a builtin or a callable object without a signature
        names = []
    return names if len(names) == count and len(set(names)) == count else [f"p{i}" for i in range(count)]


def positional_count(function: Callable, required: bool = False) -> int:
    """How many positional parameters ``function`` takes (``required``: without a default); -1 when it
    cannot say."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and not (required and p.default is not p.empty))


class FunctionalLayer:
    """A ``(forward, backward)`` pair as a layer object: ``params`` and ``grads`` dicts by the names
    ``forward`` gives them, the config dict as ``buffers`` (where the running statistics are kept)."""

    def __init__(self, forward: Callable, backward: Callable, params: Sequence, config: Mapping | None) -> None:
        self.forward_fn, self.backward_fn = forward, backward
        names = param_names(forward, len(params))
        self.params = {name: np.asarray(value) for name, value in zip(names, params, strict=True)}
        self.grads: dict[str, Any] = {}
        if config is None and positional_count(forward) == len(params) + 2:
            config = {}  # forward(x, *params, config): a config it was not given starts empty
        self.config = None if config is None else dict(config)
        if self.config is not None:
            self.config.setdefault("mode", "train")
        self.buffers = self.config if self.config is not None else {}
        self.cache: Any = None

    def forward(self, x: np.ndarray) -> Any:
        extra = [] if self.config is None else [self.config]
        result = self.forward_fn(x, *self.params.values(), *extra)
        out, self.cache = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        return out

    def backward(self, dout: np.ndarray) -> Any:
        result = self.backward_fn(dout, self.cache)
        if not isinstance(result, tuple):
            return result
        dx, *dparams = result
        self.grads = dict(zip(self.params, dparams, strict=False))
        return dx


def layer_of(layer: Any, params: Sequence | None, config: Mapping | None) -> Any:
    """The user's layer as an object with ``forward``/``backward``; ``InputError`` for an unknown form."""
    if _pair(layer):
        return FunctionalLayer(layer[0], layer[1], list(params or []), config)
    if callable(getattr(layer, "forward", None)) and callable(getattr(layer, "backward", None)):
        if params is not None:
            raise InputError("params= is for a (forward, backward) pair of functions; your layer keeps its own")
        return layer
    raise InputError(f"the layer is {found(layer)}; accepted: {LAYER_FORMS}")


def loss_form(loss: Any) -> str:
    """``pair``, ``object`` or ``function``; ``InputError`` for an unknown form."""
    if _pair(loss):
        return "pair"
    if callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None)):
        return "object"
    if callable(loss) and not isinstance(loss, tuple):
        return "function"
    raise InputError(f"the loss is {found(loss)}; accepted: {LOSS_FORMS}")
