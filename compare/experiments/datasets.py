"""The experiments' data: the built-in synthetic sets of ``compare.inputs.data`` and two real ones kept in
this package (``data/README.md`` names their sources and licences). Nothing is ever downloaded.

Letters: N examples, D features.
"""

import gzip
from importlib import resources

import numpy as np

from compare.inputs import data
from compare.inputs.data import Dataset

__all__ = ["DESCRIPTIONS", "NAMES", "Dataset", "digits", "iris", "load", "split"]

NAMES = ("spiral", "xor", "iris", "digits")
DESCRIPTIONS = {
    "spiral": "3 interleaved 2-D spiral arms, 300 points (synthetic, from the seed)",
    "xor": "256 points in [-1, 1]², class 1 where exactly one coordinate is positive (synthetic)",
    "iris": "Fisher's Iris, 150 flowers × 4 measurements, 3 species (real; features standardised)",
    "digits": "UCI 8×8 handwritten digits, 1797 images × 64 pixels, 10 classes (real; pixels / 16)",
}


def _read_text(name: str) -> str:
    raw = resources.files("compare.experiments").joinpath("data", name).read_bytes()
    return (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("ascii")


def iris() -> Dataset:
    """Standardised to zero mean and unit variance per feature, so one learning rate suits all four."""
    rows = np.loadtxt(_read_text("iris.csv").splitlines()[1:], delimiter=",")  # (150, 5)
    X = rows[:, :4]  # (N, D) centimetres
    return Dataset("iris", (X - X.mean(axis=0)) / X.std(axis=0), rows[:, 4].astype(np.int64))


def digits() -> Dataset:
    """Pixel counts 0..16 scaled to [0, 1]."""
    rows = np.loadtxt(_read_text("digits.csv.gz").splitlines(), delimiter=",")  # (1797, 65)
    return Dataset("digits", rows[:, :64] / 16.0, rows[:, 64].astype(np.int64))


def load(name: str, rng: np.random.Generator) -> Dataset:
    """``rng`` generates the synthetic sets; the real ones are fixed."""
    if name == "iris":
        return iris()
    if name == "digits":
        return digits()
    return data.builtin(name, rng)


def split(dataset: Dataset, n_train: int, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    """A random split: ``n_train`` examples to train on, the rest to validate on."""
    if not 1 <= n_train < len(dataset.X):
        raise ValueError(f"a training set of {n_train} leaves no validation set out of {len(dataset.X)} examples")
    order = rng.permutation(len(dataset.X))
    train, val = order[:n_train], order[n_train:]
    return (
        Dataset(f"{dataset.name}/train", dataset.X[train], dataset.y[train]),
        Dataset(f"{dataset.name}/validation", dataset.X[val], dataset.y[val]),
    )
