"""The torch.optim optimizer matching each manual optimizer, built from the same kwargs."""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": torch.optim.SGD,  # SGD with momentum; the manual side defaults μ to 0.9
    "nesterov": torch.optim.SGD,  # nesterov=True; the manual side defaults μ to 0.9 and nesterov to True
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,  # in torch 2.13, Adam with decoupled_weight_decay=True
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,  # builds its state (step 0, sum s₀) in the constructor, not at step 1
}


def build_optimizer(name: str, model: nn.Module, hyperparameters: Mapping) -> torch.optim.Optimizer:
    """``torch.optim.<name>`` over ``model``'s parameters.

    ``foreach=False`` selects the single-tensor path, the same one on CPU and GPU, whose
    formulas the manual optimizers follow.
    """
    return OPTIMIZERS[name](model.parameters(), **hyperparameters, foreach=False)


def named_state(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict[str, np.ndarray | int | None]]:
    """Optimizer state as ``{parameter name: {state key: NumPy array}}``; ``step`` as an int.

    The arrays share the state's memory (on the CPU; a copy on another device): the next step
    overwrites them, so copy what must outlive it."""
    state: dict[str, dict[str, np.ndarray | int | None]] = {}
    for name, param in model.named_parameters():
        entries: dict[str, np.ndarray | int | None] = {}
        for key, value in optimizer.state.get(param, {}).items():
            if key == "step":
                entries[key] = int(value.item()) if isinstance(value, torch.Tensor) else int(value)
            elif isinstance(value, torch.Tensor):
                entries[key] = value.detach().cpu().numpy()
            else:
                entries[key] = value
        state[name] = entries
    return state
