"""The package's hand-written MLP and optimizer as a side of the engine (``compare.core.side``).

This is the one place in ``compare.core`` that knows ``manual.MLP``: its layers, its dropout masks,
its buffers and its optimizer's explicit state.
"""

import copy
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from compare.core.side import Pass, Tensors, by_layer
from manual.clip import clip_grad_norm
from manual.layers import Dropout
from manual.mlp import MLP
from manual.optim import OPTIMIZERS

# Rules known never to write to a gradient in their step, so the gradients may be compared on a second
# thread meanwhile (a rule under test might write to them).
RULES_THAT_LEAVE_GRADS = frozenset(OPTIMIZERS.values())


class ManualSide:
    """``model`` trained by ``optimizer`` (explicit ``init``/``step`` state), with an optional schedule.

    ``clip``: the clipping function (``manual.clip.clip_grad_norm`` unless a fault replaces it);
    ``state_keys``: the state keys to compare (a textbook rule's own extra state has no torch counterpart).
    """

    def __init__(
        self,
        model: MLP,
        optimizer: Any,
        schedule: Any = None,
        clip: Callable[[dict[str, np.ndarray], float], float] = clip_grad_norm,
        state_keys: frozenset[str] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.optimizer_state = optimizer.init(model.named_parameters())
        self.schedule = schedule
        self._clip = clip
        self.state_keys = state_keys
        self.leaves_grads = type(optimizer) in RULES_THAT_LEAVE_GRADS
        self.refereed = True  # grads() and state() are the live arrays: compare.core.decisions may hand it inputs
        self.mode_dependent = model.spec.mode_dependent

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> Pass:
        model = self.model.train()
        outs = model.forward(x)
        loss = model.loss.forward(outs[-1], y)
        douts = model.backward(model.loss.backward())
        return Pass(
            loss=np.float64(loss),
            grads=model.named_grads(),
            outputs=by_layer(outs),
            output_grads=by_layer(douts),
            masks={i: layer.mask for i, layer in enumerate(model.layers) if isinstance(layer, Dropout)},
        )

    def clip(self, max_norm: float) -> float:
        return float(self._clip(self.model.named_grads(), max_norm))

    def lr(self) -> float:
        return float(self.optimizer.lr)

    def update(self) -> None:
        self.optimizer.step(self.model.named_parameters(), self.model.named_grads(), self.optimizer_state)

    def end_step(self) -> None:
        if self.schedule is not None:
            self.schedule.step()

    def state(self) -> dict[str, dict[str, Any]]:
        return self.optimizer_state

    def buffers(self) -> Tensors:
        """Running statistics as arrays; the integer counter as an int (compared exactly)."""
        return {
            name: buffer.item() if buffer.dtype.kind == "i" else buffer
            for name, buffer in self.model.named_buffers().items()
        }

    def parameters(self) -> Tensors:
        return self.model.named_parameters()

    def grads(self) -> Tensors:
        return self.model.named_grads()

    def eval_outputs(self, x: np.ndarray) -> Tensors:
        try:
            outs = self.model.eval().forward(x)
        finally:
            self.model.train()
        return by_layer(outs)

    def predict(self, X: np.ndarray) -> np.ndarray:
        try:
            return self.model.eval().forward(X)[-1]
        finally:
            self.model.train()

    def loss_value(self, prediction: np.ndarray, y: np.ndarray) -> float:
        return float(self.model.loss.forward(prediction, y))

    def snapshot(self) -> MLP:
        """A copy of the model as it is now (the finite-difference witness evaluates the loss on it)."""
        return copy.deepcopy(self.model)

    def clone(self) -> "ManualSide":
        """An independent copy of the whole side (model, optimizer and its state, schedule, dropout RNG):
        adjudication runs a step on it without touching this one."""
        return copy.deepcopy(self)

    def clone_for_rewind(self, values: Collection[str], state: Mapping[str, Mapping[str, Any]]) -> "ManualSide":
        """``clone()`` for ``compare.core.rewind``, whose copy is used only after ``load(values, state)`` with
        the same names and state entries: the arrays ``load`` writes in place (the parameters and buffers named
        in ``values``, each state entry that ``state`` holds an array for) are given uninitialised arrays of
        their shape. All else is copied: the schedule, the dropout generator, a rule's own counters, state torch
        lacks, and the gradients and forward caches too (a side that adds each step's gradients to the last
        step's, a missing ``zero_grad``, must repeat that from the kept ones)."""
        live = {**self.model.named_parameters(), **self.model.named_buffers()}
        written = [live[name] for name in values if isinstance(live.get(name), np.ndarray)]
        for name, entries in self.optimizer_state.items():
            given = state.get(name, {})
            written += [
                entry
                for key, entry in entries.items()
                if isinstance(entry, np.ndarray) and _written_in_place(entry, given.get(key))
            ]
        return copy.deepcopy(self, {id(array): np.empty_like(array) for array in written})

    def with_dtype(self, dtype: type) -> "ManualSide":
        """A copy of the side whose every array (parameters, buffers, optimizer state) is cast to
        ``dtype``: the float64 witness of a float32 run computes the same step in it."""
        side = self.clone()
        for layer in side.model.layers:
            layer.params = {key: value.astype(dtype) for key, value in layer.params.items()}
            layer.buffers = {
                key: value.astype(dtype) if value.dtype.kind == "f" else value for key, value in layer.buffers.items()
            }
            layer.grads = {}
        for entries in side.optimizer_state.values():
            for key, value in entries.items():
                if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    entries[key] = value.astype(dtype)
        return side

    def load(self, values: Mapping[str, np.ndarray], state: Mapping[str, Mapping[str, Any]]) -> None:
        """Another side's parameters, buffers and optimizer state into this side's own arrays (copied)."""
        live = {**self.model.named_parameters(), **self.model.named_buffers()}
        for name, value in values.items():
            live[name][...] = value
        for name, entries in self.optimizer_state.items():
            for key, value in state[name].items():
                if key not in entries or value is None:
                    continue
                if _written_in_place(entries[key], value):
                    entries[key][...] = value
                else:
                    entries[key] = value if isinstance(value, int) else np.array(value, copy=True)


def _written_in_place(entry: Any, value: Any) -> bool:
    """``load`` writes torch's ``value`` into the state ``entry`` in place (an int value or a ``None`` entry is
    replaced, a ``None`` value skipped)."""
    return entry is not None and value is not None and not isinstance(value, int)
