"""Adadelta, as torch.optim.Adadelta computes it (Zeiler's unit-corrected step, times an lr)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_nonnegative


@dataclass
class Adadelta(Rule):
    r"""torch.optim.Adadelta, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, decay ρ, eps ε, weight decay λ, and its
    own step counter t::

        t ← t + 1                                (counted; nothing reads it)
        g ← g + λθ                               (if λ ≠ 0; coupled L2)            coupled_decay
        v ← ρ·v + (1 − ρ)·g²                                                      square_average
        Δ ← √(u + ε) / √(v + ε) · g              (u from the PREVIOUS step)        delta
        u ← ρ·u + (1 − ρ)·Δ²                                                      accumulate_delta
        θ ← θ − γ·Δ

    Convention: Zeiler's paper has no lr (γ = 1, torch's default); its ε sits inside both roots, as
    here. The ratio √(u + ε)/√(v + ε) is the "unit correction" that gives Δ the units of θ; without it
    the rule is RMSprop with ε inside the root (``manual.optim.variants.AdadeltaNoUnitCorrection``).
    At step 1 u = 0, so the first step is γ·√ε/√(v + ε)·g: about √ε = 1e-3 times an RMSprop step.
    State keys are torch's: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    lr: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0

    every_branch: ClassVar[dict] = {"rho": 0.95, "weight_decay": 0.01}

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr", "eps", "weight_decay")
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"invalid rho value: {self.rho}")

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "square_avg": np.zeros_like(param), "acc_delta": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        s["step"] += 1
        g = self.coupled_decay(param, g)
        self.square_average(s["square_avg"], g)
        delta = self.delta(s, g)
        self.accumulate_delta(s["acc_delta"], delta)
        param -= self.lr * delta

    def square_average(self, square_avg: np.ndarray, g: np.ndarray) -> None:
        square_avg *= self.rho
        square_avg += (1.0 - self.rho) * g * g

    def delta(self, s: PerParameter, g: np.ndarray) -> np.ndarray:
        std = np.sqrt(s["square_avg"] + self.eps)
        return np.sqrt(s["acc_delta"] + self.eps) / std * g

    def accumulate_delta(self, acc_delta: np.ndarray, delta: np.ndarray) -> None:
        acc_delta *= self.rho
        acc_delta += (1.0 - self.rho) * delta * delta
