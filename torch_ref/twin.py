"""The whole torch side of a run in one call: model, loss, optimizer and schedule, from the same inputs
the manual side is built from. The checker and each data-parallel replica build it this way."""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer, lr_scheduler

from manual.spec import MLPSpec
from torch_ref import schedules
from torch_ref.model import build_loss, build_model, load_weights
from torch_ref.optim import build_optimizer


@dataclass
class TorchTwin:
    model: nn.Sequential
    loss: nn.Module
    optimizer: Optimizer
    schedule: lr_scheduler.LRScheduler | None


def build_twin(
    spec: MLPSpec,
    weights: Mapping[str, np.ndarray],
    optimizer: str,
    hyperparameters: Mapping,
    dtype: str,
    schedule: list | None = None,
    device: torch.device | str = "cpu",
) -> TorchTwin:
    """``weights`` are copied into the model (never shared); ``schedule`` is a parsed ``--lr-schedule``;
    ``hyperparameters`` are the torch keyword arguments the configuration gives (the rest: torch's)."""
    model = build_model(spec, getattr(torch, dtype), device)
    load_weights(model, spec, weights)
    torch_optimizer = build_optimizer(optimizer, model, hyperparameters)
    torch_schedule = schedules.build(schedule, torch_optimizer) if schedule else None
    return TorchTwin(model, build_loss(spec), torch_optimizer, torch_schedule)
