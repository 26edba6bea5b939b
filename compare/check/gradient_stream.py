"""The default stream of real gradients an optimizer is checked on: the package's MLP (2-16-16-3, ReLU,
cross-entropy) training on the spirals, stepped by the torch optimizer under test.

Each step's gradient is computed at torch's current parameters, so the stream is torch's own training
run: the gradients shrink as the loss falls, and a schedule, bias corrections and the state's history
all act on numbers like a real run's. Both optimizers receive the same gradient (the user's a copy).
"""

import numpy as np
import torch
from torch import nn

from compare.inputs.data import spiral
from manual.init import init_state_dict
from manual.spec import MLPSpec
from torch_ref.model import build_model, load_weights

SPEC = MLPSpec((2, 16, 16, 3))
BATCH_SIZE = 60  # of the spiral's 300 points: mini-batch noise, as a real run has


class GradientStream:
    """``start`` (the initial parameters, torch's names and layout) and, per step, ``next_grads()``."""

    def __init__(self, dtype: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.data = spiral(rng)
        self.start = {name: value.astype(dtype) for name, value in init_state_dict(SPEC, rng).items()}
        self.model = build_model(SPEC, getattr(torch, dtype))
        load_weights(self.model, SPEC, self.start)
        self.loss = nn.CrossEntropyLoss()
        self.rng = rng
        self.dtype = dtype

    def next_grads(self) -> dict[str, np.ndarray]:
        """The gradient at the model's current parameters on the next mini-batch (each ``.grad`` set)."""
        index = self.rng.choice(len(self.data.X), BATCH_SIZE, replace=False)
        x = torch.from_numpy(self.data.X[index].astype(self.dtype))
        y = torch.from_numpy(self.data.y[index])
        for param in self.model.parameters():
            param.grad = None
        self.loss(self.model(x), y).backward()
        return {name: p.grad.detach().numpy().copy() for name, p in self.model.named_parameters()}
