"""Input files some faults need (weights, data), written on demand by ``faults --files DIR``."""

from collections.abc import Callable
from pathlib import Path

import numpy as np

from compare.inputs import data
from compare.inputs.npz import write_npz
from manual.init import init_state_dict
from manual.spec import MLPSpec

UNNORMALISED_SCALE = 1000.0  # the spiral in millimetres instead of metres


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
