"""NAdam, as torch.optim.NAdam computes it (Dozat's momentum schedule; optional decoupled weight decay)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, adam_moments, check_betas, check_nonnegative, scalar


@dataclass
class NAdam(Rule):
    r"""torch.optim.NAdam, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε, weight decay λ,
    momentum decay ψ, and its own step counter t::

        t ← t + 1
        θ ← θ·(1 − γλ)          if decoupled_weight_decay      else   g ← g + λθ      decay
        μ_t ← β1·(1 − ½·0.96^(t·ψ));   μ_{t+1} ← β1·(1 − ½·0.96^((t+1)·ψ))         momentum
        Π ← Π·μ_t                     (mu_product, a float32 scalar, starts at 1)
        m ← m + (1 − β1)·(g − m)                                                  moments
        v ← β2·v + (1 − β2)·g²
        denom ← √(v / (1 − β2^t)) + ε                                             denominator
        θ ← θ − γ·(1 − μ_t)/(1 − Π) · g/denom − γ·μ_{t+1}/(1 − Π·μ_{t+1}) · m/denom   apply

    Convention: Dozat's paper and Keras use the same schedule with ψ = 0.004; many hand-written
    versions keep μ constant (μ_t = β1, Π = β1^t: ``manual.optim.variants.NAdamNoMomentumSchedule``).
    m is bias-corrected through the μ products, not by 1 − β1^t; note that ψ = 0 does not give a
    constant β1 but μ = β1/2. torch keeps Π in float32 whatever the parameters' dtype (see
    ``manual.optim.rule.SCALAR_DTYPE``). State keys are torch's: ``step``, ``mu_product``, ``exp_avg``,
    ``exp_avg_sq``.
    """

    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum_decay: float = 4e-3
    decoupled_weight_decay: bool = False

    every_branch: ClassVar[dict] = {"weight_decay": 0.01, "decoupled_weight_decay": True, "momentum_decay": 0.01}

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr", "eps", "weight_decay", "momentum_decay")
        self.betas = check_betas(self.betas)

    def init_one(self, param: np.ndarray) -> PerParameter:
        zeros = np.zeros_like
        return {"step": 0, "mu_product": scalar(1.0), "exp_avg": zeros(param), "exp_avg_sq": zeros(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        if s["step"] == 0:
            s["mu_product"] = scalar(1.0)  # torch makes it at step 1 in float32, even in a copy cast to float64
        s["step"] += 1
        t = s["step"]
        g = self.decay(param, g)
        mu, mu_next = self.momenta(t)
        s["mu_product"] *= mu  # in the 0-d float32 array, as torch's mu_product *= mu
        self.moments(s, g)
        denom = self.denominator(s["exp_avg_sq"], t)
        mu_product = float(s["mu_product"])
        param -= self.lr * (1.0 - mu) / (1.0 - mu_product) * (g / denom)
        param -= self.lr * mu_next / (1.0 - mu_product * mu_next) * (s["exp_avg"] / denom)

    def momenta(self, t: int) -> tuple[float, float]:
        """(μ_t, μ_{t+1}): this step's momentum and the next one's, which weighs m."""
        return self.momentum(t), self.momentum(t + 1)

    def momentum(self, t: int) -> float:
        """μ_t = β1·(1 − ½·0.96^(t·ψ))."""
        return self.betas[0] * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def moments(self, s: PerParameter, g: np.ndarray) -> None:
        adam_moments(s, g, self.betas)

    def denominator(self, exp_avg_sq: np.ndarray, t: int) -> np.ndarray:
        return np.sqrt(exp_avg_sq / (1.0 - self.betas[1] ** t)) + self.eps
