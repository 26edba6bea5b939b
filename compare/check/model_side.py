"""A user's whole network as a side of the lockstep engine (``compare.core.side``), and ``check_model``.

Accepted models:

* the textbook protocol: an object with ``params`` (a dict of arrays), ``loss(x, t)`` and
  ``gradient(x, t)`` → a dict of gradients keyed as ``params``;
* a function ``(params, x, y) -> (loss, grads)`` with the starting ``params`` given to ``check_model``.

When the object also exposes its layers in order (``layers``: a list or an ordered dict of objects with
``forward``/``backward``; ``last_layer`` or ``lastLayer``: the loss layer with ``forward(scores, t)`` and
``backward()``), and the torch twin is an ``nn.Sequential`` with as many modules, every layer's output
and dL/d(output) is compared too, so the first departing layer is named (``<i>.out``, torch's index).

Parameters are matched to the torch twin's by ``compare.check.forms.mapping`` (``W1``, ``b1``, ... by
textbook name, transposed from (in, out) where they are stored so); tensors are reported under torch's
names (``0.weight``), and the report's notes show the mapping used.
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

import compare.check.sandbox.guard as guard
from compare.check.check_layer import kept_units
from compare.check.check_optimizer import UserOptimizer
from compare.check.diagnosis import initial_values
from compare.check.forms.mapping import Link
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
        self.masks: dict[int, np.ndarray] = {}  # the dropout layers' draws, by layer index
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


HISTORY_STEPS = 5  # steps of gradients and parameters kept for the optimizer's diagnosis


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
        reference_starts: Mapping[str, tuple[np.ndarray, float, str]] | None = None,
        dtype: str = "float64",
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
        self.dropout: list[int] = []  # the layers whose masks torch applies (check_model sets them)
        self.late = _late_buffers(ordered_layers(model) or []) if per_layer else set()
        self.taken: list[str] = []  # the late ones torch took after step 1
        # torch's running statistics before step 1 (``initial_values.torch_starts``): a late one's start is told
        self.reference_starts = dict(reference_starts or {})
        self.dtype = dtype
        self.late_notes: dict[str, str] = {}  # per late statistic: its start, a convention when not torch's
        self.batch: tuple[np.ndarray, np.ndarray] | None = None  # step 1's, as torch received it (the diagnosis's)
        self.loss: Any = None  # this step's, as the user's code returned it
        # The first steps' gradients, parameters after the update and lr, in torch's names (the diagnosis
        # replays the optimizer's known mistakes on them): a few steps only, a large network's copies add up.
        self.history: list[tuple[dict, dict, float | None]] = []

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> Pass:
        """One forward and backward of the user's own code; the layers' outputs and dL/d(output) are
        recorded as the user's ``gradient`` calls them (no second pass: running statistics move once)."""
        self.step += 1
        self.recorder.clear()
        if self.step == 1:  # only step 1's failures are replayed on their batch
            self.batch = (np.array(x, copy=True), np.array(y, copy=True))
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
        masks = self._masks(x) if self.dropout else {}
        self.recorder.masks = masks  # the diagnosis replays a dropout layer with the user's draw
        self.loss = guard.as_array(loss)
        return Pass(np.float64(self.loss), self.grads(), outputs, output_grads, masks)

    def _masks(self, x: np.ndarray) -> dict[int, np.ndarray]:
        """The units each dropout layer of the user's kept, which torch's dropout then applies."""
        layers, outputs = ordered_layers(self.model) or [], self.recorder.outputs
        masks = {}
        for i in self.dropout:
            x_i = self.recorder.input if i == 0 else outputs.get(f"{i - 1}.out")
            if x_i is not None:
                masks[i] = kept_units(layers[i], x_i, outputs.get(f"{i}.out"))
        return masks

    def clip(self, max_norm: float) -> float:
        raise NotImplementedError("check_model does not clip")

    def lr(self) -> float:
        """The user's lr; torch's when the user's optimizer has no ``lr`` attribute (then not compared)."""
        lr = self.optimizer.lr()
        return self.reference_lr() if lr is None else lr

    def update(self) -> None:
        user_grads = {link.user: self._user_grads.get(link.user) for link in self.links.values()}
        grads = {name: np.asarray(g) for name, g in user_grads.items() if g is not None}
        kept = self.step <= HISTORY_STEPS  # the diagnosis's history: the first steps only
        lr, compared = (self.optimizer.lr(), self.grads()) if kept else (None, None)
        self.optimizer.step(self.step, grads, copy=False)
        if kept:
            self.history.append((compared, {k: np.array(v) for k, v in self.parameters().items()}, lr))

    def end_step(self) -> None:
        if self.step == 1:
            self._take_late_buffers()
        if self.schedule is not None:
            self.schedule.step()

    def _take_late_buffers(self) -> None:
        """Running statistics the user's layers created on the first step (``None`` before it): their start is
        told from their value (``initial_values``: a convention when it is not torch's), torch takes their
        values after step 1, and their update is compared from step 2 on."""
        reference = self.reference_buffers()
        for name in sorted(self.late & set(self.kept_buffers)):
            tensor = reference.get(name)
            value = np.asarray(self.kept_buffers[name])
            if tensor is not None and value.shape == tuple(tensor.shape):
                self.late_notes[name] = self._late_note(name, value, tensor.detach().cpu().numpy())
                with torch.no_grad():
                    tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))
                self.taken.append(name)

    def _late_note(self, name: str, value: np.ndarray, after: np.ndarray) -> str:
        """What the user's value of ``name`` after step 1 says of its start (torch's value ``after`` it)."""
        if name not in self.reference_starts:
            return f"your {name} did not exist before the first step: torch took it after it"
        start, keep, torch_name = self.reference_starts[name]
        found = initial_values.start_of(value, after, start, keep, self.dtype)
        if found is None:
            return initial_values.undetermined_note(name)
        prefix, _, key = name.rpartition(".")
        where = f"twin[{prefix}].{key}" if prefix.isdigit() else f"twin.{name}"
        named = initial_values.convention_note(name, found, start, torch_name, where)
        return named or initial_values.torch_like_note(name)

    def state(self) -> None:
        return None  # optimizer state is checked by check_optimizer, where the user maps it

    def buffers(self) -> Tensors:
        """The running statistics the user's layers keep; for a torch buffer they do not keep
        (``num_batches_tracked``, say) torch's own value, so that it is not compared (the report says so)."""
        kept = {k: v for k, v in self.kept_buffers.items() if not (self.step == 1 and k in self.late)}
        mirrored = {name: value for name, value in self.reference_buffers().items() if name not in kept}
        return {**mirrored, **kept}

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


def _late_buffers(layers: list[Any]) -> set[str]:
    """The running statistics a layer will create on its first forward (the attribute is ``None`` now)."""
    return {
        f"{i}.{key}" for i, layer in enumerate(layers) for key in ("running_mean", "running_var")
        if hasattr(layer, key) and getattr(layer, key) is None
    }  # fmt: skip


def _layer_buffers(layers: list[Any]) -> dict[str, Any]:
    """Running statistics of the exposed layers, under torch's ``<i>.running_mean`` names."""
    found = {}
    for i, layer in enumerate(layers):
        for key in ("running_mean", "running_var"):
            value = getattr(layer, key, None)
            if value is not None:
                found[f"{i}.{key}"] = guard.as_array(value)
    return found
