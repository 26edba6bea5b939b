"""Textbook optimizer rules that are NOT torch's, kept under their own names to show where they diverge.

Each variant is built from the same kwargs as the torch optimizer it is compared against (its
``hyperparameters()`` builds that twin) and is validated exactly as that torch optimizer validates
them: each subclasses that rule and overrides the one piece it changes (never the step loop).
``comparable_state`` (a class attribute, ``frozenset[str]``) names the state keys that mean the
same quantity as a torch state key; a checker compares only those. Regular optimizers have no such
attribute: all of their state is torch's.
"""

import math
from dataclasses import dataclass

import numpy as np

from manual.optim.adadelta import Adadelta
from manual.optim.adam import Adam
from manual.optim.adamax import Adamax
from manual.optim.asgd import ASGD
from manual.optim.nadam import NAdam
from manual.optim.radam import RAdam
from manual.optim.rmsprop import RMSprop
from manual.optim.rprop import Rprop
from manual.optim.rule import PerParameter, Rule
from manual.optim.sgd import SGD


@dataclass
class ClassicMomentum(Rule):
    r"""Momentum as the lecture notes (and deep-learning-from-scratch) write it; NOT torch.optim.SGD.

    For each parameter θ with gradient g, learning rate γ, momentum μ, weight decay λ::

        g ← g + λθ                      (if λ ≠ 0)
        v ← μ·v − γ·g                   (v starts at 0)
        θ ← θ + v

    torch keeps b ← μ·b + g and steps θ ← θ − γ·b. Unrolled, v = −γ·b while γ is constant, so
    the two agree (to rounding); once γ changes, v still carries the old γ in its history while
    torch rescales the whole buffer by the new γ, and the trajectories part. State ``velocity``
    has no torch counterpart (it is −γ·b, not b). It takes SGD's keywords but dampening and Nesterov,
    which the textbook form has no place for (so it is not a subclass of :class:`SGD`).
    """

    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0

    comparable_state = frozenset()

    def __post_init__(self) -> None:
        SGD(**self.hyperparameters())  # validated as torch.optim.SGD validates these kwargs

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"velocity": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        g = self.coupled_decay(param, g)
        velocity = s["velocity"]
        velocity *= self.momentum
        velocity -= self.lr * g
        param += velocity


@dataclass
class NesterovUpdatedVelocity(Rule):
    r"""Nesterov momentum in Bengio et al.'s form with the velocity taken after its update, as
    deep-learning-from-scratch writes it; NOT torch.optim.SGD(nesterov=True).

    For each parameter θ with gradient g, learning rate γ, momentum μ, weight decay λ::

        g ← g + λθ                      (if λ ≠ 0)
        v ← μ·v − γ·g                   (v starts at 0)
        θ ← θ + μ²·v − (1 + μ)·γ·g      (v as just updated)

    Bengio et al. (arXiv 1212.0901) add μ²·v with the velocity from before this step's update; with
    v = −γ·b that is torch's b ← μ·b + g, θ ← θ − γ·(g + μ·b), while γ is constant. Taking v after its
    update adds μ²·(v_t − v_{t−1}): at step 1 the step is (1 + μ + μ²)·γ·g against torch's (1 + μ)·γ·g
    (1.43× for μ = 0.9), and the two agree again only where the velocity has stopped changing (a constant
    gradient). State ``velocity`` has no torch counterpart (it is −γ·b, not b). It takes SGD's keywords but
    dampening, which the textbook form has no place for; ``nesterov`` is always on (it builds the twin).
    """

    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = True

    comparable_state = frozenset()

    def __post_init__(self) -> None:
        SGD(**self.hyperparameters())  # validated as torch.optim.SGD validates these kwargs
        if not self.nesterov:
            raise ValueError("NesterovUpdatedVelocity is a Nesterov rule: nesterov must be True")

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"velocity": np.zeros_like(param)}

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        g = self.coupled_decay(param, g)
        velocity = s["velocity"]
        velocity *= self.momentum
        velocity -= self.lr * g
        param += self.momentum * self.momentum * velocity
        param -= (1 + self.momentum) * self.lr * g


