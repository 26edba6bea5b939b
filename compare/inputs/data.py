"""Training data: small built-in sets generated from the seed, or the user's own ``.npz``.

Letters: N examples, D features, C classes/outputs.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compare.errors import InputError
from compare.inputs.npz import read_npz
from compare.inputs.safety import check_one_hot

BUILTIN = ("spiral", "xor")


@dataclass(frozen=True)
class Dataset:
    """``X`` (N, D) float; ``y`` int labels (N,) or float targets (N, C)."""

    name: str
    X: np.ndarray
    y: np.ndarray

    @property
    def has_labels(self) -> bool:
        return self.y.ndim == 1

    @property
    def num_outputs(self) -> int:
        return int(self.y.max()) + 1 if self.has_labels else int(self.y.shape[1])


def spiral(rng: np.random.Generator, per_class: int = 100, classes: int = 3, noise: float = 0.2) -> Dataset:
    """Interleaved 2-D spiral arms, one class per arm (not linearly separable)."""
    radius = np.tile(np.linspace(0.0, 1.0, per_class), classes)
    arm = np.repeat(np.arange(classes), per_class)
    theta = np.linspace(0.0, 4.0, per_class)[None, :] + 4.0 * np.arange(classes)[:, None]
    theta = theta.ravel() + noise * rng.standard_normal(per_class * classes)
    X = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)  # (N, 2)
    return Dataset("spiral", X, arm)


def xor(rng: np.random.Generator, n: int = 256) -> Dataset:
    """Points in [−1, 1]²; class 1 where exactly one coordinate is positive."""
    X = rng.uniform(-1.0, 1.0, size=(n, 2))  # (N, 2)
    y = ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(np.int64)
    return Dataset("xor", X, y)


def builtin(name: str, rng: np.random.Generator) -> Dataset:
    return {"spiral": spiral, "xor": xor}[name](rng)


def load(path: Path) -> Dataset:
    """The user's ``X`` (N, D) float and ``y`` (int labels (N,) or float targets (N, C))."""
    arrays = read_npz(path, "--data")
    for key in ("X", "y"):
        if key not in arrays:
            raise InputError(f"--data {path}: missing array {key!r} (found: {', '.join(arrays) or 'none'})")
    X, y = arrays["X"], arrays["y"]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"--data {path}: X must be a non-empty float array (N, D), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating) and not np.issubdtype(X.dtype, np.integer):
        raise InputError(f"--data {path}: X must hold numbers, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise InputError(f"--data {path}: X holds NaN or inf (first at row {int(np.argwhere(~np.isfinite(X))[0][0])})")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0] or (y.ndim == 2 and y.shape[1] == 0):
        raise InputError(f"--data {path}: y must be (N,) labels or (N, C) targets with N = {X.shape[0]}, got {y.shape}")
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"--data {path}: 1-D y must be integer class labels, got dtype {y.dtype}")
        if y.min() < 0:
            raise InputError(f"--data {path}: labels must be >= 0, found {int(y.min())}")
    else:
        if not np.issubdtype(y.dtype, np.floating):
            raise InputError(f"--data {path}: 2-D y must be float targets, got dtype {y.dtype}")
        if not np.all(np.isfinite(y)):
            raise InputError(f"--data {path}: y holds NaN or inf")
    return Dataset(path.name, X.astype(np.float64), y if y.ndim == 1 else y.astype(np.float64))


def targets(dataset: Dataset, loss: str, num_outputs: int) -> np.ndarray:
    """What the loss compares against: labels for cross-entropy, (N, C) floats for MSE and BCE."""
    if loss == "bce":
        if dataset.has_labels:
            if dataset.num_outputs > 2 or num_outputs != 1:
                raise InputError("--loss bce takes labels 0/1 and an output width of 1 (use --layers ...,1)")
            return dataset.y.astype(np.float64)[:, None]
        if dataset.y.shape[1] != num_outputs or dataset.y.min() < 0 or dataset.y.max() > 1:
            raise InputError(f"--loss bce needs targets in [0, 1] with {num_outputs} columns, the output width")
        return dataset.y
    if loss == "cross_entropy":
        if not dataset.has_labels:
            raise InputError("--loss cross_entropy needs integer class labels y (N,), but the data has (N, C) targets")
        if dataset.num_outputs > num_outputs:
            raise InputError(f"label {dataset.num_outputs - 1} is out of range for an output width of {num_outputs}")
        return dataset.y.astype(np.int64)
    if dataset.has_labels:  # MSE on labels: regress the one-hot encoding
        if dataset.num_outputs > num_outputs:
            raise InputError(f"label {dataset.num_outputs - 1} is out of range for an output width of {num_outputs}")
        check_one_hot(dataset.num_outputs - 1, len(dataset.y), num_outputs)
        one_hot = np.zeros((len(dataset.y), num_outputs))  # (N, C), never a (C, C) identity to index
        one_hot[np.arange(len(dataset.y)), dataset.y] = 1.0
        return one_hot
    if dataset.y.shape[1] != num_outputs:
        raise InputError(f"targets have {dataset.y.shape[1]} columns but the output width is {num_outputs}")
    return dataset.y


def batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless mini-batch indices: shuffle, cut into batches, reshuffle each epoch.

    A short last batch is dropped so every step sees ``batch_size`` examples.
    """
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]
