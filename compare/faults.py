"""The fault catalog: realistic mistakes made when hand-writing backprop and optimizers, each
swapped into the manual twin so the checker can be seen to catch it at the right place.

Every fault is the correct piece (layer, loss, optimizer, clipping, schedule) with the minimum
overridden to make the mistake, and carries:

* the command-line arguments under which the mistake can act at all (a ReLU gradient at exactly 0
  needs a pre-activation of exactly 0; a softmax without max-subtraction needs a logit past
  log(max float) ≈ 709.8 in float64; a dampening mistake needs ``--dampening`` > 0);
* the expected first failure ``(step, stage, tensor)``, derived from the order a step computes
  (forward, loss, grad from the loss down, state, param: ``compare.engine``) and from the first
  step at which the mistake changes a number, with the reasoning in ``why``.

``backprop-parity run --inject NAME`` applies one to a run; ``backprop-parity faults --table`` runs
them all and checks each against its expectation.

Default layout (``--layers 2,16,16,3``): 0 Linear, 1 activation, 2 Linear, 3 activation, 4 Linear;
so the grad stage checks 4.out, 4.weight, 4.bias, 3.out, 2.out, 2.weight, ... and dL/d``<i>.out``
is computed by the backward of layer ``i + 1``.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compare import data
from compare.errors import InputError
from compare.npz import write_npz
from manual.clip import CLIP_EPS
from manual.init import init_state_dict
from manual.layers import BatchNorm1d, Dropout, LeakyReLU, Linear, Node, ReLU, Sigmoid
from manual.losses import CrossEntropyLoss, MSELoss
from manual.optim import SGD, Adagrad, Adam, AdamW
from manual.spec import MLPSpec

if TYPE_CHECKING:
    from compare.config import RunConfig
    from compare.engine import Lockstep

# Constants of the mistakes themselves, as the sources that make them write them.
TEXTBOOK_LOG_EPS = 1e-7  # deep-learning-from-scratch's cross_entropy_error: -log(p + 1e-7)
KERAS_LEAKY_SLOPE = 0.3  # keras.layers.LeakyReLU's default alpha (torch: 0.01)
UNNORMALISED_SCALE = 1000.0  # the spiral in millimetres instead of metres


# --- layers ---------------------------------------------------------------------------------------


class LinearTransposedWeightGrad(Linear):
    """dW = xᵀ·dout, the formula for a weight stored (in, out): the transpose of the (out, in) gradient."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = super().backward(dout)
        self.grads["weight"] = self._x.T @ dout  # (I, O): torch's layout is (O, I)
        return dx


class LinearBiasGradAveraged(Linear):
    """db = mean(dout) over the batch instead of the sum: the loss's 1/N is applied a second time."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = super().backward(dout)
        if "bias" in self.params:
            self.grads["bias"] = dout.mean(axis=0)  # (O,) should be dout.sum(axis=0)
        return dx


class LinearBiasGradNotSummed(Linear):
    """db = dout: the per-example bias gradients (N, O), never summed over the batch."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = super().backward(dout)
        if "bias" in self.params:
            self.grads["bias"] = dout  # (N, O) should be dout.sum(axis=0), (O,)
        return dx


class LinearGradsNeverZeroed(Linear):
    """Gradients added to the previous step's instead of replacing them (a missing ``zero_grad``)."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        previous = dict(self.grads)
        dx = super().backward(dout)
        for key, value in previous.items():
            self.grads[key] = value + self.grads[key]  # torch accumulates too, but the loop zeroes it
        return dx


class ReLUGradOneAtZero(ReLU):
    """Mask ``x >= 0``: derivative 1 at exactly 0, where torch's ReLU gives 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = super().forward(x)  # max(x, 0) is the same either way
        self._mask = x >= 0
        return out


class LeakyReLUKerasSlope(LeakyReLU):
    """negative_slope 0.3, Keras's default, for a layer meant to be torch's (0.01)."""

    def __init__(self) -> None:
        super().__init__(KERAS_LEAKY_SLOPE)


