"""Mistakes in optimizers: each the correct ``manual.optim`` rule with the minimum overridden."""

from dataclasses import replace

import numpy as np

from manual.optim import ASGD, SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, Rprop
from manual.optim.rule import PerParameter


class AdamEpsInsideRoot(Adam):
    """denom = √(v̂ + ε) instead of torch's √v/√(1 − β2^t) + ε."""

    def denominator(self, second_moment: np.ndarray, t: int, scratch: np.ndarray) -> np.ndarray:
        return np.sqrt(second_moment / (1.0 - self.betas[1] ** t) + self.eps)


class AdamNoBiasCorrection(Adam):
    """θ ← θ − γ·m/(√v + ε): the moments' 1/(1 − β^t) corrections left out."""

    def denominator(self, second_moment: np.ndarray, t: int, scratch: np.ndarray) -> np.ndarray:
        return np.sqrt(second_moment) + self.eps

    def step_size(self, t: int) -> float:
        return self.lr


class AdamGlobalStepCounter(Adam):
    """One step counter on the optimizer, bumped by every tensor's update, drives the bias correction."""

    def init(self, params):
        self.t = 0  # torch keeps one counter per parameter
        return super().init(params)

    def count(self, s: PerParameter) -> int:
        self.t += 1
        s["step"] = self.t  # torch: this parameter's own count
        return self.t


class AdamBetaOnTheNewGradient(Adam):
    """m ← β1·g + (1 − β1)·m: β1 weighs the new gradient instead of the old average (a reversed lerp)."""

    def first_moment(self, exp_avg: np.ndarray, g: np.ndarray, scratch: np.ndarray) -> None:
        exp_avg += self.betas[0] * (g - exp_avg)  # torch: (1 − β1)·(g − m)


class AdamWDecayNotScaledByLr(AdamW):
    """θ ← θ·(1 − λ) instead of torch's θ·(1 − γλ): the decay not multiplied by the lr."""

    def decay(self, param: np.ndarray, g: np.ndarray) -> np.ndarray:
        param *= 1.0 - self.weight_decay
        return g


class AdamWCoupledL2(AdamW):
    """ "AdamW" as Adam with λθ added to the gradient, so the decay passes through m and v."""

    def decay(self, param: np.ndarray, g: np.ndarray) -> np.ndarray:
        return self.coupled_decay(param, g)


class SGDDecayWeightsOnly(SGD):
    """L2 added to the ``.weight`` tensors only; torch's weight_decay decays every parameter, biases too."""

    def step(self, params, grads, state) -> None:
        decayed = {
            name: grads[name] + self.weight_decay * param if name.endswith(".weight") else grads[name]
            for name, param in params.items()
        }
        SGD.step(replace(self, weight_decay=0.0), params, decayed, state)


class MomentumBufferZeroInit(SGD):
    """The buffer starts at zeros, so step 1 gives b = (1 − τ)·g where torch copies g undamped."""

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"momentum_buffer": np.zeros_like(param)}


class MomentumLrInBuffer(SGD):
    """v ← μ·v + γ·g; θ ← θ − v: the lr folded into the buffer, so an lr change cannot rescale the past.

    Its buffer is γ·b, not torch's b, so only the parameters can be compared (as for the
    ``classic_momentum`` variant); the two agree while γ is constant.
    """

    comparable_state = frozenset()

    def init_one(self, param: np.ndarray) -> PerParameter:
        return {"velocity": np.zeros_like(param)}

    def direction(self, g: np.ndarray, s: PerParameter) -> np.ndarray:
        s["velocity"] *= self.momentum
        s["velocity"] += self.lr * g  # torch: b ← μ·b + g, and γ only in θ ← θ − γ·b
        return s["velocity"]

    def apply(self, param: np.ndarray, direction: np.ndarray) -> None:
        param -= direction


class AdagradLrDecayOffByOne(Adagrad):
    """clr = γ/(1 + t·η) with the step just counted, where torch uses t − 1 (step 1 runs at γ)."""

    def decayed_lr(self, t: int) -> float:
        return self.lr / (1 + t * self.lr_decay)  # torch: (t − 1)


class AdamaxNoBiasCorrection(Adamax):
    """θ ← θ − γ·m/u: the first moment's 1/(1 − β1^t) left out (u needs none, m does)."""

    def step_size(self, t: int) -> float:
        return self.lr  # torch: γ / (1 − β1^t)


class NAdamMuForMuNext(NAdam):
    """m weighed by this step's μ_t instead of the next one's μ_{t+1} (the Nesterov look-ahead lost)."""

    def momenta(self, t: int) -> tuple[float, float]:
        return self.momentum(t), self.momentum(t)  # torch: (μ_t, μ_{t+1})


class RAdamUncorrectedFirstMoment(RAdam):
    """m used without its bias correction 1/(1 − β1^t), in the early SGD steps and the rectified ones alike."""

    def corrected_first_moment(self, exp_avg: np.ndarray, t: int) -> np.ndarray:
        return exp_avg  # torch: exp_avg / (1 − β1^t)


class AdadeltaEpsOutsideRoots(Adadelta):
    """Δ ← (√u + ε)/(√v + ε)·g: ε outside both roots, so the first step's numerator is ε, not √ε."""

    def delta(self, s: PerParameter, g: np.ndarray) -> np.ndarray:
        return (np.sqrt(s["acc_delta"]) + self.eps) / (np.sqrt(s["square_avg"]) + self.eps) * g


class ASGDShrinkNotScaledByEta(ASGD):
    """θ ← θ·(1 − λ_d) instead of torch's θ·(1 − λ_d·η): the decay term not multiplied by the step size."""

    def shrink(self, param: np.ndarray, eta: float) -> None:
        param *= 1.0 - self.lambd


class RpropEtasSwapped(Rprop):
    """η+ applied where the gradient's sign flipped and η− where it held: the two factors swapped."""

    def factors(self, agreement: np.ndarray) -> np.ndarray:
        etaminus, etaplus = self.etas
        return np.where(agreement > 0, etaminus, np.where(agreement < 0, etaplus, 1.0)).astype(agreement.dtype)
