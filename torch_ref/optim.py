"""The torch.optim optimizer of each optimizer name, built from the run's configuration alone.

The reference must not share the manual side's code: were its keyword arguments the manual rule's
``hyperparameters()``, a wrong default there (Adam's ε, momentum's μ) would build a torch optimizer with
the same mistake, and parity would hold. So the names, classes and the defaults that differ from
torch's own live here, and every keyword not given in the configuration takes torch's default.
"""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

# name → (torch.optim class, keyword arguments the name implies beyond torch's defaults)
TORCH_OPTIMIZERS: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
}


def build_optimizer(name: str, model: nn.Module, hyperparameters: Mapping) -> torch.optim.Optimizer:
    """``name``'s ``torch.optim`` class over ``model``'s parameters, with the keyword arguments the name
    implies, overridden by ``hyperparameters`` (those the run's configuration gives); torch's defaults for
    the rest.

    ``foreach=False`` selects the single-tensor path, the same one on CPU and GPU, whose
    formulas the manual optimizers follow.
    """
    class_name, implied = TORCH_OPTIMIZERS[name]
    return getattr(torch.optim, class_name)(model.parameters(), **{**implied, **hyperparameters}, foreach=False)


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
