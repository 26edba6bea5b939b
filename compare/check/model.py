"""A user's whole network as a side of the lockstep engine (``compare.core.side``), and ``check_model``.

Accepted models:

* the textbook protocol: an object with ``params`` (a dict of arrays), ``loss(x, t)`` and
  ``gradient(x, t)`` → a dict of gradients keyed as ``params``;
* a function ``(params, x, y) -> (loss, grads)`` with the starting ``params`` given to ``check_model``.

When the object also exposes its layers in order (``layers``: a list or an ordered dict of objects with
``forward``/``backward``; ``last_layer`` or ``lastLayer``: the loss layer with ``forward(scores, t)`` and
``backward()``), and the torch twin is an ``nn.Sequential`` with as many modules, every layer's output
and dL/d(output) is compared too, so the first departing layer is named (``<i>.out``, torch's index).

Parameters are matched to the torch twin's by ``compare.check.mapping`` (``W1``, ``b1``, ... by
textbook name, transposed from (in, out) where they are stored so); tensors are reported under torch's
names (``0.weight``), and the report's notes show the mapping used.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import compare.check.guard as guard
from compare.check.mapping import Link
from compare.check.optimizer import UserOptimizer
from compare.core.side import Pass, Tensors


def ordered_layers(model: Any) -> list[Any] | None:
    layers = getattr(model, "layers", None)
    if isinstance(layers, Mapping):
        layers = list(layers.values())
    if not isinstance(layers, list) or not all(hasattr(layer, "backward") for layer in layers):
        return None
    return layers


def last_layer(model: Any) -> Any:
    return getattr(model, "last_layer", None) or getattr(model, "lastLayer", None)


class Recorder:
    """Wraps the exposed layers' ``forward``/``backward`` (on the checker's copy of the model) to keep a
    copy of each output and of each dL/d(output) as the user's own code computes them."""

    def __init__(self, layers: list[Any], loss_layer: Any) -> None:
        self.outputs: dict[str, np.ndarray] = {}
        self.output_grads: dict[str, np.ndarray] = {}
        self.loss: Any = None
        self.input: np.ndarray | None = None  # what the first layer received (the diagnosis replays from it)
        self.targets: Any = None  # what the loss layer received
        for i, layer in enumerate(layers):
            layer.forward = self._forward(f"{i}.out", layer.forward)
            layer.backward = self._backward(f"{i}.out", layer.backward)
        if loss_layer is not None and callable(getattr(loss_layer, "forward", None)):
            loss_layer.forward = self._loss(loss_layer.forward)

    def clear(self) -> None:
        self.outputs, self.output_grads, self.loss, self.input, self.targets = {}, {}, None, None, None

    def _forward(self, name: str, forward: Callable) -> Callable:
        def recorded(*args, **kwargs):
            if name == "0.out" and args:
                self.input = guard.as_array(args[0])
            out = forward(*args, **kwargs)
            self.outputs[name] = guard.as_array(out)
            return out

        return recorded

    def _backward(self, name: str, backward: Callable) -> Callable:
        def recorded(dout, *args, **kwargs):
            self.output_grads[name] = guard.as_array(dout)  # before the layer may write into it
            return backward(dout, *args, **kwargs)

        return recorded

    def _loss(self, forward: Callable) -> Callable:
        def recorded(*args, **kwargs):
            self.targets = guard.as_array(args[1]) if len(args) > 1 else None
            self.loss = forward(*args, **kwargs)
            return self.loss

        return recorded


