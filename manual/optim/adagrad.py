"""Adagrad, as torch.optim.Adagrad computes it (decaying lr, optional initial accumulator)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_nonnegative


@dataclass
class Adagrad(Rule):
    r"""torch.optim.Adagrad, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, lr decay η, weight decay λ,
    eps ε, initial accumulator value s₀, and its own step counter t::

        t ← t + 1
        g ← g + λθ                               (if λ ≠ 0; coupled L2)
        clr ← γ / (1 + (t − 1)·η)                (the decay uses t − 1: step 1 runs at γ itself)   decayed_lr
        s ← s + g²                               (s starts at s₀, not 0)
        θ ← θ − clr · g / (√s + ε)               (ε OUTSIDE the root)

    Convention: Duchi et al. and many textbooks write ε inside the root, g/√(s + ε), and have no
    lr decay; Keras starts the accumulator at 0.1, torch at 0. torch creates this state when the
    optimizer is built, not at the first step, so ``step`` is 0 and ``sum`` is s₀ before any update.
    """

    lr: float = 1e-2
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10

    every_branch: ClassVar[dict] = {"lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01}

    def __post_init__(self) -> None:
        # written as torch writes them (`not 0.0 <= x`), so that NaN is rejected too
        check_nonnegative(self, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "sum": np.full_like(param, self.initial_accumulator_value)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        s["step"] += 1
        g = self.coupled_decay(param, g)
        clr = self.decayed_lr(s["step"])
        s["sum"] += g * g  # torch: sum.addcmul_(g, g, value=1)
        std = np.sqrt(s["sum"]) + self.eps
        param -= clr * (g / std)  # torch: param.addcdiv_(g, std, value=-clr)

    def decayed_lr(self, t: int) -> float:
        """γ / (1 + (t − 1)·η)."""
        return self.lr / (1 + (t - 1) * self.lr_decay)
