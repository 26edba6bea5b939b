"""Rprop, as torch.optim.Rprop computes it (iRprop−: sign-based steps, the gradient dropped on a sign change)."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from manual.optim.rule import PerParameter, Rule, check_nonnegative


@dataclass
class Rprop(Rule):
    r"""torch.optim.Rprop, single-tensor path.

    For each parameter θ with gradient g, learning rate γ, etas (η−, η+), step sizes (Δmin, Δmax),
    the previous step's (kept) gradient p, each element's step size Δ, and its own step counter t::

        t ← t + 1
        f ← η+ where g·p > 0,  η− where g·p < 0,  1 where g·p = 0                factors
        Δ ← clamp(Δ·f, Δmin, Δmax)
        g ← 0 where g·p < 0                      (the sign change: no step, and p forgets it)  kept_gradient
        θ ← θ − sign(g)·Δ
        p ← g

    Δ starts at γ, read once at the first step: the lr is not read again, so an lr schedule has no
    effect on Rprop (torch's behaviour too). p starts at 0, so step 1 moves every element by ±γ.

    Parity: Δ follows the sign of g·p and θ the sign of g, discontinuous functions. Where an element's
    exact gradient is 0 (a BatchNorm β behind a unit in one regime over the whole batch, a saturated tanh in
    float32), each side's g is rounding noise, the two sides may decide differently, and that element's Δ
    parts by η+/η− (θ by 2Δ) rather than by a rounding-sized error, so no tolerance could excuse it and none
    is widened. ``branch_values`` names those decisions: where the two sides' inputs to them are equal up
    to rounding and their signs still differ, the checker hands this rule torch's inputs for that element
    and counts it (``compare.core.decisions``). A wrong rule shows at the first step with a nonzero g·p
    (``rprop-etas-swapped``: step 2).

    Convention: this is Igel & Hüsken's iRprop− (no weight backtracking). Riedmiller & Braun's
    Rprop− keeps the gradient on a sign change (``manual.optim.variants.RpropNoGradientDrop``); Rprop+
    also undoes the previous step there. No weight decay option exists. State keys are torch's:
    ``step``, ``prev`` (p), ``step_size`` (Δ).
    """

    lr: float = 1e-2
    etas: tuple[float, float] = (0.5, 1.2)
    step_sizes: tuple[float, float] = (1e-6, 50.0)

    every_branch: ClassVar[dict] = {"etas": (0.4, 1.3), "step_sizes": (1e-4, 0.05)}  # Δmax reached in ~10 steps
    branch_state: ClassVar[tuple[str, ...]] = ("prev",)

    @staticmethod
    def branch_values(g: np.ndarray, s: PerParameter) -> tuple[np.ndarray, ...]:
        """sign(g) moves θ by ±Δ; sign(g·p) picks η+, η− or 1 (and drops g on a sign change)."""
        return g, g * s["prev"]

    def __post_init__(self) -> None:
        check_nonnegative(self, "lr")
        self.etas = (float(self.etas[0]), float(self.etas[1]))
        self.step_sizes = (float(self.step_sizes[0]), float(self.step_sizes[1]))
        if not 0.0 < self.etas[0] < 1.0 < self.etas[1]:
            raise ValueError(f"invalid eta values: {self.etas[0]}, {self.etas[1]}")

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"step": 0, "prev": np.zeros_like(param), "step_size": np.full_like(param, self.lr)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        if s["step"] == 0:
            s["step_size"][...] = self.lr  # torch creates it from the lr at the first step, after any schedule
        s["step"] += 1
        agreement = np.sign(g * s["prev"])
        s["step_size"] *= self.factors(agreement)
        np.clip(s["step_size"], *self.step_sizes, out=s["step_size"])
        g = self.kept_gradient(g, agreement)
        param -= np.sign(g) * s["step_size"]
        s["prev"][...] = g

    def factors(self, agreement: np.ndarray) -> np.ndarray:
        """η+ where the sign held, η− where it flipped, 1 where either gradient is 0."""
        etaminus, etaplus = self.etas
        return np.where(agreement > 0, etaplus, np.where(agreement < 0, etaminus, 1.0)).astype(agreement.dtype)

    def kept_gradient(self, g: np.ndarray, agreement: np.ndarray) -> np.ndarray:
        return np.where(agreement < 0, 0.0, g).astype(g.dtype)