@dataclass
class AdamEpsHat(Adam):
    r"""Adam in the paper's "efficient" form (Kingma & Ba, §2, ε-hat); NOT torch.optim.Adam.

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε, weight decay λ,
    and its own step counter t::

        t ← t + 1
        g ← g + λθ                               (if λ ≠ 0; coupled L2, as torch's Adam)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        γ_t ← γ·√(1 − β2^t) / (1 − β1^t)                                 step_size
        θ ← θ − γ_t · m / (√v + ε)               (ε added to the UNcorrected root)   denominator

    torch divides by √v/√(1 − β2^t) + ε. Rewritten, this form is torch's rule with ε replaced by
    ε/√(1 − β2^t): about 32·ε at step 1 for β2 = 0.999, shrinking to ε as t grows. ``step``,
    ``exp_avg`` and ``exp_avg_sq`` are the same quantities as torch's and keep its names.
    """

    comparable_state = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def denominator(self, second_moment: np.ndarray, t: int, scratch: np.ndarray) -> np.ndarray:
        return np.add(np.sqrt(second_moment, out=scratch), self.eps, out=scratch)

    def step_size(self, t: int) -> float:
        return self.lr * math.sqrt(1.0 - self.betas[1] ** t) / (1.0 - self.betas[0] ** t)


