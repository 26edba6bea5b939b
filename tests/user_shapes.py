"""User layers whose output shape is not torch's, as people write them: a convolution without padding (or
channels last), a channels-last max pooling, an affine layer returning its output transposed, and a network
exposing such a pooling among its layers. Their backward is never reached: a difference of output shape is
found after the forward, so each backward raises, and a report that names it has called it."""

import numpy as np
from check_styles import Affine, LabelSoftmaxWithLoss


class Unreached:
    def backward(self, dout):
        raise AssertionError("the checker handed a dout to a layer whose output shape is not torch's")


class Conv(Unreached):
    """A valid (unpadded) convolution, stride 1: W (F, C, kh, kw); x (N, C, H, W), or (N, H, W, C) with
    ``channels_last`` (the output alike)."""

    def __init__(self, W, b, channels_last=False):
        self.W, self.b, self.channels_last = W, b, channels_last

    def forward(self, x):
        x = x.transpose(0, 3, 1, 2) if self.channels_last else x
        F, _, kh, kw = self.W.shape
        N, _, H, W = x.shape
        out = np.zeros((N, F, H - kh + 1, W - kw + 1))
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                out[:, :, i, j] = np.tensordot(x[:, :, i : i + kh, j : j + kw], self.W, axes=([1, 2, 3], [1, 2, 3]))
        out += self.b[:, None, None]
        return out.transpose(0, 2, 3, 1) if self.channels_last else out


class MaxPoolNHWC(Unreached):
    """2×2 max pooling, stride 2, on channels-last x (N, H, W, C) → (N, H/2, W/2, C)."""

    def forward(self, x):
        N, H, W, C = x.shape
        return x.reshape(N, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))


class MaxPoolNHWCBackward(MaxPoolNHWC):
    """The same pooling with its backward (inside a network, a later layer's shape is the first difference)."""

    def forward(self, x):
        self.x, self.out = x, super().forward(x)
        return self.out

    def backward(self, dout):
        N, H, W, C = self.x.shape
        blocks = self.x.reshape(N, H // 2, 2, W // 2, 2, C)
        mask = blocks == self.out[:, :, None, :, None, :]
        return (mask * dout[:, :, None, :, None, :]).reshape(self.x.shape)


class TransposedAffine(Affine, Unreached):
    """y = (x @ W + b)ᵀ: samples as columns."""

    def forward(self, x):
        return super().forward(x).T

    backward = Unreached.backward


class Flatten:
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout):
        return dout.reshape(self.shape)


class PoolNet:
    """Channels-last pooling, flatten, affine (12 → 3), the textbook loss layer: a network whose every parameter
    has torch's shape, only the pooling's output does not."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": rng.standard_normal((12, 3)), "b1": rng.standard_normal(3)}
        self.layers = [MaxPoolNHWCBackward(), Flatten(), Affine(self.params["W1"], self.params["b1"])]
        self.last_layer = LabelSoftmaxWithLoss()

    def loss(self, x, t):
        for layer in self.layers:
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return {"W1": self.layers[2].dW, "b1": self.layers[2].db}
