"""The mistakes a newcomer makes in calling a check, each answered in one line: the torch twin passed first
(``InputError``: your code first, the twin second), labels missing or one per row short (``InputError``), a
loss returned as a 1-element array (compared as the number it holds, with a note), arrays in another dtype
than the check's (cast, with a note saying which dtype the check ran in), and where ``check_model``'s
curves went with the command that opens them (a note)."""

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.errors import InputError


def _torch_object(value: Any) -> bool:
    """A torch module or optimizer (or an optimizer's class): what goes second, never first."""
    return isinstance(value, nn.Module | torch.optim.Optimizer) or (
        isinstance(value, type) and issubclass(value, nn.Module | torch.optim.Optimizer)
    )


def twin_second(kind: str, user: Any, twin: Any) -> None:
    """``InputError`` when the torch twin came first and the user's code second. A user's own torch module
    with a ``backward`` of its own is the user's code, and stays where it is."""
    if _torch_object(user) and not callable(getattr(user, "backward", None)) and not _torch_object(twin):
        first = user.__name__ if isinstance(user, type) else type(user).__name__
        raise InputError(f"check_{kind}: your {kind} first, the torch twin second (the first is torch's {first})")


def labels_given(kind: str, rows: Any, labels: Any, rows_name: str, labels_name: str) -> None:
    """``InputError`` for labels that are ``None``, or fewer or more than the rows they label."""
    if labels is None:
        raise InputError(
            f"check_{kind}: {labels_name} is None: pass the labels, one per row of {rows_name} "
            "(class indices (N,), or one-hot rows (N, C))"
        )
    for batch, label in zip(*(v if isinstance(v, list | tuple) else [v] for v in (rows, labels)), strict=False):
        n, m = np.shape(batch), np.shape(label)
        if n and m and n[0] != m[0]:
            raise InputError(f"check_{kind}: {m[0]} labels in {labels_name} for {n[0]} rows of {rows_name}")


def model_arguments(model: Any, torch_model: Any, X: Any, y: Any, batches: Any) -> None:
    """``check_model``'s: the twin second, and labels for X unless ``batches`` brings its own."""
    twin_second("model", model, torch_model)
    if batches is None:
        labels_given("model", X, y, "X", "y")


def scalar_loss(value: np.ndarray, notes: list[str]) -> np.ndarray:
    """A loss returned as a 1-element array (``np.array([0.31])``), as the 0-d number torch's loss is; noted."""
    if value.ndim == 0 or value.size != 1:
        return value
    note = f"your loss returned an array of shape {value.shape}: compared as the number it holds (float(loss) gives it)"
    if note not in notes:
        notes.append(note)
    return value.reshape(())


def dtype_note(arrays: Mapping[str, Any], dtype: str) -> str | None:
    """Which of the user's floating arrays are not in the check's ``dtype`` and what was done: they were cast
    to it, and torch ran in it; ``None`` when all are."""
    other = {name: np.asarray(a).dtype for name, a in arrays.items() if np.asarray(a).dtype.kind == "f"}
    other = {name: kind for name, kind in other.items() if kind != np.dtype(dtype)}
    if not other:
        return None
    names = ", ".join(f"{name} ({kind})" for name, kind in other.items())
    return (
        f"your {names} checked in {dtype} (dtype='{dtype}'): cast to it, and torch ran in it; "
        f"dtype='{next(iter(other.values()))}' checks them as they are"
    )


def curves_note(tensorboard_dir: str | Path) -> str:
    """Where ``check_model``'s curves went, and the command that opens them."""
    command = f"backprop-parity board {shlex.quote(str(tensorboard_dir))}"
    return f"curves: {tensorboard_dir} (manual/, torch/, parity/); open them: {command}"
