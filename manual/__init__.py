"""A multilayer perceptron whose every derivative is written by hand, in NumPy only.

Shapes in this package use: N batch, D input features, H hidden width, C outputs,
I a layer's input width, O its output width.
"""

from manual.init import init_state_dict
from manual.losses import LOSSES, CrossEntropyLoss, MSELoss
from manual.mlp import MLP
from manual.spec import ACTIVATION_NAMES, LOSS_NAMES, MLPSpec

__all__ = [
    "ACTIVATION_NAMES",
    "LOSSES",
    "LOSS_NAMES",
    "MLP",
    "CrossEntropyLoss",
    "MLPSpec",
    "MSELoss",
    "init_state_dict",
]
