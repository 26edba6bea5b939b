"""Held-out evaluation of both sides: the one place loss and accuracy on data outside the batch are computed."""

import numpy as np
from torch import nn

from compare.core.side import Side


def loss_kind(loss: nn.Module) -> str:
    """What accuracy means for the reference's loss: ``cross_entropy``, ``bce`` or anything else."""
    if isinstance(loss, nn.CrossEntropyLoss):
        return "cross_entropy"
    if isinstance(loss, nn.BCEWithLogitsLoss):
        return "bce"
    return "other"


def accuracy(output: np.ndarray, y: np.ndarray, loss: str) -> float | None:
    """Fraction classified right: argmax for labels or one-hot targets, logit > 0 for bce;
    ``None`` for regression targets, where accuracy means nothing."""
    if loss == "cross_entropy":
        return float(np.mean(output.argmax(axis=1) == y))
    if loss == "bce":
        return float(np.mean((output > 0) == (y > 0.5)))
    one_hot = y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
    return float(np.mean(output.argmax(axis=1) == y.argmax(axis=1))) if one_hot else None


def evaluate(sides: dict[str, Side], X: np.ndarray, y: np.ndarray, kind: str) -> dict[str, dict[str, float | None]]:
    """``{side: {"loss", "accuracy"}}`` on ``(X, y)``, each side in evaluation mode (training mode restored)."""
    found = {}
    for name, side in sides.items():
        prediction = side.predict(X)
        found[name] = {"loss": side.loss_value(prediction, y), "accuracy": accuracy(prediction, y, kind)}
    return found
