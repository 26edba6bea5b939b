"""RMSprop, as torch.optim.RMSprop computes it (ε outside the root; optional momentum and centering)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_nonnegative


@dataclass
class RMSprop(Rule):
    r"""torch.optim.RMSprop, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, smoothing constant α, eps ε,
    weight decay λ, momentum μ, and its own step counter t::

        t ← t + 1                                (counted, but no bias correction uses it)
        g ← g + λθ                               (if λ ≠ 0; coupled L2)            coupled_decay
        v ← α·v + (1 − α)·g²                     (torch: v.mul_(α).addcmul_(g, g, value=1 − α))   averages
        if centered:
            ḡ ← ḡ + (1 − α)·(g − ḡ)              (torch: ḡ.lerp_(g, 1 − α))
            avg ← √(v − ḡ²)                      (torch: v.addcmul(ḡ, ḡ, value=−1).sqrt_())   denominator
        else:
            avg ← √v
        avg ← avg + ε                            (ε OUTSIDE the root)               root
        if μ > 0:  b ← μ·b + g/avg;  θ ← θ − γ·b
        else:      θ ← θ − γ·g/avg

    Convention: TensorFlow/Keras (and Hinton's slides as often transcribed) put ε inside the
    root, g/√(v + ε); see ``manual.optim.variants.RMSpropEpsInside``. With momentum, torch's
    buffer holds g/avg without γ, so an lr change applies to the whole buffer at once. State
    keys are torch's: ``step``, ``square_avg``, ``momentum_buffer`` (only when μ > 0, zeros, not
    a copy of the first update), ``grad_avg`` (only when centered).
    """

    lr: float = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False

    every_branch: ClassVar[dict] = {"alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}

    def __post_init__(self) -> None:
        # written as torch writes them (`not 0.0 <= x`), so that NaN is rejected too; torch accepts α > 1
        check_nonnegative(self, "lr", "eps", "momentum", "weight_decay", "alpha")

    def init_one(self, param: np.ndarray) -> PerParameter:
        s = {"step": 0, "square_avg": np.zeros_like(param)}
        if self.momentum > 0:
            s["momentum_buffer"] = np.zeros_like(param)
        if self.centered:
            s["grad_avg"] = np.zeros_like(param)
        return s

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        s["step"] += 1
        g = self.coupled_decay(param, g)
        self.averages(s, g)
        avg = self.denominator(s)
        if self.momentum > 0:
            buf = s["momentum_buffer"]
            buf *= self.momentum
            buf += g / avg  # torch: buf.addcdiv_(g, avg)
            param -= self.lr * buf
        else:
            param -= self.lr * (g / avg)  # torch: param.addcdiv_(g, avg, value=-γ)

    def averages(self, s: PerParameter, g: np.ndarray) -> None:
        """v, and ḡ when centered."""
        s["square_avg"] *= self.alpha
        s["square_avg"] += (1.0 - self.alpha) * g * g
        if self.centered:
            s["grad_avg"] += (1.0 - self.alpha) * (g - s["grad_avg"])

    def denominator(self, s: PerParameter) -> np.ndarray:
        """√(v − ḡ²) + ε when centered, else √v + ε."""
        return self.root(s["square_avg"] - s["grad_avg"] * s["grad_avg"] if self.centered else s["square_avg"])

    def root(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt(x) + self.eps  # ε OUTSIDE the root
