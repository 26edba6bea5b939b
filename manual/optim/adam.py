"""Adam, as torch.optim.Adam computes it (coupled L2 weight decay, optional AMSGrad)."""

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_betas, check_nonnegative


@dataclass
class Adam(Rule):
    r"""torch.optim.Adam, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε,
    weight decay λ, and its own step counter t::

        t ← t + 1                                                                 count
        g ← g + λθ                               (if λ ≠ 0; coupled L2, this is not AdamW)     decay
        m ← m + (1 − β1)·(g − m)                 (torch: m.lerp_(g, 1 − β1) = β1·m + (1 − β1)·g)  first_moment
        v ← β2·v + (1 − β2)·g²                                                    second_moment
        v_max ← max(v_max, v)                    (amsgrad only; v_max replaces v below)
        denom ← √v / √(1 − β2^t) + ε             (ε OUTSIDE the bias-corrected root)   denominator
        θ ← θ − (γ / (1 − β1^t)) · m / denom                                      step_size

    Convention: the paper's efficient "ε-hat" form, γ_t = γ·√(1 − β2^t)/(1 − β1^t) and
    θ ← θ − γ_t·m/(√v + ε), is a different optimizer numerically; so is ε inside the root.
    Step counters are per parameter, as in torch.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False

    every_branch: ClassVar[dict] = {"betas": (0.8, 0.99), "weight_decay": 0.01, "amsgrad": True}

    def __post_init__(self) -> None:
        self._scratch: dict[tuple, np.ndarray] = {}  # not a field: hyperparameters() and replace() ignore it
        check_nonnegative(self, "lr", "eps")
        self.betas = check_betas(self.betas)
        check_nonnegative(self, "weight_decay")

    def init_one(self, param: np.ndarray) -> PerParameter:
        s = {"step": 0, "exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
        if self.amsgrad:
            s["max_exp_avg_sq"] = np.zeros_like(param)
        return s

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        t = self.count(s)
        g = self.decay(param, g)
        # Each piece evaluates its formula in place in one scratch array (the same operations in the same
        # order as the expressions they spell out, without the temporaries).
        scratch = self._scratch_like(param)
        self.first_moment(s["exp_avg"], g, scratch)
        self.second_moment(s["exp_avg_sq"], g, scratch)
        if self.amsgrad:
            np.maximum(s["max_exp_avg_sq"], s["exp_avg_sq"], out=s["max_exp_avg_sq"])
        denom = self.denominator(s["max_exp_avg_sq"] if self.amsgrad else s["exp_avg_sq"], t, scratch)
        update = np.divide(s["exp_avg"], denom, out=scratch)  # m / denom
        update *= self.step_size(t)
        param -= update  # torch: addcdiv_(m, denom, value=−γ/(1 − β1^t))

    def count(self, s: PerParameter) -> int:
        """This parameter's own step counter, bumped: t."""
        s["step"] += 1
        return s["step"]

    def first_moment(self, exp_avg: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> None:
        exp_avg += np.multiply(np.subtract(g, exp_avg, out=scratch), 1.0 - self.betas[0], out=scratch)

    def second_moment(self, exp_avg_sq: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> None:
        exp_avg_sq *= self.betas[1]
        exp_avg_sq += np.multiply(np.multiply(g, 1.0 - self.betas[1], out=scratch), g, out=scratch)  # (1 − β2)·g·g

    def denominator(self, second_moment: np.ndarray, t: int, scratch: np.ndarray) -> np.ndarray:
        """√v / √(1 − β2^t) + ε, in ``scratch``."""
        denom = np.sqrt(second_moment, out=scratch)
        denom /= math.sqrt(1.0 - self.betas[1] ** t)
        denom += self.eps
        return denom

    def step_size(self, t: int) -> float:
        """γ / (1 − β1^t): the first moment's bias correction folded into the lr."""
        return self.lr / (1.0 - self.betas[0] ** t)

    def __getstate__(self) -> dict:
        """What a copy or a pickle holds: everything but the scratch arrays (work space: nothing carries over
        between steps, so a copy, the engine's rewind copy before every step, starts with none)."""
        return {**self.__dict__, "_scratch": {}}

    def _scratch_like(self, param: np.ndarray) -> np.ndarray:
        """A work array of ``param``'s shape and dtype, kept between steps (not state: nothing carries over)."""
        key = (param.shape, param.dtype)
        scratch = self._scratch.get(key)
        if scratch is None:
            scratch = self._scratch[key] = np.empty_like(param)
        return scratch
