"""Loss nodes: ``forward`` returns a scalar, ``backward`` returns dL/d(prediction).

Both follow torch's ``reduction="mean"``. Letters: N batch, C outputs.
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


LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss}
