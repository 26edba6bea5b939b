"""The torch.optim optimizer matching each manual optimizer, built from the same kwargs."""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from manual.optim import REGISTRY


def build_optimizer(name: str, model: nn.Module, hyperparameters: Mapping) -> torch.optim.Optimizer:
    """The ``torch.optim`` class registered for ``name`` (``manual.optim.REGISTRY``) over ``model``'s parameters.

    ``foreach=False`` selects the single-tensor path, the same one on CPU and GPU, whose
    formulas the manual optimizers follow.
    """
    torch_class = getattr(torch.optim, REGISTRY[name].torch_class)
    return torch_class(model.parameters(), **hyperparameters, foreach=False)


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
