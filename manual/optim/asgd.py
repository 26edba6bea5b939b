"""ASGD, as torch.optim.ASGD computes it (SGD with a decaying step, weight shrinkage and a running average)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_nonnegative, scalar


@dataclass
class ASGD(Rule):
    r"""torch.optim.ASGD, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, decay term λ_d (``lambd``), power α,
    averaging start t0, weight decay λ, and its own step counter t::

        t ← t + 1
        g ← g + λθ                               (if λ ≠ 0; coupled L2)            coupled_decay
        θ ← θ·(1 − λ_d·η)                        (η from the PREVIOUS step)        shrink
        θ ← θ − η·g
        ā ← θ  if μ = 1  else  ā + μ·(θ − ā)     (μ from the previous step)         average
        η ← γ / (1 + λ_d·γ·t)^α                  (for the NEXT step)               schedule
        μ ← 1 / max(1, t − t0)

    η starts at γ (read at the first step) and μ at 1, so the average ā (``ax``) is a copy of θ until
    t exceeds t0 + 1 (a million steps by default): the average never feeds back into θ.

    Convention: Polyak–Juditsky and Bottou's ASGD use η_t = γ/(1 + λ_d·γ·t)^α at step t itself
    (``manual.optim.variants.ASGDStepFromCurrentT``); torch computes η at the end of a step for the
    next one, so step t uses the η of t − 1 and step 1 runs at γ. η and μ are float32 scalars whatever
    the parameters' dtype (``manual.optim.rule.SCALAR_DTYPE``); an lr schedule reaches η one step late.
    State keys are torch's: ``step``, ``eta``, ``mu``, ``ax``.
    """

    lr: float = 1e-2
    lambd: float = 1e-4
    alpha: float = 0.75
    t0: float = 1e6
    weight_decay: float = 0.0

    every_branch: ClassVar[dict] = {"lambd": 0.01, "t0": 3.0, "weight_decay": 0.01}  # averaging from step 5
    branches_on_step: ClassVar[bool] = True  # the average starts following θ after step t0

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr", "weight_decay")  # torch checks nothing else

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "eta": scalar(self.lr), "mu": scalar(1.0), "ax": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        if s["step"] == 0:  # torch creates both at the first step, in float32, eta from the lr after any schedule
            s["eta"], s["mu"] = scalar(self.lr), scalar(1.0)
        s["step"] += 1
        g = self.coupled_decay(param, g)
        eta = self.step_eta(s)
        self.shrink(param, eta)
        param -= eta * g
        self.average(s["ax"], param, s["mu"])
        self.schedule(s, s["step"])

    def step_eta(self, s: PerParameter) -> float:
        """The η this step uses: the one the previous step scheduled (γ at step 1)."""
        return float(s["eta"])

    def shrink(self, param: np.ndarray, eta: float) -> None:
        param *= 1.0 - self.lambd * eta

    def average(self, ax: np.ndarray, param: np.ndarray, mu: np.ndarray) -> None:
        if float(mu) != 1:
            ax += (param - ax) * mu.astype(param.dtype)
        else:
            ax[...] = param

    def schedule(self, s: PerParameter, t: int) -> None:
        """η and μ for the next step, each through float32: torch builds them with ``torch.as_tensor(float)``,
        in the default dtype, before copying them into the state (float64 only in the float64 witness)."""
        s["eta"][...] = scalar(self.lr / ((1 + self.lambd * self.lr * t) ** self.alpha))
        s["mu"][...] = scalar(1 / max(1, t - self.t0))
