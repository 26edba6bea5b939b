"""The mistakes a newcomer makes in calling a check, each answered in one line: the torch twin passed first,
an input or labels missing (``None``), labels one per row short, class indices as a column (each an
``InputError`` before any work), a loss returned as a 1-element array (compared as the number it holds, with a
note), arrays in another dtype than the check's (cast, with a note saying which dtype the check ran in), and
where ``check_model``'s curves went with the command that opens them (a note)."""

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.check.report import Failure
from compare.check.sandbox.guard import UserCodeError
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


def given(kind: str, name: str, value: Any, what: str) -> None:
    """``InputError`` for an array argument that is ``None`` (or an empty list of batches): ``what`` to pass."""
    if value is None or (isinstance(value, list | tuple) and not value):
        raise InputError(f"check_{kind}: {name} is {'None' if value is None else 'empty'}: pass {what}")


def labels_given(kind: str, rows: Any, labels: Any, rows_name: str, labels_name: str) -> None:
    """``InputError`` for rows or labels that are ``None``, labels fewer or more than the rows they label, or
    class indices given as a column (N, 1), which no torch loss takes as N labels."""
    given(kind, rows_name, rows, f"{rows_name}, one sample per row")
    if labels is None:
        raise InputError(
            f"check_{kind}: {labels_name} is None: pass the labels, one per row of {rows_name} "
            "(class indices (N,), or one-hot rows (N, C))"
        )
    for batch, label in zip(*(v if isinstance(v, list | tuple) else [v] for v in (rows, labels)), strict=False):
        n, m = np.shape(batch), np.shape(label)
        if n and m and n[0] != m[0]:
            raise InputError(f"check_{kind}: {m[0]} labels in {labels_name} for {n[0]} rows of {rows_name}")
        if len(m) == 2 and m[1] == 1 and np.asarray(label).dtype.kind in "iu":
            raise InputError(
                f"check_{kind}: {labels_name} has shape {m}: class indices go as (N,) ({labels_name}.ravel()), "
                "one-hot rows as (N, C)"
            )


def model_arguments(model: Any, torch_model: Any, X: Any, y: Any, batches: Any) -> None:
    """``check_model``'s: the twin second, and labels for X unless ``batches`` brings its own."""
    twin_second("model", model, torch_model)
    if batches is None:
        labels_given("model", X, y, "X", "y")


def scalar_loss(value: np.ndarray, notes: list[str], step: int, reference_shape: tuple[int, ...] = ()) -> np.ndarray:
    """A loss returned as a 1-element array (``np.array([0.31])``, ``(1, 1)`` from a ``keepdims`` sum), read as
    the 0-d number torch's loss is, and noted. Accepted rather than refused: it holds exactly one number,
    ``float(loss)`` reads it, every training loop treats it as the loss, and refusing it would make the user
    change code that is right; the note says what was done. A loss of more numbers where torch's is one (no
    reduction over the batch) is the finding ``shape``, saying so, before it is compared; where torch's loss
    is not one number (``reduction='none'``), the loss is compared as it is."""
    if value.shape == tuple(reference_shape) or tuple(reference_shape) != ():
        return value
    if value.size != 1:
        message = (
            f"shape: the loss, step {step}, loss: your loss returned an array of shape {value.shape} where torch's "
            "is one number; fix: reduce it over the batch as torch's loss does (reduction='mean': the mean)"
        )
        raise UserCodeError(Failure(step, "loss", "loss", np.inf, np.inf, problem="shape", message=message))
    note = f"your loss returned an array of shape {value.shape}: compared as the number it holds (float(loss) gives it)"
    if note not in notes:
        notes.append(note)
    return value.reshape(())


def _floating_dtype(value: Any) -> str | None:
    """The dtype of a floating array or tensor (``float32``, ``bfloat16``), ``None`` for anything else."""
    if isinstance(value, torch.Tensor):
        return str(value.dtype).removeprefix("torch.") if value.is_floating_point() else None
    try:
        kind = np.asarray(value).dtype
    except (TypeError, ValueError, RuntimeError):  # not array-like (a ragged list, an object that refuses)
        return None
    return str(kind) if kind.kind == "f" else None


def dtype_note(arrays: Mapping[str, Any], dtype: str) -> str | None:
    """Which of the user's floating arrays (or tensors) are not in the check's ``dtype`` and what was done: they
    were cast to it, and torch ran in it; ``None`` when all are."""
    found = {name: _floating_dtype(a) for name, a in arrays.items()}
    other = {name: kind for name, kind in found.items() if kind is not None and kind != dtype}
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
