"""RAdam, as torch.optim.RAdam computes it (rectified Adam; optional decoupled weight decay)."""

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, adam_moments, check_betas, check_nonnegative


@dataclass
class RAdam(Rule):
    r"""torch.optim.RAdam, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε, weight decay λ,
    and its own step counter t::

        t ← t + 1
        θ ← θ·(1 − γλ)          if decoupled_weight_decay      else   g ← g + λθ      decay
        m ← m + (1 − β1)·(g − m);   v ← β2·v + (1 − β2)·g²                          moments
        m̂ ← m / (1 − β1^t)
        ρ∞ ← 2/(1 − β2) − 1;   ρ_t ← ρ∞ − 2t·β2^t/(1 − β2^t)                        rho
        if ρ_t > 5:                                                                rectified
            r ← √((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t))                     rectification
            θ ← θ − γ·m̂ · √(1 − β2^t)/(√v + ε) · r                  (ε OUTSIDE the uncorrected root)
        else:
            θ ← θ − γ·m̂                                             (SGD with momentum: no v at all)

    Convention: the paper (Liu et al., Algorithm 2) switches to the adaptive step once ρ_t > 4;
    torch waits for ρ_t > 5 (``manual.optim.variants.RAdamPaperThreshold``), which with β2 = 0.999
    is one step later (ρ_5 ≈ 4.99, ρ_6 ≈ 5.98). The adaptive factor's ε is added to √v before the
    bias correction √(1 − β2^t) multiplies it in. State keys are torch's: ``step``, ``exp_avg``,
    ``exp_avg_sq``.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False

    every_branch: ClassVar[dict] = {"weight_decay": 0.01, "decoupled_weight_decay": True}
    threshold = 5.0  # ρ_t above which the adaptive step is taken (a class constant, not a torch keyword)
    branches_on_step: ClassVar[bool] = True  # the threshold is crossed at one step (t = 6 with β2 = 0.999)

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr", "eps", "weight_decay")
        self.betas = check_betas(self.betas)

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        s["step"] += 1
        t = s["step"]
        g = self.decay(param, g)
        self.moments(s, g)
        corrected = self.corrected_first_moment(s["exp_avg"], t)
        rho_t = self.rho(t)
        if rho_t > self.threshold:
            adaptive = math.sqrt(1.0 - self.betas[1] ** t) / (np.sqrt(s["exp_avg_sq"]) + self.eps)
            param -= corrected * self.lr * adaptive * self.rectification(rho_t)
        else:
            param -= corrected * self.lr

    def moments(self, s: PerParameter, g: np.ndarray) -> None:
        adam_moments(s, g, self.betas)

    def corrected_first_moment(self, exp_avg: np.ndarray, t: int) -> np.ndarray:
        return exp_avg / (1.0 - self.betas[0] ** t)

    def rho_inf(self) -> float:
        return 2.0 / (1.0 - self.betas[1]) - 1.0

    def rho(self, t: int) -> float:
        beta2 = self.betas[1]
        return self.rho_inf() - 2.0 * t * beta2**t / (1.0 - beta2**t)

    def rectification(self, rho_t: float) -> float:
        rho_inf = self.rho_inf()
        return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
