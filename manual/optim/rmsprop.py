"""RMSprop, as torch.optim.RMSprop computes it (ε outside the root; optional momentum and centering)."""

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

Params = dict[str, np.ndarray]
State = dict[str, dict[str, np.ndarray | int]]


@dataclass
class RMSprop:
    r"""torch.optim.RMSprop, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, smoothing constant α, eps ε,
    weight decay λ, momentum μ, and its own step counter t::

        t ← t + 1                                (counted, but no bias correction uses it)
        g ← g + λθ                               (if λ ≠ 0; coupled L2)
        v ← α·v + (1 − α)·g²                     (torch: v.mul_(α).addcmul_(g, g, value=1 − α))
        if centered:
            ḡ ← ḡ + (1 − α)·(g − ḡ)              (torch: ḡ.lerp_(g, 1 − α))
            avg ← √(v − ḡ²)                      (torch: v.addcmul(ḡ, ḡ, value=−1).sqrt_())
        else:
            avg ← √v
        avg ← avg + ε                            (ε OUTSIDE the root)
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
        for name in ("lr", "eps", "momentum", "weight_decay", "alpha"):
            value = getattr(self, name)
            if not 0.0 <= value:
                raise ValueError(f"invalid {name} value: {value}")

    def hyperparameters(self) -> dict:
        """The torch keyword arguments that build the same optimizer."""
        return asdict(self)

    def init(self, params: Params) -> State:
        state: State = {}
        for name, param in params.items():
            state[name] = {"step": 0, "square_avg": np.zeros_like(param)}
            if self.momentum > 0:
                state[name]["momentum_buffer"] = np.zeros_like(param)
            if self.centered:
                state[name]["grad_avg"] = np.zeros_like(param)
        return state

    def step(self, params: Params, grads: Params, state: State) -> None:
        alpha = self.alpha
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            g = grads[name]
            if self.weight_decay != 0:
                g = g + self.weight_decay * param
            square_avg = s["square_avg"]
            square_avg *= alpha
            square_avg += (1.0 - alpha) * g * g
            if self.centered:
                grad_avg = s["grad_avg"]
                grad_avg += (1.0 - alpha) * (g - grad_avg)
                avg = np.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = np.sqrt(square_avg)
            avg += self.eps
            if self.momentum > 0:
                buf = s["momentum_buffer"]
                buf *= self.momentum
                buf += g / avg  # torch: buf.addcdiv_(g, avg)
                param -= self.lr * buf
            else:
                param -= self.lr * (g / avg)  # torch: param.addcdiv_(g, avg, value=-γ)
