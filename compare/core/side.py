"""The one protocol between the engine and a side.

A side is a network with its optimizer, advanced one step at a time: the hand-written one under test
(``compare.core.manual_side`` wraps the package's MLP; any object with these methods will do) and the
torch reference (``compare.core.torch_side``, in one process or data-parallel); the JAX + optax twin
(``compare.core.jax_side``) takes either place, as the reference where torch does not run (it reports the
same floors) or as the side under test against torch (``--sides``). Every name is torch's
``state_dict`` name (``0.weight``, ``2.bias``) and every layer output is ``<i>.out``, so the engine
compares like with like without knowing what network it holds.

Per step the engine asks a side, in the order a step computes them (``compare.core.stages``):

1. ``train_pass(x, y, masks)`` → ``Pass``: forward and backward in training mode: named layer outputs
   (optional: ``None`` when the side cannot expose them), the loss, named dL/d(output) (optional), named
   parameter gradients, and the dropout masks it drew (the manual side's masks are handed to the
   reference's ``train_pass``, which applies them instead of drawing its own);
2. ``clip(max_norm)`` (only when the engine clips): the gradients scaled in place, the total norm returned;
3. ``lr()`` then ``update()``: the learning rate this step uses, then the optimizer's step;
4. ``state()``: optimizer state after the update, ``{param: {torch state key: value}}``, or ``None`` when
   the side does not expose it (then it is not compared); ``buffers()`` and ``parameters()``;
5. ``eval_outputs(x)`` (models whose output depends on the mode): layer outputs in evaluation mode;
6. ``end_step()``: the learning-rate schedule's step.

``predict(X)`` and ``loss_value(prediction, y)`` serve held-out evaluation (``compare.core.evaluate``).

Optional, on the side under test (``Adjudicable``): ``clone()``, an independent copy of the side, and
``load(values, state)``, another side's parameters and buffers (``{name: array}``) and optimizer state
(``{param: {key: value}}``) copied into this one. With both, a departure of a free-running step is
adjudicated (``compare.core.adjudication``) and ``--resync`` works; without them, every departure fails.
With ``with_dtype(dtype)`` too (a copy whose every array is cast), a float32 run is witnessed in float64
(``compare.core.witness64``); without it, it is not.

Any exception a side raises is a finding, not a crash (``compare.core.raising``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Tensors = dict[str, Any]  # name → NumPy array (or, on the reference side, torch tensor)


def by_layer(values: Sequence[Any]) -> Tensors:
    """Each layer's value (its output, dL/d(output)) under its name, ``<i>.out``, in forward order."""
    return {f"{i}.out": value for i, value in enumerate(values)}


@dataclass
class Pass:
    """One forward and backward on a batch, in training mode."""

    loss: Any
    grads: Tensors  # parameter name → dL/dθ
    outputs: Tensors | None = None  # "<i>.out" → layer output, in forward order
    output_grads: Tensors | None = None  # "<i>.out" → dL/d(that output)
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # dropout masks drawn, by layer index


class Side(Protocol):
    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]) -> Pass: ...

    def clip(self, max_norm: float) -> float: ...

    def lr(self) -> float: ...

    def update(self) -> None: ...

    def end_step(self) -> None: ...

    def state(self) -> dict[str, dict[str, Any]] | None: ...

    def buffers(self) -> Tensors: ...

    def parameters(self) -> Tensors: ...

    def grads(self) -> Tensors: ...

    def eval_outputs(self, x: np.ndarray) -> Tensors | None: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def loss_value(self, prediction: np.ndarray, y: np.ndarray) -> float: ...


class Adjudicable(Side, Protocol):
    """A side the engine can copy and load torch's values into (drift adjudication, resync)."""

    def clone(self) -> "Adjudicable": ...

    def load(self, values: Mapping[str, np.ndarray], state: Mapping[str, Mapping[str, Any]]) -> None: ...

    def with_dtype(self, dtype: type) -> "Adjudicable": ...
