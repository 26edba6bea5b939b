"""The torch.nn twin of the manual MLP, and the torch.optim optimizer that matches its rule."""

from torch_ref.model import InjectedMasks, build_loss, build_model, export_weights, load_weights
from torch_ref.optim import build_optimizer, named_state
from torch_ref.twin import TorchTwin, build_twin

__all__ = [
    "InjectedMasks",
    "TorchTwin",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_twin",
    "export_weights",
    "load_weights",
    "named_state",
]
