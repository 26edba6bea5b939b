"""Stochastic gradient descent, with torch's momentum, dampening and Nesterov options."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule


@dataclass
class SGD(Rule):
    r"""torch.optim.SGD, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, momentum μ, dampening τ,
    weight decay λ::

        g ← g + λθ                      (if λ ≠ 0; L2 added to the gradient)         coupled_decay
        if μ ≠ 0:                                                                    direction
            b ← g                       (first step: a copy of g, dampening NOT applied)
            b ← μ·b + (1 − τ)·g         (every later step)
            g ← g + μ·b   if nesterov   else   g ← b
        θ ← θ − γ·g                                                                  apply

    Convention: the lecture notes (and deep-learning-from-scratch) write momentum as
    v ← μv − γg; θ ← θ + v. That folds γ into the buffer, so it equals torch's rule only
    while γ is constant. State: ``momentum_buffer`` is ``None`` until the first step, as
    in torch.
    """

    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    every_branch: ClassVar[dict] = {"weight_decay": 0.01}  # see manual.optim.rule.Rule.every_branch

    def __post_init__(self) -> None:
        if self.lr < 0.0:
            raise ValueError(f"invalid learning rate: {self.lr}")
        if self.momentum < 0.0:
            raise ValueError(f"invalid momentum value: {self.momentum}")
        if self.weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay value: {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov momentum requires a momentum and zero dampening")

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {} if self.momentum == 0 else {"momentum_buffer": None}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        g = self.coupled_decay(param, g)
        direction = self.direction(g, s) if self.momentum != 0 else g
        self.apply(param, direction)

    def direction(self, g: np.ndarray, s: PerParameter) -> np.ndarray:
        """The momentum buffer's step: b (or g + μ·b with Nesterov), the buffer updated in place."""
        buf = s["momentum_buffer"]
        if buf is None:
            buf = s["momentum_buffer"] = g.copy()
        else:
            buf *= self.momentum
            buf += (1.0 - self.dampening) * g
        return g + self.momentum * buf if self.nesterov else buf

    def apply(self, param: np.ndarray, direction: np.ndarray) -> None:
        param -= self.lr * direction


@dataclass
class Momentum(SGD):
    """SGD with momentum μ = 0.9 by default: torch.optim.SGD(momentum=0.9); same rule as :class:`SGD`."""

    momentum: float = 0.9

    every_branch: ClassVar[dict] = {"momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}


@dataclass
class Nesterov(Momentum):
    """SGD with Nesterov momentum, μ = 0.9: torch.optim.SGD(momentum=0.9, nesterov=True); the rule is :class:`SGD`'s."""

    nesterov: bool = True

    every_branch: ClassVar[dict] = {"momentum": 0.8, "weight_decay": 0.01}
