"""The scale a difference is measured against, for tensors whose own size can mislead.

``max_rel = max|Δ| / max(max|reference|, floor)``. Most tensors use their own scale (floor 0).
But a node can produce a result much smaller than the terms it combined: a ReLU that zeroes most
of a batch, a weight gradient Σ dout·x whose terms cancel, the gradient through BatchNorm (which
is orthogonal to the batch mean by construction). Rounding error scales with the *terms*, not with
the result, so for those the floor is the magnitude of the terms, computed from torch's tensors:

* forward, output of a Linear: max|x|·max|W| + max|b|; of an activation: max|x|; of Dropout: max|x|/(1 − p);
* the loss: max|z| for cross-entropy and BCE on logits z, (max|ŷ| + max|y|)² for MSE;
* dL/d(input) of a Linear: max|g|·max|W|; of an activation: max|g|; of Dropout: max|g|/(1 − p);
  of BatchNorm (training): max|g|·max|γ|/min √(σ² + ε);
* parameter gradients, Linear: weight max|g|·max|x|, bias max|g|; BatchNorm: weight max|g|·max|x̂|, bias max|g|;

where x is the node's input and g the scale of the gradient arriving at its output: its own size or,
if larger, its floor, so that the floors travel back through the chain rule. Likewise max|x| is the
input's own size or, if larger, its forward floor, so that cancellation in an earlier layer travels
forward (BatchNorm's output then inherits its input's floor times max|γ|/min √(σ² + ε)). The chain starts at the
loss: dL/d(prediction) is softmax − one-hot (cross-entropy), σ(z) − y (BCE) or 2(ŷ − y) (MSE), over
the mean's count, and near a minimum those terms cancel while their size does not. A wrong formula is off by
a fraction of the terms, so it still shows; only rounding noise on a cancelled result is excused.

Optimizer state inherits its gradient's relative error: multiplied by the gradient's conditioning
κ = max(1, floor / max|g|), and doubled for state built from g² (exp_avg_sq, max_exp_avg_sq,
square_avg, sum), since squaring doubles a relative error. The state's floor is that amplification
times its own scale.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from manual.optim import SQUARED_STATE

# SyncBatchNorm (the data-parallel BatchNorm on GPUs) is a sibling of BatchNorm1d, not a subclass.
BATCHNORMS = (nn.BatchNorm1d, nn.SyncBatchNorm)


def amax(tensor: torch.Tensor | np.ndarray | None) -> float:
    """``max|tensor|`` in one pass, with no ``|tensor|`` temporary (0 for none or empty; NaN if any NaN); a
    NumPy array (the JAX side's) is read through a torch view of it."""
    if isinstance(tensor, np.ndarray):
        tensor = torch.from_numpy(tensor)
    if tensor is None or tensor.numel() == 0:
        return 0.0
    low, high = torch.aminmax(tensor.detach())
    return max(-float(low), float(high))


Measure = Callable[[Any], float]  # ``amax`` or a pass's ``Amax``


class Amax:
    """``amax`` remembered per tensor, for one pass whose tensors no longer change: the floors read a weight,
    a layer's input and a gradient several times (a Linear's weight in its forward and its input-gradient
    floor; its input in both of its own floors)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, float]] = {}  # id → (the tensor, held so that its id stays its own; amax)

    def __call__(self, tensor: torch.Tensor | np.ndarray | None) -> float:
        if tensor is None:
            return 0.0
        seen = self._seen.get(id(tensor))
        if seen is None:
            seen = self._seen[id(tensor)] = (tensor, amax(tensor))
        return seen[1]


def _batch_stats(module: nn.BatchNorm1d | nn.SyncBatchNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂, 1/√(σ² + ε)) of a training-mode BatchNorm from its input."""
    x = x.detach()
    inv_std = 1.0 / torch.sqrt(x.var(dim=0, unbiased=False) + module.eps)
    return (x - x.mean(dim=0)) * inv_std, inv_std


def forward_floor(module: nn.Module, x: torch.Tensor, x_floor: float = 0.0, amax: Measure = amax) -> float:
    """``x_floor``: the floor of the module's input itself, so that cancellation in an earlier layer is
    carried forward (an input that is small only because its terms cancelled still carries their error);
    ``amax``: how max|·| is taken (a pass's ``Amax``, say)."""
    scale = max(amax(x), x_floor)
    if isinstance(module, nn.Linear):
        return scale * amax(module.weight) + amax(module.bias)
    if isinstance(module, BATCHNORMS):
        return x_floor * amax(module.weight) * amax(_batch_stats(module, x)[1]) if x_floor else 0.0
    if isinstance(module, nn.Dropout):
        return scale / (1.0 - module.p)
    return scale  # an activation: |f(x)| ≤ |x| for every one here, up to sigmoid's offset


def loss_floor(loss: nn.Module, prediction: torch.Tensor, target: np.ndarray, amax: Measure = amax) -> float:
    """The terms of the loss: logsumexp(z) and z_y (cross-entropy), max(z, 0) and z·y (BCE), ŷ² and y² (MSE).
    A well-fit batch has a small loss made of large, cancelling terms."""
    if isinstance(loss, nn.MSELoss):
        terms = amax(prediction) + float(np.max(np.abs(target)))
        return terms * terms  # (not ** 2, which raises on overflow where * gives inf)
    return amax(prediction)


def loss_grad_floor(loss: nn.Module, prediction: torch.Tensor, target: np.ndarray) -> float:
    """The terms of dL/d(prediction): softmax and one-hot (cross-entropy), σ(z) and y (BCE), ŷ and y (MSE),
    each divided by the mean's count. Near a minimum their difference cancels; they do not."""
    count = prediction.shape[0] if isinstance(loss, nn.CrossEntropyLoss) else prediction.numel()
    if isinstance(loss, nn.MSELoss):
        return 2.0 * (amax(prediction) + float(np.max(np.abs(target)))) / count
    return 1.0 / count  # probabilities and labels are at most 1


def input_grad_floor(module: nn.Module, x: torch.Tensor, g: float, amax: Measure = amax) -> float:
    """``g``: the scale of the gradient arriving at the module's output (its own size or its floor)."""
    if isinstance(module, nn.Linear):
        return g * amax(module.weight)
    if isinstance(module, BATCHNORMS):
        return g * amax(module.weight) * amax(_batch_stats(module, x)[1])
    if isinstance(module, nn.Dropout):
        return g / (1.0 - module.p)
    return g


def param_grad_floors(
    module: nn.Module, x: torch.Tensor, g: float, x_floor: float = 0.0, amax: Measure = amax
) -> dict[str, float]:
    """``x_floor``: the input's own floor (see ``forward_floor``)."""
    if isinstance(module, nn.Linear):
        return {"weight": g * max(amax(x), x_floor), "bias": g}
    if isinstance(module, BATCHNORMS):
        x_hat, inv_std = _batch_stats(module, x)
        return {"weight": g * max(amax(x_hat), x_floor * amax(inv_std)), "bias": g}
    return {}


QUADRATIC_STATE = SQUARED_STATE  # registered with each optimizer (manual.optim.REGISTRY)


def conditioning(floor: float, grad: torch.Tensor | None) -> float:
    """κ ≥ 1: how many times larger than the gradient itself were the terms that produced it."""
    scale = amax(grad)
    return max(1.0, floor / scale) if scale > 0 else 1.0


def state_amplification(key: str, kappa: float) -> float:
    return kappa * (2.0 if key in QUADRATIC_STATE else 1.0)
