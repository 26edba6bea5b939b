"""Loss nodes: ``forward`` returns a scalar, ``backward`` returns dL/d(prediction).

All follow torch's ``reduction="mean"``. Letters: N batch, C outputs.
"""

import numpy as np


class CrossEntropyLoss:
    """Softmax cross-entropy averaged over the batch, torch's ``nn.CrossEntropyLoss``.

    L = (1/N) Σ_n [ log Σ_c e^{z_nc} − z_{n,y_n} ]          (log-softmax + NLL)
    dL/dz = (softmax(z) − onehot(y)) / N

    The max of each row is subtracted before exponentiating, which leaves the value
    unchanged and keeps ``e^z`` from overflowing.
    """

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)  # (N, 1)
        self._probs = exp / sum_exp  # (N, C) softmax
        self._labels = labels
        log_probs = shifted - np.log(sum_exp)  # (N, C) log-softmax
        return float(-log_probs[np.arange(n), labels].mean())

    def backward(self) -> np.ndarray:
        n = self._probs.shape[0]
        dlogits = self._probs.copy()  # (N, C)
        dlogits[np.arange(n), self._labels] -= 1.0
        return dlogits / n


class MSELoss:
    """Mean squared error over **all** elements, torch's ``nn.MSELoss`` (no ½).

    L = (1/(N·C)) Σ (ŷ − y)²
    dL/dŷ = 2 (ŷ − y) / (N·C)
    """

    def forward(self, prediction: np.ndarray, target: np.ndarray) -> float:
        self._residual = prediction - target  # (N, C)
        return float(np.mean(self._residual * self._residual))

    def backward(self) -> np.ndarray:
        return 2.0 * self._residual / self._residual.size


class BCEWithLogitsLoss:
    """Binary cross-entropy on logits, torch's ``nn.BCEWithLogitsLoss`` (mean over all elements).

    L = mean( max(z, 0) − z·y + log(1 + e^{−|z|}) )     (stable: no e^z can overflow)
    dL/dz = (σ(z) − y) / (N·C)

    Convention: "sigmoid, then log" computes the same value but overflows or loses every digit
    when |z| is large.
    """

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        self._logits = logits  # (N, C)
        self._target = target  # (N, C) in [0, 1]
        losses = np.maximum(logits, 0.0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
        return float(losses.mean())

    def backward(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            sigmoid = 1.0 / (1.0 + np.exp(-self._logits))
        return (sigmoid - self._target) / self._logits.size


LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss, "bce": BCEWithLogitsLoss}