class SigmoidGradFromPreactivation(Sigmoid):
    """σ' computed as x(1 − x) of the pre-activation x instead of out(1 − out)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return super().forward(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._x * (1.0 - self._x)


class DropoutNotInverted(Dropout):
    """Masks in training without the 1/(1 − p) scale (the "scale at test time" convention)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = super().forward(x)
        if self.mask is not None:
            self._noise = self.mask.astype(x.dtype)
            out = x * self._noise
        return out


class DropoutBackwardWithoutMask(Dropout):
    """Backward passes dout straight through, as if dropout were the identity."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


class BatchNormBiasedRunningVar(BatchNorm1d):
    """running_var updated with the biased batch variance (torch keeps the unbiased one)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        before = self.buffers["running_var"].copy()
        out = super().forward(x)
        if self.training:
            m = self.momentum
            self.buffers["running_var"][...] = (1.0 - m) * before + m * x.var(axis=0)
        return out


class BatchNormUnbiasedNormalisation(BatchNorm1d):
    """Normalises with the unbiased variance (ddof=1, torch.var's default) instead of the biased one."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training:
            return super().forward(x)
        n = x.shape[0]
        mean = x.mean(axis=0)  # (H,)
        centered = x - mean  # (N, H)
        var = (centered * centered).sum(axis=0) / (n - 1)  # (H,) unbiased: the mistake
        self._inv_std = 1.0 / np.sqrt(var + self.eps)
        self._xhat = centered * self._inv_std
        m = self.momentum
        self.buffers["running_mean"][...] = (1.0 - m) * self.buffers["running_mean"] + m * mean
        self.buffers["running_var"][...] = (1.0 - m) * self.buffers["running_var"] + m * var  # unbiased, right here
        self.buffers["num_batches_tracked"] += 1
        return self._xhat * self.params["weight"] + self.params["bias"]


class BatchNormMomentumInverted(BatchNorm1d):
    """running ← m·running + (1 − m)·batch with torch's m = 0.1: the Keras form (m weighs the old value)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        mean_before = self.buffers["running_mean"].copy()
        var_before = self.buffers["running_var"].copy()
        out = super().forward(x)
        if self.training:
            n, m = x.shape[0], self.momentum
            self.buffers["running_mean"][...] = m * mean_before + (1.0 - m) * x.mean(axis=0)
            self.buffers["running_var"][...] = m * var_before + (1.0 - m) * x.var(axis=0) * (n / (n - 1))
        return out


class BatchNormBackwardConstantStats(BatchNorm1d):
    """Backward treats the batch mean and variance as constants: dx = dx̂/√(σ² + ε), dropping two terms."""

    def backward(self, dout: np.ndarray) -> np.ndarray:
        super().backward(dout)  # the γ and β gradients are right
        return dout * self.params["weight"] * self._inv_std


# --- losses ---------------------------------------------------------------------------------------


class CrossEntropyGradWithoutMean(CrossEntropyLoss):
    """The loss is a mean, but its gradient forgets the 1/N: softmax − onehot."""

    def backward(self) -> np.ndarray:
        return super().backward() * self._probs.shape[0]


class CrossEntropyNoMaxShift(CrossEntropyLoss):
    """softmax = e^z / Σe^z without subtracting the row max first; then −log of the label's probability."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        n = logits.shape[0]
        exp = np.exp(logits)  # (N, C) inf once a logit passes log(max float)
        self._probs = exp / exp.sum(axis=1, keepdims=True)  # inf/inf = NaN, finite/inf = 0
        self._labels = labels
        return float(-np.log(self._probs[np.arange(n), labels]).mean())


class CrossEntropyLogEps(CrossEntropyLoss):
    """−log(p + 1e-7): the textbook guard against log(0), which changes every loss value."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        super().forward(logits, labels)
        n = logits.shape[0]
        return float(-np.log(self._probs[np.arange(n), self._labels] + TEXTBOOK_LOG_EPS).mean())


