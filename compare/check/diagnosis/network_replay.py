"""Name the mistake in a whole network that exposes no layers (a function, a model whose ``loss`` returns
the gradients, a column-vector network): torch's network rebuilt from the package's NumPy layers is replayed
on the step's batch with each catalog mistake (and each pair of them: two mistakes at once are both named),
and with each loss convention (a loss that is torch's times C/2, C or N scales every gradient alike). The
candidate whose loss and every parameter gradient reproduce the user's is the diagnosis.

A network the package cannot rebuild (a layer it does not have, dropout) is not diagnosed this way.
"""

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import compare.check.diagnosis.conventions as conventions
from compare.check.diagnosis.known_mistakes import LOSSES, closest, manual_layer
from compare.check.report import Diagnosis
from compare.faults.catalog import CATALOG_LIST

Batch = tuple[np.ndarray, np.ndarray]


def _layer_faults(start: nn.Sequential) -> list:
    kinds = {type(manual_layer(module)) for module in start}
    return [fault for fault in CATALOG_LIST if fault.override.layer_base in kinds and fault.override.loss is None]


def _loss_faults(torch_loss: Any) -> list:
    base = LOSSES.get(type(torch_loss))
    if base is None:
        return []
    return [
        fault for fault in CATALOG_LIST if fault.override.loss is not None and issubclass(fault.override.loss, base)
    ]


def _torch_loss_grad(torch_loss: Callable, scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    st = torch.from_numpy(scores.copy()).requires_grad_(True)
    target = torch.from_numpy(np.asarray(y).copy())
    loss = torch_loss(st, target.to(st.dtype) if target.is_floating_point() else target)
    loss.backward()
    return float(loss.detach()), st.grad.numpy()


def _run(start: nn.Sequential, faults: tuple, torch_loss: Callable, batch: Batch) -> tuple[float, dict]:
    """One forward and backward of torch's network as the package's layers with ``faults`` in them."""
    x, y = batch
    layers = [manual_layer(module) for module in start]
    loss_fault = None
    for fault in faults:
        if fault.override.layer_base is not None:
            layers = fault.override.layers(layers)
        else:
            loss_fault = fault
    out = x.copy()
    for layer in layers:
        out = layer.forward(out)
    if loss_fault is not None:
        candidate = loss_fault.override.loss()
        labels = y.argmax(axis=1) if isinstance(torch_loss, nn.CrossEntropyLoss) and np.ndim(y) == 2 else y
        loss, dout = float(candidate.forward(out.copy(), labels)), candidate.backward()
    else:
        loss, dout = _torch_loss_grad(torch_loss, out, y)
    for layer in reversed(layers):
        dout = layer.backward(dout)
    grads = {f"{i}.{key}": value for i, layer in enumerate(layers) for key, value in layer.grads.items()}
    return loss, grads


def _pairs(user_loss: Any, user_grads: Mapping[str, Any], loss: float, grads: Mapping[str, Any], k: float = 1.0):
    pairs = [(user_loss, np.float64(loss) * k)]
    return pairs + [(value, None if name not in grads else k * grads[name]) for name, value in user_grads.items()]


def diagnose_network(
    start: nn.Sequential, torch_loss: Callable, batch: Batch, user_loss: Any, user_grads: Mapping[str, Any], dtype: str
) -> Diagnosis | None:
    """``user_grads`` in torch's names and layout; ``batch`` the step's (x, y) as torch received it."""
    if any(manual_layer(module) is None or isinstance(module, nn.Dropout) for module in start):
        return None
    singles = [(fault,) for fault in _layer_faults(start) + _loss_faults(torch_loss)]
    layer_pairs = list(itertools.combinations(_layer_faults(start), 2))
    loss_pairs = [(a, b) for a in _layer_faults(start) for b in _loss_faults(torch_loss)]
    with np.errstate(all="ignore"):
        for faults in [*singles, *loss_pairs, *layer_pairs]:
            try:
                loss, grads = _run(start, faults, torch_loss, batch)
            except Exception:  # a candidate that cannot run on this network does not match
                continue
            worst = closest(_pairs(user_loss, user_grads, loss, grads), dtype)
            if worst is not None:
                names = " and ".join(fault.name for fault in faults)
                fix = "; ".join(fault.fix for fault in faults)
                return Diagnosis(names, "; ".join(fault.description for fault in faults), worst, fix=fix)
        return _scaled(start, torch_loss, batch, user_grads, dtype)


def _scaled(start: nn.Sequential, torch_loss: Callable, batch: Batch, user_grads: Mapping, dtype: str):
    """A loss convention: every gradient torch's times C/2, C or N (the loss value is torch's own here)."""
    loss, grads = _run(start, (), torch_loss, batch)
    widths = [module.out_features for module in start if isinstance(module, nn.Linear)]
    n, c = len(batch[0]), (widths[-1] if widths else 1)  # C: the network's outputs (labels may be indices)
    for convention, factor in conventions.LOSS_SCALES:
        k = factor(n, c)
        if k == 1:
            continue
        worst = closest(_pairs(None, user_grads, loss, grads, k), dtype)
        if worst is not None:  # closest() is None past the grad tolerance
            return convention.diagnosis(worst, torch=type(torch_loss).__name__, k=k)
    return None
