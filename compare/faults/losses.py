"""Mistakes in losses: each the correct ``manual.losses`` loss with the minimum overridden."""

import numpy as np

from manual.losses import CrossEntropyLoss, MSELoss

TEXTBOOK_LOG_EPS = 1e-7  # deep-learning-from-scratch's cross_entropy_error: -log(p + 1e-7)


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