@dataclass
class RMSpropEpsInside(RMSprop):
    r"""RMSprop with ε inside the root, as TensorFlow/Keras compute it; NOT torch.optim.RMSprop.

    torch's rule (:class:`~manual.optim.rmsprop.RMSprop`) with one piece changed::

        avg ← √(v − ḡ² + ε) if centered, else √(v + ε)       (ε INSIDE the root; torch: √v + ε)   root

    The floor on the denominator is √ε (1e-4 for ε = 1e-8) instead of ε, so the two rules part
    wherever v is not far above ε: small gradients and the first steps. Every state key is the same
    quantity as torch's and keeps its name.
    """

    comparable_state = frozenset({"step", "square_avg", "momentum_buffer", "grad_avg"})

    def root(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt(x + self.eps)


@dataclass
class AdamaxEpsOutside(Adamax):
    r"""Adamax as Keras writes it, u ← max(β2·u, |g|) and θ ← θ − γ_t·m/(u + ε); NOT torch.optim.Adamax.

    torch puts ε inside the max, u ← max(β2·u, |g| + ε), so its u is never below ε and carries ε in its
    history; here u is the paper's and ε is added only to the divisor. The two agree where |g| ≫ ε;
    ``exp_inf`` is a different quantity (no ε in it) and is not compared.
    """

    comparable_state = frozenset({"step", "exp_avg"})

    def infinity_norm(self, exp_inf: np.ndarray, g: np.ndarray) -> None:
        exp_inf *= self.betas[1]
        np.maximum(exp_inf, np.abs(g), out=exp_inf)

    def denominator(self, exp_inf: np.ndarray) -> np.ndarray:
        return exp_inf + self.eps


@dataclass
class NAdamNoMomentumSchedule(NAdam):
    r"""NAdam with a constant momentum μ_t = β1 (Dozat's simplified form, common in hand-written code);
    NOT torch.optim.NAdam.

    Then Π = β1^t and the update is θ ← θ − γ·[(1 − β1)/(1 − β1^t)·g + β1/(1 − β1^(t+1))·m]/denom. torch's
    schedule μ_t = β1·(1 − ½·0.96^(tψ)) starts near β1/2 (0.45 at step 1 for β1 = 0.9) and reaches β1 only
    after thousands of steps, so the two part from step 1. ``mu_product`` is β1^t here: not compared.
    """

    comparable_state = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def momentum(self, t: int) -> float:
        return self.betas[0]


@dataclass
class RAdamPaperThreshold(RAdam):
    r"""RAdam with the paper's threshold (Liu et al., Algorithm 2: adaptive once ρ_t > 4); NOT torch.optim.RAdam.

    torch takes the adaptive step once ρ_t > 5. With β2 = 0.999, ρ_5 ≈ 4.99, so the paper's rule takes
    its first rectified step at t = 5 and torch's at t = 6: identical for four steps, then apart. Every
    state key is the same quantity as torch's.
    """

    comparable_state = frozenset({"step", "exp_avg", "exp_avg_sq"})
    threshold = 4.0


@dataclass
class AdadeltaNoUnitCorrection(Adadelta):
    r"""Adadelta without the unit correction: Δ ← g/√(v + ε), the numerator √(u + ε) left out; NOT
    torch.optim.Adadelta.

    That is RMSprop with ε inside the root and Adadelta's ρ: Zeiler's starting point, before the ratio of
    RMS[Δθ] to RMS[g] that gives Δ the units of θ. At step 1 torch's numerator is √ε (1e-3 for ε = 1e-6),
    so this steps 1000 times further. ``acc_delta`` then accumulates other deltas: not compared.
    """

    comparable_state = frozenset({"step", "square_avg"})

    def delta(self, s: PerParameter, g: np.ndarray) -> np.ndarray:
        return g / np.sqrt(s["square_avg"] + self.eps)


@dataclass
class ASGDStepFromCurrentT(ASGD):
    r"""ASGD with η_t = γ/(1 + λ_d·γ·t)^α at step t itself (Polyak–Juditsky, Bottou); NOT torch.optim.ASGD.

    torch schedules η at the end of step t − 1, so step 1 runs at γ and step t at η_{t−1}. Here step 1
    runs at γ/(1 + λ_d·γ)^α, already smaller (by α·λ_d·γ ≈ 7.5e-7 relative at the defaults), and every
    later step one decay further. The stored ``eta`` (for the next step) is torch's, as are the others.
    """

    comparable_state = frozenset({"step", "eta", "mu", "ax"})

    def step_eta(self, s: PerParameter) -> float:
        return self.lr / ((1 + self.lambd * self.lr * s["step"]) ** self.alpha)


@dataclass
class RpropNoGradientDrop(Rprop):
    r"""Rprop− (Riedmiller & Braun): the gradient kept on a sign change; NOT torch.optim.Rprop (iRprop−).

    torch zeroes g where g·p < 0: that element takes no step, and since p ← 0 its next step size is not
    shrunk again. Rprop− steps against the new sign at once with the shrunk Δ and remembers the sign, so
    it can shrink twice in a row. Identical while no sign flips (step 1 always, usually step 2). ``prev``
    holds the kept gradient: not compared.
    """

    comparable_state = frozenset({"step", "step_size"})

    def kept_gradient(self, g: np.ndarray, agreement: np.ndarray) -> np.ndarray:
        return g


@dataclass(frozen=True)
class Variant:
    """A textbook rule, the torch optimizer (a key of ``OPTIMIZERS``) it is compared against, why it departs, and
    what to change in the user's code to write torch's rule instead (``fix``, one line)."""

    optimizer: type
    torch_name: str
    cause: str
    fix: str


VARIANTS: dict[str, Variant] = {
    "classic_momentum": Variant(
        ClassicMomentum,
        "momentum",
        "classic momentum folds the lr into the velocity (v ← μv − γg), so it equals torch's rule "
        "(b ← μb + g; θ ← θ − γb) only while the lr is constant and departs after any lr change",
        "keep b ← μb + g and apply θ ← θ − γ·b, or pass the twin the same constant lr",
    ),
    "nesterov_updated_velocity": Variant(
        NesterovUpdatedVelocity,
        "nesterov",
        "Bengio et al.'s form θ ← θ + μ²v − (1 + μ)γg with v taken after its update v ← μv − γg, where the "
        "form (torch's rule while the lr is constant) takes the v from before it: the step at step 1 is "
        "(1 + μ + μ²)γg, not (1 + μ)γg, so it departs from step 1",
        "add μ²·v with the velocity from before this step's update (keep it, then v ← μv − γg), or write "
        "torch's b ← μb + g; θ −= γ·(g + μ·b)",
    ),
    "adam_eps_hat": Variant(
        AdamEpsHat,
        "adam",
        "the paper's ε-hat form adds ε to the uncorrected √v, which is torch's Adam with ε/√(1 − β2^t) "
        "(~32ε at step 1 for β2 = 0.999), so it departs wherever ε is not negligible against √v: "
        "early steps and small gradients",
        "ε outside the corrected root: θ −= lr·m̂ / (√v̂ + ε) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), "
        "not lr_t·m / (√v + ε) with lr_t = lr·√(1 − β2^t)/(1 − β1^t)",
    ),
    "rmsprop_eps_inside": Variant(
        RMSpropEpsInside,
        "rmsprop",
        "TensorFlow-style ε inside the root, g/√(v + ε), floors the denominator at √ε (1e-4 for ε = 1e-8) "
        "instead of torch's ε, so it departs wherever v is not far above ε: small gradients and early steps",
        "divide by √v + ε, ε added outside the root, not √(v + ε)",
    ),
    "adamax_eps_outside": Variant(
        AdamaxEpsOutside,
        "adamax",
        "Keras's ε added to the divisor, m/(u + ε), where torch puts it inside the max, max(β2·u, |g| + ε): "
        "it departs wherever |g| is not far above ε",
        "put ε inside the max, u ← max(β2·u, |g| + ε), and divide by u alone, not by u + ε",
    ),
    "nadam_no_momentum_schedule": Variant(
        NAdamNoMomentumSchedule,
        "nadam",
        "a constant μ = β1 where torch's schedule μ_t = β1·(1 − ½·0.96^(tψ)) starts near β1/2: it departs from step 1",
        "use torch's schedule μ_t = β1·(1 − ½·0.96^(t·ψ)), ψ = 0.004, not a constant β1",
    ),
    "radam_paper_threshold": Variant(
        RAdamPaperThreshold,
        "radam",
        "the paper's rectification threshold ρ_t > 4 where torch's is ρ_t > 5: with β2 = 0.999 the adaptive "
        "step starts one step earlier (t = 5, ρ_5 ≈ 4.99), so it departs at step 5",
        "take the rectified (adaptive) step only when ρ_t > 5, torch's threshold, not ρ_t > 4",
    ),
    "adadelta_no_unit_correction": Variant(
        AdadeltaNoUnitCorrection,
        "adadelta",
        "Δ = g/√(v + ε) without the unit correction √(u + ε) in front: at step 1 torch's numerator is √ε, so "
        "it departs from step 1 by a factor of about 1/√ε",
        "multiply the step by √(u + ε), u the running average of Δ²: Δ = √(u + ε)/√(v + ε)·g",
    ),
    "asgd_eta_from_current_step": Variant(
        ASGDStepFromCurrentT,
        "asgd",
        "η_t from the step itself, γ/(1 + λ_d·γ·t)^α, where torch uses the η scheduled at the previous step "
        "(γ at step 1): it departs from step 1, by α·λ_d·γ relative",
        "step with the η set at the end of the previous step (γ at step 1), then η ← γ/(1 + λ_d·γ·t)^α",
    ),
    "rprop_no_gradient_drop": Variant(
        RpropNoGradientDrop,
        "rprop",
        "Rprop− keeps the gradient on a sign change where torch's iRprop− zeroes it (no step, no memory of the "
        "sign): identical until the first sign flip of any element, then apart",
        "where g·prev < 0 set g = 0 (no step there) and keep that 0 as prev (iRprop−)",
    ),
}
