"""``nn.Sequential`` built from the same ``MLPSpec``; weights travel by copy, never by sharing."""

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from manual.mlp import check_state_dict
from manual.spec import MLPSpec, Node

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # negative_slope=0.01, the manual side's slope
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}
LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "bce": nn.BCEWithLogitsLoss,
}


def build_module(node: Node, spec: MLPSpec, dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    if node.kind == "linear":
        return nn.Linear(node.width_in, node.width_out, bias=node.bias, dtype=dtype, device=device)
    if node.kind == "batchnorm":
        return nn.BatchNorm1d(node.width_out, dtype=dtype, device=device)  # momentum 0.1, eps 1e-5
    if node.kind == "dropout":
        return nn.Dropout(spec.dropout)
    return ACTIVATIONS[node.kind]()


def build_model(spec: MLPSpec, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> nn.Sequential:
    """The spec's layout as torch modules; ``dtype`` is passed explicitly (never the global default)."""
    return nn.Sequential(*(build_module(node, spec, dtype, device) for node in spec.layout()))


def build_loss(spec: MLPSpec) -> nn.Module:
    """``reduction="mean"``, torch's default, which the manual losses follow."""
    return LOSSES[spec.loss]()


def load_weights(model: nn.Sequential, spec: MLPSpec, weights: Mapping[str, np.ndarray]) -> None:
    """Copy ``weights`` (parameters and buffers) into ``model`` by name, after checking names and shapes.

    ``torch.from_numpy`` alone would share memory, so torch's in-place updates would rewrite the
    NumPy arrays and every comparison would be vacuous; ``copy_`` writes into torch's own storage.
    """
    check_state_dict(spec, weights)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(torch.from_numpy(np.asarray(weights[name])))


def export_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's ``state_dict`` (parameters and buffers) as NumPy copies."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


class InjectedMasks:
    """Forward hooks that make each ``nn.Dropout`` use a mask drawn elsewhere.

    torch's RNG cannot draw the mask NumPy drew, so in training mode the hook replaces the module's
    output with ``input · noise``, where ``noise = mask / (1 − p)`` is built here from the injected
    boolean mask and the module's own ``p``, as torch's dropout builds it; only the random draw comes
    from the other side, so a wrong scale on that side still shows. In evaluation mode the module's
    own identity stands.
    """

    def __init__(self, model: nn.Sequential) -> None:
        self.masks: dict[int, torch.Tensor] = {}
        for index, module in enumerate(model):
            if isinstance(module, nn.Dropout):
                module.register_forward_hook(self._hook(index))

    def set(self, index: int, mask: np.ndarray, device: torch.device) -> None:
        self.masks[index] = torch.tensor(mask, device=device)  # a copy, never shared

    def _hook(self, index: int) -> Callable:
        def replace_mask(module: nn.Dropout, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            if not module.training:
                return None
            noise = self.masks[index].to(inputs[0].dtype).div_(1 - module.p)
            return inputs[0] * noise

        return replace_mask
