"""``nn.Sequential`` built from the same ``MLPSpec``; weights travel by copy, never by sharing."""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from manual.mlp import check_state_dict
from manual.spec import MLPSpec

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative_slope=0.01, the manual side's slope
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}
LOSSES: dict[str, type[nn.Module]] = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss}


def build_model(spec: MLPSpec, dtype: torch.dtype = torch.float64, device: str = "cpu") -> nn.Sequential:
    """Linear → activation → … → Linear; ``dtype`` is passed explicitly (never the global default)."""
    layers: list[nn.Module] = []
    for index, fan_in, fan_out in spec.linears():
        if index > 0:
            layers.append(ACTIVATIONS[spec.activation]())
        layers.append(nn.Linear(fan_in, fan_out, dtype=dtype, device=device))
    return nn.Sequential(*layers)


def build_loss(spec: MLPSpec) -> nn.Module:
    """``reduction="mean"``, torch's default, which the manual losses follow."""
    return LOSSES[spec.loss]()


def load_weights(model: nn.Sequential, spec: MLPSpec, weights: Mapping[str, np.ndarray]) -> None:
    """Copy ``weights`` into ``model`` by name, after checking names and shapes.

    ``torch.from_numpy`` alone would share memory, so torch's in-place updates would rewrite the
    NumPy arrays and every comparison would be vacuous; ``copy_`` writes into torch's own storage.
    """
    check_state_dict(spec, weights)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(np.asarray(weights[name])))


def export_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters as NumPy copies, keyed by ``state_dict`` name."""
    return {name: param.detach().cpu().numpy().copy() for name, param in model.named_parameters()}