class UserModelSide:
    """The user's model and optimizer, seen by the engine under torch's names and layout.

    ``per_layer``: compare every layer's output and dL/d(output) (the model exposes matching layers)."""

    def __init__(
        self,
        model: Any,
        params: dict[str, np.ndarray],
        links: Mapping[str, Link],
        optimizer: UserOptimizer,
        schedule: Any = None,
        per_layer: bool = False,
        function: Callable | None = None,
        reference_buffers: Callable[[], Tensors] = dict,
        reference_lr: Callable[[], float] = lambda: float("nan"),
    ) -> None:
        self.model = model
        self.params = params  # the user's live dict (the optimizer updates it)
        self.links = dict(links)
        self.optimizer = optimizer
        self.schedule = schedule
        self.per_layer = per_layer
        self.function = function
        self.reference_buffers = reference_buffers
        self.reference_lr = reference_lr
        # The user's optimizer receives the user's own gradient arrays, the compared ones are copies of them,
        # so nothing writes to the compared ones: the engine may compare them while the optimizer steps.
        self.leaves_grads = True
        self.step = 0
        self.recorder = Recorder(ordered_layers(model) if per_layer else [], last_layer(model))
        self._grads: dict[str, np.ndarray] = {}
        self._user_grads: dict[str, Any] = {}
        self.kept_buffers: dict[str, Any] = {}

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> Pass:
        """One forward and backward of the user's own code; the layers' outputs and dL/d(output) are
        recorded as the user's ``gradient`` calls them (no second pass: running statistics move once)."""
        self.step += 1
        self.recorder.clear()
        if self.function is not None:
            call = (self.function, guard.fresh(self.params), guard.fresh(x), guard.fresh(y))
            loss, grads = guard.call(self.step, "loss", "model(params, x, y)", *call)
        else:
            grads = guard.call(self.step, "grad", "gradient(x, t)", self.model.gradient, guard.fresh(x), guard.fresh(y))
            loss = self.recorder.loss
            if loss is None:
                loss = guard.call(self.step, "loss", "loss(x, t)", self.model.loss, guard.fresh(x), guard.fresh(y))
        self._user_grads = dict(grads)  # the user's own arrays, for the user's optimizer
        self._grads = {  # compared: copies; a list (or other non-array) where a gradient is due is a finding
            name: None if value is None else guard.returned(value, self.step, "grad", f"grads[{name!r}]")
            for name, value in self._user_grads.items()
        }
        outputs = dict(self.recorder.outputs) if self.per_layer else None
        output_grads = dict(self.recorder.output_grads) if self.per_layer else None
        self.kept_buffers = _layer_buffers(ordered_layers(self.model) or []) if self.per_layer else {}
        return Pass(np.float64(guard.as_array(loss)), self.grads(), outputs, output_grads)

    def clip(self, max_norm: float) -> float:
        raise NotImplementedError("check_model does not clip")

    def lr(self) -> float:
        """The user's lr; torch's when the user's optimizer has no ``lr`` attribute (then not compared)."""
        lr = self.optimizer.lr()
        return self.reference_lr() if lr is None else lr

    def update(self) -> None:
        user_grads = {link.user: self._user_grads.get(link.user) for link in self.links.values()}
        grads = {name: np.asarray(g) for name, g in user_grads.items() if g is not None}
        self.optimizer.step(self.step, grads, copy=False)

    def end_step(self) -> None:
        if self.schedule is not None:
            self.schedule.step()

    def state(self) -> None:
        return None  # optimizer state is checked by check_optimizer, where the user maps it

    def buffers(self) -> Tensors:
        """The running statistics the user's layers keep; for a torch buffer they do not keep
        (``num_batches_tracked``, say) torch's own value, so that it is not compared (the report says so)."""
        mirrored = {name: value for name, value in self.reference_buffers().items() if name not in self.kept_buffers}
        return {**mirrored, **self.kept_buffers}

    def parameters(self) -> Tensors:
        return {name: link.to_torch(np.asarray(self.params[link.user])) for name, link in self.links.items()}

    def grads(self) -> Tensors:
        found = {}
        for name, link in self.links.items():
            value = self._grads.get(link.user)
            if value is not None:
                found[name] = link.to_torch(value)
        return found

    def eval_outputs(self, x: np.ndarray) -> None:
        return None

    def predict(self, X: np.ndarray) -> np.ndarray:
        predict = getattr(self.model, "predict", None)
        if predict is None:
            return np.full((len(X), 1), np.nan)
        return guard.as_array(guard.call(self.step, "eval", "predict(X)", predict, guard.fresh(X)))

    def loss_value(self, prediction: np.ndarray, y: np.ndarray) -> float:
        return float("nan")


def _layer_buffers(layers: list[Any]) -> dict[str, Any]:
    """Running statistics of the exposed layers, under torch's ``<i>.running_mean`` names."""
    found = {}
    for i, layer in enumerate(layers):
        for key in ("running_mean", "running_var"):
            value = getattr(layer, key, None)
            if value is not None:
                found[f"{i}.{key}"] = guard.as_array(value)
    return found
