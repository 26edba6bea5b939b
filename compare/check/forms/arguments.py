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
from compare.core.tolerances import TOLERANCES
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


def given(kind: str, name: str, value: Any, what: str, per_step: bool = True) -> None:
    """``InputError`` for an array argument that is ``None``, empty, or not numbers (a string; with
    ``per_step``, where a list is one batch per step, a list holding something else than arrays): ``what`` to
    pass."""
    if value is None or (isinstance(value, list | tuple) and not value):
        raise InputError(f"check_{kind}: {name} is {'None' if value is None else 'empty'}: pass {what}")
    per_step = per_step and isinstance(value, list | tuple)
    for batch in value if per_step else [value]:
        if per_step and not hasattr(batch, "shape"):
            raise InputError(
                f"check_{kind}: {name} is a list of {type(batch).__name__}s: pass an array (np.asarray({name})) "
                "for one batch, or a list of arrays, one batch per step"
            )
        if not isinstance(batch, torch.Tensor) and np.asarray(batch).dtype.kind not in "biuf":
            raise InputError(f"check_{kind}: {name} is {_what_it_is(batch)}, not numbers: pass {what}")


def _what_it_is(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


DTYPES = tuple(sorted({key[1] for key in TOLERANCES}))  # those the tolerance table has a tolerance for
NUMPY_DTYPES = tuple(dtype for dtype in DTYPES if hasattr(np, dtype))


def torch_dtype(kind: str, dtype: str) -> None:
    """``InputError`` for a ``dtype`` the tolerance table has no tolerance for (a check run in torch)."""
    if dtype not in DTYPES:
        raise InputError(f"check_{kind}: dtype={dtype!r}: one of {', '.join(DTYPES)}")


def settings(kind: str, dtype: str, steps: int | None) -> None:
    """``InputError`` for a ``dtype`` that NumPy and the tolerance table do not both know (bfloat16 is no NumPy
    dtype), or ``steps`` that is not a positive whole number (no step compares nothing)."""
    if dtype not in NUMPY_DTYPES:
        raise InputError(f"check_{kind}: dtype={dtype!r}: one of {', '.join(NUMPY_DTYPES)}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1):
        raise InputError(f"check_{kind}: steps={steps!r}: a whole number of steps, at least 1")


def a_dict(kind: str, name: str, value: Any, example: str) -> None:
    """``InputError`` for an argument that must be a dict (``hyperparameters``) and is not."""
    if not isinstance(value, Mapping):
        raise InputError(f"check_{kind}: {name} is {_what_it_is(value)}: a dict, {example}")


def labels_given(kind: str, rows: Any, labels: Any, rows_name: str, labels_name: str) -> None:
    """``InputError`` for rows or labels that are ``None``, labels fewer or more than the rows they label, or
    class indices given as a column (N, 1), which no torch loss takes as N labels."""
    per_step = kind != "model"  # check_model's X is one array, as a list too; the others' lists are steps
    given(kind, rows_name, rows, f"{rows_name}, one sample per row", per_step)
    what = f"the labels, one per row of {rows_name} (class indices (N,), or one-hot rows (N, C))"
    if labels is None:
        raise InputError(f"check_{kind}: {labels_name} is None: pass {what}")
    given(kind, labels_name, labels, what, per_step)
    listed = (
        v if per_step and isinstance(v, list | tuple) else [v if hasattr(v, "shape") else np.asarray(v)]
        for v in (rows, labels)
    )
    for batch, label in zip(*listed, strict=False):
        n, m = np.shape(batch), np.shape(label)
        if n and m and n[0] != m[0]:
            raise InputError(f"check_{kind}: {m[0]} labels in {labels_name} for {n[0]} rows of {rows_name}")
        if len(m) == 2 and m[1] == 1 and np.asarray(label).dtype.kind in "iu":
            raise InputError(
                f"check_{kind}: {labels_name} has shape {m}: class indices go as (N,) ({labels_name}.ravel()), "
                "one-hot rows as (N, C)"
            )


def class_labels(kind: str, torch_loss: Any, labels: Any, name: str) -> None:
    """``InputError`` for labels in floats, (N,), given to a loss that takes class indices as integers (torch's
    cross-entropy and negative log-likelihood raise on them, and so does a textbook loss indexing with them)."""
    if not isinstance(torch_loss, nn.CrossEntropyLoss | nn.NLLLoss):
        return
    for label in labels if isinstance(labels, list | tuple) and kind != "model" else [labels]:
        label = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if label.ndim == 1 and label.dtype.kind == "f":
            raise InputError(
                f"check_{kind}: {name} holds {label.dtype} of shape {label.shape}: torch's "
                f"{type(torch_loss).__name__} takes class indices as integers ({name}.astype(int)), or one-hot "
                "rows (N, C)"
            )


def targets_fit(scores: Any, targets: Any, torch_loss: Any) -> None:
    """``check_loss``'s: for scores (N, C), class indices below C, and float targets of the scores' shape (one-hot
    rows or probabilities); anything else is refused before any work, as no torch loss takes it. (A negative
    index may be a loss's ``ignore_index``, and scores of more axes have targets of other shapes: both pass.)"""
    class_labels("loss", torch_loss, targets, "targets")
    listed = (v if isinstance(v, list | tuple) else [v] for v in (scores, targets))
    for s, t in zip(*listed, strict=False):
        s_shape = tuple(np.shape(s))
        t = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if len(s_shape) != 2:
            continue
        if t.ndim == 1 and t.dtype.kind in "iu" and t.size and int(t.max()) >= s_shape[1]:
            raise InputError(f"check_loss: targets holds class {int(t.max())} for scores of {s_shape[1]} classes")
        if t.ndim == 2 and t.shape != s_shape:
            raise InputError(
                f"check_loss: targets has shape {t.shape} for scores of shape {s_shape}: one-hot rows or "
                "probabilities are of the scores' shape"
            )


def model_arguments(model: Any, twin: Any, torch_loss: Any, X: Any, y: Any, batches: Any, batch_size: Any) -> None:
    """``check_model``'s: the twin second, and labels for X unless ``batches`` brings its own (integers for a
    cross-entropy); a ``batch_size`` from 1 to the rows of X (a batch of none, or of more rows than X has,
    would never be drawn)."""
    twin_second("model", model, twin)
    if batches is not None:
        return
    labels_given("model", X, y, "X", "y")
    class_labels("model", torch_loss, y, "y")
    rows = len(np.asarray(X))
    if batch_size is not None and not (isinstance(batch_size, int | np.integer) and 1 <= batch_size <= rows):
        raise InputError(
            f"check_model: batch_size={batch_size!r}: from 1 to the {rows} rows of X (or None, all of X each step)"
        )


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


def model_arrays(X: Any, y: Any, batches: Any, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``check_model``'s arrays that are cast to the check's dtype, by name: X and y, or the first of ``batches``
    when they are a list (a generator is not read ahead), and a function's ``params``."""
    arrays = {"X": X, "y": y}
    if isinstance(batches, list | tuple) and batches and len(batches[0]) == 2:
        arrays = {"batches[0]'s x": batches[0][0], "batches[0]'s y": batches[0][1]}
    return {**arrays, **(params or {})}


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
