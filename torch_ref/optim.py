"""The torch.optim optimizer of each optimizer name, built from the run's configuration alone.

The reference must not share the manual side's code: were its keyword arguments the manual rule's
``hyperparameters()``, a wrong default there (Adam's ε, momentum's μ) would build a torch optimizer with
the same mistake, and parity would hold. So the class and the keywords a name implies beyond torch's
defaults come from ``manual.optim.REGISTRY`` (``torch_class``, ``torch_kwargs``: data, not the rule's
code), and every keyword not given in the configuration takes torch's default.
"""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from manual.optim import REGISTRY


def build_optimizer(name: str, model: nn.Module, hyperparameters: Mapping) -> torch.optim.Optimizer:
    """``name``'s ``torch.optim`` class over ``model``'s parameters, with the keyword arguments the name
    implies, overridden by ``hyperparameters`` (those the run's configuration gives); torch's defaults for
    the rest.

    ``foreach=False`` selects the single-tensor path, the same one on CPU and GPU, whose
    formulas the manual optimizers follow.
    """
    entry = REGISTRY[name]
    kwargs = {**dict(entry.torch_kwargs), **hyperparameters}
    return getattr(torch.optim, entry.torch_class)(model.parameters(), **kwargs, foreach=False)


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
