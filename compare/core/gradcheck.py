"""The third witness: central finite differences of the manual loss, for a sample of parameter
elements, so that when the twins disagree on a gradient a user can tell which side is wrong.

For an element θ_i: g_i ≈ (L(θ + h·e_i) − L(θ − h·e_i)) / 2h, with the same batch, the same
dropout masks and BatchNorm in training mode (each evaluation runs on a copy of the model taken
before the step, so nothing leaks into the run). float64 only: in float32 the rounding of L
(~1e-7·|L|/h) swamps the derivative.
"""

import copy
from dataclasses import dataclass

import numpy as np

from manual.mlp import MLP

STEP = 1e-6  # h: truncation O(h²) ≈ 1e-12 and rounding O(eps·|L|/h) ≈ 1e-10, both far below a wrong rule
PER_PARAMETER = 3  # the element with the largest |gradient|, and two drawn at random


@dataclass(frozen=True)
class Witness:
    step: int
    param: str
    index: tuple[int, ...]
    manual: float
    torch: float
    numeric: float

    @property
    def sides_with(self) -> str:
        """Which side finite differences agree with: "manual", "torch" or "both" (within FD accuracy)."""
        error_manual, error_torch = abs(self.manual - self.numeric), abs(self.torch - self.numeric)
        accuracy = 1e-6 * max(abs(self.numeric), abs(self.torch), abs(self.manual), 1e-12)
        if error_manual <= accuracy and error_torch <= accuracy:
            return "both"
        return "manual" if error_manual < error_torch else "torch"

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "param": self.param,
            "index": list(self.index),
            "manual": self.manual,
            "torch": self.torch,
            "numeric": self.numeric,
            "sides_with": self.sides_with,
        }


def loss_at(model: MLP, x: np.ndarray, y: np.ndarray, name: str, index: tuple[int, ...], shift: float) -> float:
    trial = copy.deepcopy(model)  # its own dropout generator state, so it draws the run's very masks
    trial.named_parameters()[name][index] += shift
    return trial.loss.forward(trial.forward(x)[-1], y)


def witnesses(
    step: int,
    before: MLP,
    x: np.ndarray,
    y: np.ndarray,
    manual_grads: dict[str, np.ndarray],
    torch_grads: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> list[Witness]:
    """Finite differences on ``before`` (the manual model as it was when the step began)."""
    found = []
    for name, reference in torch_grads.items():
        flat = [int(np.argmax(np.abs(reference)))]
        flat += [int(i) for i in rng.choice(reference.size, size=min(PER_PARAMETER - 1, reference.size), replace=False)]
        for position in dict.fromkeys(flat):  # unique, in order
            index = tuple(int(i) for i in np.unravel_index(position, reference.shape))
            numeric = (loss_at(before, x, y, name, index, STEP) - loss_at(before, x, y, name, index, -STEP)) / (
                2 * STEP
            )
            manual = float(manual_grads[name][index]) if manual_grads[name].shape == reference.shape else float("nan")
            found.append(Witness(step, name, index, manual, float(reference[index]), numeric))
    return found


def summary(found: list[Witness]) -> str:
    """One line: whom finite differences side with, and so which gradient is wrong."""
    if not found:
        return "gradcheck: nothing checked"
    counts = {side: sum(w.sides_with == side for w in found) for side in ("both", "manual", "torch")}
    steps = sorted({w.step for w in found})
    head = f"gradcheck (finite differences, {len(found)} elements, step {', '.join(map(str, steps))}): "
    if counts["both"] == len(found):
        return head + "agree with both sides"
    if counts["torch"] >= counts["manual"]:
        return (
            head
            + f"side with torch on {counts['torch']}, with manual on {counts['manual']}: the manual gradient is wrong"
        )
    return head + f"side with manual on {counts['manual']}, with torch on {counts['torch']}: check the torch twin"
