"""Adamax, as torch.optim.Adamax computes it (Adam with the infinity norm; ε inside the max)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_betas, check_nonnegative


@dataclass
class Adamax(Rule):
    r"""torch.optim.Adamax, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε, weight decay λ,
    and its own step counter t::

        t ← t + 1
        g ← g + λθ                               (if λ ≠ 0; coupled L2)           coupled_decay
        m ← m + (1 − β1)·(g − m)                 (torch: m.lerp_(g, 1 − β1))      first_moment
        u ← max(β2·u, |g| + ε)                   (ε added to |g| INSIDE the max)  infinity_norm
        θ ← θ − (γ / (1 − β1^t)) · m / u                                   step_size, denominator

    Convention: the paper (Kingma & Ba, Algorithm 2) has no ε, u ← max(β2·u, |g|); Keras adds ε
    outside, m/(u + ε). torch's ε inside the max floors u at ε from the first step, so u never is 0.
    Only the first moment is bias-corrected: u needs none. State keys are torch's: ``step``,
    ``exp_avg`` (m), ``exp_inf`` (u).
    """

    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    every_branch: ClassVar[dict] = {"betas": (0.8, 0.99), "weight_decay": 0.01}

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr", "eps", "weight_decay")
        self.betas = check_betas(self.betas)

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "exp_avg": np.zeros_like(param), "exp_inf": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        s["step"] += 1
        g = self.coupled_decay(param, g)
        self.first_moment(s["exp_avg"], g)
        self.infinity_norm(s["exp_inf"], g)
        param -= self.step_size(s["step"]) * (s["exp_avg"] / self.denominator(s["exp_inf"]))  # addcdiv_(m, u, −clr)

    def first_moment(self, exp_avg: np.ndarray, g: np.ndarray) -> None:
        exp_avg += (1.0 - self.betas[0]) * (g - exp_avg)

    def infinity_norm(self, exp_inf: np.ndarray, g: np.ndarray) -> None:
        exp_inf *= self.betas[1]
        np.maximum(exp_inf, np.abs(g) + self.eps, out=exp_inf)

    def denominator(self, exp_inf: np.ndarray) -> np.ndarray:
        """u itself: torch's ε is already inside it."""
        return exp_inf

    def step_size(self, t: int) -> float:
        """γ / (1 − β1^t): the first moment's bias correction folded into the lr."""
        return self.lr / (1.0 - self.betas[0] ** t)
