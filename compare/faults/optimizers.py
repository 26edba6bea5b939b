"""Mistakes in optimizers: each the correct ``manual.optim`` rule with the minimum overridden."""

from dataclasses import replace

import numpy as np

from manual.optim import ASGD, SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RAdam, Rprop
from manual.optim.rule import PerParameter


def _adam_moments(adam: Adam, g: np.ndarray, s: dict) -> None:
    """torch's moment updates, in place: m ← m + (1 − β1)(g − m), v ← β2·v + (1 − β2)·g²."""
    beta1, beta2 = adam.betas
    s["exp_avg"] += (1.0 - beta1) * (g - s["exp_avg"])
    s["exp_avg_sq"] *= beta2
    s["exp_avg_sq"] += (1.0 - beta2) * g * g


class AdamEpsInsideRoot(Adam):
    """denom = √(v̂ + ε) instead of torch's √v/√(1 − β2^t) + ε."""

    def step(self, params, grads, state) -> None:
        beta1, beta2 = self.betas
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            t = s["step"]
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            _adam_moments(self, g, s)
            v_hat = s["exp_avg_sq"] / (1.0 - beta2**t)
            param -= self.lr / (1.0 - beta1**t) * s["exp_avg"] / np.sqrt(v_hat + self.eps)


class AdamNoBiasCorrection(Adam):
    """θ ← θ − γ·m/(√v + ε): the moments' 1/(1 − β^t) corrections left out."""

    def step(self, params, grads, state) -> None:
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            _adam_moments(self, g, s)
            param -= self.lr * s["exp_avg"] / (np.sqrt(s["exp_avg_sq"]) + self.eps)


class AdamGlobalStepCounter(Adam):
    """One step counter on the optimizer, bumped by every tensor's update, drives the bias correction."""

    def init(self, params):
        self.t = 0  # torch keeps one counter per parameter
        return super().init(params)

    def step(self, params, grads, state) -> None:
        beta1, beta2 = self.betas
        for name, param in params.items():
            s = state[name]
            self.t += 1
            t = s["step"] = self.t  # torch: this parameter's own count
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            _adam_moments(self, g, s)
            denom = np.sqrt(s["exp_avg_sq"]) / np.sqrt(1.0 - beta2**t) + self.eps
            param -= self.lr / (1.0 - beta1**t) * s["exp_avg"] / denom


class AdamBetaOnTheNewGradient(Adam):
    """m ← β1·g + (1 − β1)·m: β1 weighs the new gradient instead of the old average (a reversed lerp)."""

    def step(self, params, grads, state) -> None:
        beta1, beta2 = self.betas
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            t = s["step"]
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            s["exp_avg"] += beta1 * (g - s["exp_avg"])  # torch: (1 − β1)·(g − m)
            s["exp_avg_sq"] *= beta2
            s["exp_avg_sq"] += (1.0 - beta2) * g * g
            denom = np.sqrt(s["exp_avg_sq"]) / np.sqrt(1.0 - beta2**t) + self.eps
            param -= self.lr / (1.0 - beta1**t) * s["exp_avg"] / denom


class AdamWDecayNotScaledByLr(AdamW):
    """θ ← θ·(1 − λ) instead of torch's θ·(1 − γλ): the decay not multiplied by the lr."""

    def step(self, params, grads, state) -> None:
        for param in params.values():
            param *= 1.0 - self.weight_decay
        Adam.step(replace(self, weight_decay=0.0), params, grads, state)


class AdamWCoupledL2(AdamW):
    """ "AdamW" as Adam with λθ added to the gradient, so the decay passes through m and v."""

    def step(self, params, grads, state) -> None:
        Adam.step(self, params, grads, state)


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

    def init(self, params):
        return {name: {"momentum_buffer": np.zeros_like(param)} for name, param in params.items()}


class MomentumLrInBuffer(SGD):
    """v ← μ·v + γ·g; θ ← θ − v: the lr folded into the buffer, so an lr change cannot rescale the past.

    Its buffer is γ·b, not torch's b, so only the parameters can be compared (as for the
    ``classic_momentum`` variant); the two agree while γ is constant.
    """

    comparable_state = frozenset()

    def init(self, params):
        return {name: {"velocity": np.zeros_like(param)} for name, param in params.items()}

    def step(self, params, grads, state) -> None:
        for name, param in params.items():
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            velocity = state[name]["velocity"]
            velocity *= self.momentum
            velocity += self.lr * g  # torch: b ← μ·b + g, and γ only in θ ← θ − γ·b
            param -= velocity


class AdagradLrDecayOffByOne(Adagrad):
    """clr = γ/(1 + t·η) with the step just counted, where torch uses t − 1 (step 1 runs at γ)."""

    def step(self, params, grads, state) -> None:
        for name, param in params.items():
            s = state[name]
            s["step"] += 1
            g = grads[name] + self.weight_decay * param if self.weight_decay else grads[name]
            clr = self.lr / (1 + s["step"] * self.lr_decay)  # torch: (t − 1)
            s["sum"] += g * g
            param -= clr * (g / (np.sqrt(s["sum"]) + self.eps))


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
