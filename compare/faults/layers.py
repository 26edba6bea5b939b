"""Mistakes in layers: each the correct ``manual.layers`` node with the minimum overridden."""

import numpy as np

from manual.layers import BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid

KERAS_LEAKY_SLOPE = 0.3  # keras.layers.LeakyReLU's default alpha (torch: 0.01)


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