class MSEMeanOverBatchOnly(MSELoss):
    """Σ over outputs, mean over the batch only: torch's MSELoss averages over all N·C elements."""

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float:
        super().forward(prediction, target)
        return float((self._residual * self._residual).sum(axis=1).mean())

    def backward(self) -> np.ndarray:
        return 2.0 * self._residual / self._residual.shape[0]


# --- optimizers -----------------------------------------------------------------------------------


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


# --- clipping -------------------------------------------------------------------------------------


def clip_each_tensor(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Each gradient clipped to ``max_norm`` on its own; torch scales all by one global coefficient.

    Returns the global norm, as torch does, so the mistake shows in the clipped gradients.
    """
    total_norm = float(np.linalg.norm([np.linalg.norm(g.ravel()) for g in grads.values()]))
    for g in grads.values():
        g *= min(max_norm / (float(np.linalg.norm(g.ravel())) + CLIP_EPS), 1.0)
    return total_norm


# --- how a fault is swapped in --------------------------------------------------------------------


def _recast(obj, cls: type):
    """A copy of ``obj`` as the faulty subclass ``cls``, sharing its arrays (parameters, buffers, rng)."""
    new = cls.__new__(cls)
    new.__dict__.update(obj.__dict__)
    return new


def swap_layers(base: type, make: Callable[[Node], Node]) -> Callable[["Lockstep"], None]:
    def apply(lockstep: "Lockstep") -> None:
        layers = lockstep.manual_model.layers
        for i, layer in enumerate(layers):
            if type(layer) is base:
                layers[i] = make(layer)

    return apply


def recast_layers(base: type, cls: type) -> Callable[["Lockstep"], None]:
    return swap_layers(base, lambda layer: _recast(layer, cls))


def recast_loss(cls: type) -> Callable[["Lockstep"], None]:
    def apply(lockstep: "Lockstep") -> None:
        lockstep.manual_model.loss = _recast(lockstep.manual_model.loss, cls)

    return apply


def recast_optimizer(cls: type) -> Callable[["Lockstep"], None]:
    def apply(lockstep: "Lockstep") -> None:
        optimizer = lockstep.manual_optimizer
        optimizer.__class__ = cls  # in place: an lr schedule holds this very object and sets its lr
        lockstep.manual_state = optimizer.init(lockstep.manual_model.named_parameters())
        lockstep.comparable_state = getattr(cls, "comparable_state", None)

    return apply


def replace_clip(lockstep: "Lockstep") -> None:
    lockstep.manual_clip = clip_each_tensor


def schedule_stepped_first(lockstep: "Lockstep") -> None:
    """``scheduler.step()`` called before ``optimizer.step()`` in the loop: the manual lr runs one step ahead."""
    lockstep.manual_schedule.step()


# --- what a fault needs to be able to act ---------------------------------------------------------

Need = Callable[["RunConfig"], str | None]  # None when satisfied, else what is missing


def optimizer_is(*names: str) -> Need:
    return lambda config: None if config.optimizer in names else "--optimizer " + " or ".join(names)


def hyperparameter_positive(key: str) -> Need:
    flag = "--" + key.replace("_", "-")
    return lambda config: None if config.hyperparameters.get(key, 0) > 0 else f"{flag} > 0"


def hyperparameter_off(key: str) -> Need:
    flag = "--" + key.replace("_", "-")
    return lambda config: None if not config.hyperparameters.get(key) else f"no {flag}"


def activation_is(name: str) -> Need:
    return lambda config: None if config.activation == name else f"--activation {name}"


def loss_is(name: str) -> Need:
    return lambda config: None if config.loss == name else f"--loss {name}"


def has(attribute: str, flag: str) -> Need:
    return lambda config: None if getattr(config, attribute) else flag


def square_layers(config: "RunConfig") -> str | None:
    if len(set(config.layers)) == 1:
        return None
    return "square Linear layers (equal --layers widths; on a non-square one NumPy raises in the update)"


def two_steps(config: "RunConfig") -> str | None:
    return None if config.steps >= 2 else "--steps >= 2 (step 1 has nothing to accumulate onto)"


# --- input files some faults need -----------------------------------------------------------------


def write_zero_bias_weights(path: Path) -> None:
    """The default spiral network (2,16,16,3, ReLU) with He weights and every bias zero, as many tutorials init."""
    spec = MLPSpec((2, 16, 16, 3), "relu", "cross_entropy")
    write_npz(path, init_state_dict(spec, np.random.default_rng(0), zero_bias=True))


def write_unnormalised_spiral(path: Path) -> None:
    """The built-in spiral with its coordinates multiplied by 1000: inputs nobody standardised."""
    dataset = data.spiral(np.random.default_rng(0))
    write_npz(path, {"X": dataset.X * UNNORMALISED_SCALE, "y": dataset.y})


FILES: dict[str, Callable[[Path], None]] = {
    "zero_bias_weights": write_zero_bias_weights,
    "unnormalised_spiral": write_unnormalised_spiral,
}


# --- the catalog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    expected: tuple[int, str, str]  # (step, stage, tensor) of the first failure
    why: str  # the reasoning behind ``expected``
    apply: Callable[["Lockstep"], None]
    args: tuple[str, ...] = ()  # run arguments under which it can act; ``{name}`` is a file of FILES
    needs: tuple[Need, ...] = ()
    problem: str | None = None  # the failure's ``problem`` when it is not a plain difference

    @property
    def steps(self) -> int:
        """Enough steps to reach the expected failure and to show that nothing fails before it."""
        return self.expected[0] + 2

    def files(self) -> list[str]:
        return [key for key in FILES if any(f"{{{key}}}" in arg for arg in self.args)]

    def argv(self, folder: Path | None = None) -> list[str]:
        """The run arguments, with ``--steps``; input files are written into ``folder`` (or shown as NAME.npz)."""
        paths = {}
        for key in self.files():
            if folder is None:
                paths[key] = f"{key}.npz"
            else:
                paths[key] = str(folder / f"{key}.npz")
                FILES[key](Path(paths[key]))
        return [*(arg.format(**paths) for arg in self.args), "--steps", str(self.steps)]


BIAS_NOTE = "the last Linear's bias is the first bias gradient checked"
CATALOG_LIST = [
    Fault(
        "transposed-weight-grad",
        "Linear weight gradient xᵀ·dout (the (in, out)-layout formula): the transpose of torch's (out, in) one",
        (1, "grad", "4.weight"),
        "the first parameter gradient checked is the last Linear's weight; on square layers the transpose has "
        "the right shape, so it is a silent wrong value (on non-square ones NumPy raises in the update)",
        recast_layers(Linear, LinearTransposedWeightGrad),
        args=("--dataset", "xor", "--layers", "2,2,2,2"),
        needs=(square_layers,),
    ),
    Fault(
        "bias-grad-averaged",
        "Linear bias gradient averaged over the batch instead of summed (the loss's 1/N applied twice)",
        (1, "grad", "4.bias"),
        f"dL/d4.out and 4.weight are right; {BIAS_NOTE}, wrong by 1/N from step 1",
        recast_layers(Linear, LinearBiasGradAveraged),
    ),
    Fault(
        "bias-grad-not-summed",
        "Linear bias gradient left per example, (N, O), instead of summed over the batch to (O,)",
        (1, "grad", "4.bias"),
        f"{BIAS_NOTE}; its shape is wrong (problem 'shape'), and the manual update then cannot broadcast it",
        recast_layers(Linear, LinearBiasGradNotSummed),
        problem="shape",
    ),
    Fault(
        "missing-zero-grad",
        "gradients never zeroed: each step's Linear gradients are added to the previous step's",
        (2, "grad", "4.weight"),
        "step 1 has nothing to accumulate onto; at step 2 the first parameter gradient checked holds g1 + g2",
        recast_layers(Linear, LinearGradsNeverZeroed),
        needs=(two_steps,),
    ),
    Fault(
        "relu-grad-at-zero",
        "ReLU backward with mask x >= 0: derivative 1 at exactly 0 (torch: 0)",
        (1, "grad", "2.out"),
        "acts only on pre-activations of exactly 0: with zero biases, the spiral's three points at the origin give "
        "exact zeros from layer 0 on, and only until the first update moves the biases; the full batch (nothing "
        "held out) puts them into step 1. The first ReLU backward is layer 3's, which computes dL/d2.out",
        recast_layers(ReLU, ReLUGradOneAtZero),
        args=("--weights", "{zero_bias_weights}", "--val-fraction", "0", "--batch-size", "300"),
        needs=(activation_is("relu"),),
    ),
    Fault(
        "leaky-relu-keras-slope",
        "LeakyReLU with Keras's default slope 0.3 instead of torch's 0.01",
        (1, "forward", "1.out"),
        "the first activation's output differs wherever its input is negative, in every batch",
        swap_layers(LeakyReLU, lambda layer: LeakyReLUKerasSlope()),
        args=("--activation", "leaky_relu"),
        needs=(activation_is("leaky_relu"),),
    ),
    Fault(
        "sigmoid-grad-from-preactivation",
        "sigmoid derivative taken as x(1 − x) of the pre-activation instead of out(1 − out)",
        (1, "grad", "2.out"),
        "the forward is right; the first sigmoid backward is layer 3's, which computes dL/d2.out",
        recast_layers(Sigmoid, SigmoidGradFromPreactivation),
        args=("--activation", "sigmoid"),
        needs=(activation_is("sigmoid"),),
    ),
    Fault(
        "softmax-without-max-shift",
        "softmax as e^z/Σe^z without subtracting the row max: overflows to inf/inf = NaN for large logits",
        (1, "loss", "loss"),
        "equal to rounding while every logit stays below log(max float) ≈ 709.8 (float64); on inputs 1000x "
        "unnormalised the logits pass that at step 1, and the manual loss is NaN/inf (nonfinite:manual)",
        recast_loss(CrossEntropyNoMaxShift),
        args=("--data", "{unnormalised_spiral}"),
        needs=(loss_is("cross_entropy"),),
        problem="nonfinite:manual",
    ),
    Fault(
        "cross-entropy-grad-without-mean",
        "cross-entropy gradient softmax − onehot without the 1/N of the mean",
        (1, "grad", "4.out"),
        "the loss value is right; the first gradient checked, dL/d4.out, is N times torch's",
        recast_loss(CrossEntropyGradWithoutMean),
        needs=(loss_is("cross_entropy"),),
    ),
    Fault(
        "cross-entropy-log-eps",
        "cross-entropy as −log(p + 1e-7), the textbook guard against log(0)",
        (1, "loss", "loss"),
        "the forward outputs are right; the loss value is off by about 1e-7/p from step 1",
        recast_loss(CrossEntropyLogEps),
        needs=(loss_is("cross_entropy"),),
    ),
    Fault(
        "mse-mean-over-batch-only",
        "MSE summed over the outputs and averaged over the batch only (torch averages over all N·C elements)",
        (1, "loss", "loss"),
        "with C = 3 one-hot targets the loss is 3x torch's from step 1",
        recast_loss(MSEMeanOverBatchOnly),
        args=("--loss", "mse"),
        needs=(loss_is("mse"),),
    ),
    Fault(
        "dropout-not-inverted",
        "dropout masks in training without the 1/(1 − p) scale",
        (1, "forward", "2.out"),
        "layer 2 is the first Dropout; its output is (1 − p) times torch's wherever the mask keeps a unit",
        recast_layers(Dropout, DropoutNotInverted),
        args=("--dropout", "0.2"),
        needs=(has("dropout", "--dropout > 0"),),
    ),
    Fault(
        "dropout-backward-without-mask",
        "dropout backward passes dout through unmasked",
        (1, "grad", "4.out"),
        "layout 0 L, 1 act, 2 drop, 3 L, 4 act, 5 drop, 6 L: the last Dropout (5) computes dL/d4.out",
        recast_layers(Dropout, DropoutBackwardWithoutMask),
        args=("--dropout", "0.2"),
        needs=(has("dropout", "--dropout > 0"),),
    ),
    Fault(
        "batchnorm-biased-running-var",
        "BatchNorm running variance updated with the biased batch variance (torch keeps the unbiased one)",
        (1, "state", "1.running_var"),
        "training-mode outputs use batch statistics, so nothing before the state stage changes; "
        "1.running_mean is right, 1.running_var is off by N/(N − 1) in its update",
        recast_layers(BatchNorm1d, BatchNormBiasedRunningVar),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-unbiased-normalisation",
        "BatchNorm normalising with the unbiased variance (ddof=1) instead of the biased one",
        (1, "forward", "1.out"),
        "layer 1 is the first BatchNorm; its output is scaled by √((N − 1)/N) from step 1",
        recast_layers(BatchNorm1d, BatchNormUnbiasedNormalisation),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-momentum-inverted",
        "BatchNorm running statistics as m·running + (1 − m)·batch with torch's m = 0.1 (Keras's convention)",
        (1, "state", "1.running_mean"),
        "outputs use batch statistics; the first buffer checked, 1.running_mean, takes 0.9 of the batch mean",
        recast_layers(BatchNorm1d, BatchNormMomentumInverted),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-backward-constant-stats",
        "BatchNorm backward treating the batch mean and variance as constants: dx = γ·dout/√(σ² + ε)",
        (1, "grad", "3.out"),
        "layout 0 L, 1 BN, 2 act, 3 L, 4 BN, 5 act, 6 L: γ and β gradients are right, and the last BatchNorm "
        "(4) computes dL/d3.out",
        recast_layers(BatchNorm1d, BatchNormBackwardConstantStats),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "clip-each-tensor",
        "gradient clipping applied to each tensor's own norm instead of the global norm",
        (1, "grad", "0.weight.clipped"),
        "the raw gradients and the returned global norm are right; the first clipped gradient, 0.weight's, "
        "is scaled by max/‖g‖ of its own instead of max/‖all‖ (the norm exceeds 0.01 at step 1)",
        replace_clip,
        args=("--clip-grad-norm", "0.01"),
        needs=(has("clip_grad_norm", "--clip-grad-norm"),),
    ),
    Fault(
        "schedule-stepped-before-update",
        "lr scheduler stepped before the optimizer step in the loop: every lr comes one step early",
        (3, "state", "lr"),
        "with StepLR(3, 0.5) torch halves the lr at step 4; one step ahead, the manual lr halves at step 3, "
        "and the lr is the first tensor of the state stage",
        schedule_stepped_first,
        args=("--lr-schedule", "step:3:0.5"),
        needs=(has("lr_schedule", "--lr-schedule"),),
    ),
    Fault(
        "momentum-zero-init-dampened",
        "momentum buffer initialised to zeros, so the first step is dampened (torch copies g undamped)",
        (1, "state", "0.weight.momentum_buffer"),
        "with τ > 0 step 1 gives (1 − τ)·g instead of g; with τ = 0 the two agree, hence --dampening",
        recast_optimizer(MomentumBufferZeroInit),
        args=("--optimizer", "momentum", "--dampening", "0.5"),
        needs=(
            optimizer_is("momentum", "sgd"),
            hyperparameter_positive("momentum"),
            hyperparameter_positive("dampening"),
        ),
    ),
    Fault(
        "momentum-lr-in-buffer",
        "lr folded into the momentum buffer (v ← μv + γg; θ ← θ − v), which an lr schedule exposes",
        (6, "param", "0.weight"),
        "equal to torch's rule while the lr is constant; StepLR(5, 0.1) changes it at step 6, where the buffer "
        "still carries the old lr. The buffer γ·b has no torch counterpart, so the parameters show it",
        recast_optimizer(MomentumLrInBuffer),
        args=("--optimizer", "momentum", "--lr-schedule", "step:5:0.1"),
        needs=(
            optimizer_is("momentum", "sgd"),
            hyperparameter_positive("momentum"),
            hyperparameter_off("dampening"),
            hyperparameter_off("nesterov"),
            has("lr_schedule", "--lr-schedule"),
        ),
    ),
    Fault(
        "l2-on-weights-only",
        "weight decay added to the .weight tensors only (torch's weight_decay decays the biases too)",
        (1, "param", "0.bias"),
        "SGD keeps no state; 0.weight is right and 0.bias, the second parameter updated, misses λ·b",
        recast_optimizer(SGDDecayWeightsOnly),
        args=("--optimizer", "sgd", "--weight-decay", "0.01"),
        needs=(optimizer_is("sgd", "momentum", "nesterov"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adam-eps-inside-root",
        "Adam with ε inside the root, √(v̂ + ε), instead of √v̂ + ε",
        (1, "param", "0.weight"),
        "m and v are right; the first update of the first parameter divides by a different denominator",
        recast_optimizer(AdamEpsInsideRoot),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-no-bias-correction",
        "Adam without the 1/(1 − β1^t) and 1/(1 − β2^t) bias corrections",
        (1, "param", "0.weight"),
        "m and v are right; at step 1 the uncorrected step is √(1 − β2)/(1 − β1) ≈ 0.32 of torch's",
        recast_optimizer(AdamNoBiasCorrection),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-global-step-counter",
        "Adam with one step counter for the optimizer, bumped by every tensor, driving the bias correction",
        (1, "state", "0.bias.step"),
        "the first parameter gets t = 1 as in torch; the second (0.bias) already gets t = 2 at step 1",
        recast_optimizer(AdamGlobalStepCounter),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-beta-on-new-gradient",
        "Adam first moment as β1·g + (1 − β1)·m: β1 weighing the new gradient (a reversed lerp)",
        (1, "state", "0.weight.exp_avg"),
        "from zero, step 1 gives m = 0.9·g instead of 0.1·g in the first parameter's exp_avg",
        recast_optimizer(AdamBetaOnTheNewGradient),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adamw-decay-not-scaled-by-lr",
        "AdamW decay θ·(1 − λ) instead of torch's θ·(1 − γλ)",
        (1, "param", "0.weight"),
        "the decay touches only the parameters; at step 1 the first one shrinks by λ instead of γλ",
        recast_optimizer(AdamWDecayNotScaledByLr),
        args=("--optimizer", "adamw"),
        needs=(optimizer_is("adamw"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adamw-coupled-l2",
        "AdamW written as Adam with λθ added to the gradient (coupled L2 instead of decoupled decay)",
        (1, "state", "0.weight.exp_avg"),
        "λθ enters the first moment at step 1; exp_avg is the first state tensor checked",
        recast_optimizer(AdamWCoupledL2),
        args=("--optimizer", "adamw"),
        needs=(optimizer_is("adamw"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adagrad-lr-decay-off-by-one",
        "Adagrad lr decay γ/(1 + t·η) with the step just counted (torch: t − 1, so step 1 runs at γ)",
        (1, "param", "0.weight"),
        "the accumulator is right; step 1 already runs at γ/(1 + η)",
        recast_optimizer(AdagradLrDecayOffByOne),
        args=("--optimizer", "adagrad", "--lr-decay", "0.1"),
        needs=(optimizer_is("adagrad"), hyperparameter_positive("lr_decay")),
    ),
]
CATALOG: dict[str, Fault] = {fault.name: fault for fault in CATALOG_LIST}


def check(config: "RunConfig") -> None:
    """Raise ``InputError`` when ``config.inject`` names a fault that cannot act on this run."""
    if config.inject is None:
        return
    if config.variant is not None:
        raise InputError(f"--inject {config.inject} cannot be combined with --variant (both replace the manual rule)")
    missing = [what for need in CATALOG[config.inject].needs if (what := need(config)) is not None]
    if missing:
        raise InputError(f"--inject {config.inject} cannot act on this run: it needs {', '.join(missing)}")


def inject(name: str, lockstep: "Lockstep") -> None:
    """Swap the named mistake into the manual side of ``lockstep``, before its first step."""
    CATALOG[name].apply(lockstep)
