"""Adam, as torch.optim.Adam computes it (coupled L2 weight decay, optional AMSGrad)."""

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

Params = dict[str, np.ndarray]
State = dict[str, dict[str, np.ndarray | int]]


@dataclass
class Adam:
    r"""torch.optim.Adam, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε,
    weight decay λ, and its own step counter t::

        t ← t + 1
        g ← g + λθ                               (if λ ≠ 0; coupled L2, this is not AdamW)
        m ← m + (1 − β1)·(g − m)                 (torch: m.lerp_(g, 1 − β1) = β1·m + (1 − β1)·g)
        v ← β2·v + (1 − β2)·g²
        v_max ← max(v_max, v)                    (amsgrad only; v_max replaces v below)
        denom ← √v / √(1 − β2^t) + ε             (ε OUTSIDE the bias-corrected root)
        θ ← θ − (γ / (1 − β1^t)) · m / denom

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
        self._scratch: dict[str, np.ndarray] = {}  # not a field: hyperparameters() and replace() ignore it
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if not 0.0 <= self.lr:  # written as torch writes it, so that NaN is rejected too
            raise ValueError(f"invalid learning rate: {self.lr}")
        if not 0.0 <= self.eps:
            raise ValueError(f"invalid epsilon value: {self.eps}")
        for index, beta in enumerate(self.betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {index}: {beta}")
        if not 0.0 <= self.weight_decay:
            raise ValueError(f"invalid weight_decay value: {self.weight_decay}")

    def hyperparameters(self) -> dict:
        """The torch keyword arguments that build the same optimizer."""
        return asdict(self)

    def init(self, params: Params) -> State:
        state: State = {}
        for name, param in params.items():
            state[name] = {"step": 0, "exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
            if self.amsgrad:
                state[name]["max_exp_avg_sq"] = np.zeros_like(param)
        return state

    def step(self, params: Params, grads: Params, state: State) -> None:
        beta1, beta2 = self.betas
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            t = s["step"]
            g = grads[name]
            if self.weight_decay != 0:
                g = g + self.weight_decay * param
            exp_avg, exp_avg_sq = s["exp_avg"], s["exp_avg_sq"]
            # The formulas of the docstring, each evaluated in place in one scratch array (the same
            # operations in the same order as the expressions they spell out, without the temporaries).
            scratch = self._scratch_like(name, param)
            exp_avg += np.multiply(np.subtract(g, exp_avg, out=scratch), 1.0 - beta1, out=scratch)
            exp_avg_sq *= beta2
            exp_avg_sq += np.multiply(np.multiply(g, 1.0 - beta2, out=scratch), g, out=scratch)  # (1 − β2)·g·g
            if self.amsgrad:
                np.maximum(s["max_exp_avg_sq"], exp_avg_sq, out=s["max_exp_avg_sq"])
                second_moment = s["max_exp_avg_sq"]
            else:
                second_moment = exp_avg_sq
            bias_correction1 = 1.0 - beta1**t
            bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
            denom = np.sqrt(second_moment, out=scratch)
            denom /= bias_correction2_sqrt
            denom += self.eps
            update = np.divide(exp_avg, denom, out=scratch)  # m / denom
            update *= self.lr / bias_correction1
            param -= update  # torch: addcdiv_(m, denom, value=-γ/(1-β1^t))

    def _scratch_like(self, name: str, param: np.ndarray) -> np.ndarray:
        """A work array of ``param``'s shape, kept between steps (not optimizer state: nothing carries over)."""
        scratch = self._scratch.get(name)
        if scratch is None or scratch.shape != param.shape or scratch.dtype != param.dtype:
            scratch = self._scratch[name] = np.empty_like(param)
        return scratch
