"""Name the mistake of a layer, a loss or a model's piece: replay the failing part with each known mistake,
and report the one that reproduces the user's numbers within tolerance (an optimizer's:
``compare.check.diagnosis.optimizer_mistakes``).

The candidates are the fault catalog's pieces (``compare.faults``: a layer or a loss with the minimum
overridden) and the conventions of ``compare.check.diagnosis.conventions``, each built from the same
starting values as torch's piece and run on the very inputs the user's code got.
A candidate matches when every tensor the user's code produced agrees with the candidate's to the
tolerance of the check (the user's code is then that mistake, to rounding).
"""

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
from torch import nn

import compare.check.diagnosis.conventions as conventions
from compare.check.report import Diagnosis
from compare.core.metrics import diff
from compare.core.tolerances import tolerance
from compare.faults.catalog import CATALOG_LIST
from manual import layers as manual_layers
from manual import losses as manual_losses


def manual_layer(module: nn.Module) -> manual_layers.Node | None:
    """The package's NumPy layer equal to ``module`` (its values copied), or ``None`` for other modules."""

    def value(tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    if type(module) is nn.Linear:
        return manual_layers.Linear(value(module.weight), None if module.bias is None else value(module.bias))
    if type(module) is nn.BatchNorm1d and module.affine and module.track_running_stats:
        return manual_layers.BatchNorm1d(
            value(module.weight), value(module.bias), value(module.running_mean), value(module.running_var),
            value(module.num_batches_tracked), module.momentum, module.eps,
        )  # fmt: skip
    simple = {nn.ReLU: manual_layers.ReLU, nn.Sigmoid: manual_layers.Sigmoid, nn.Tanh: manual_layers.Tanh}
    if type(module) in simple:
        return simple[type(module)]()
    if type(module) is nn.LeakyReLU:
        return manual_layers.LeakyReLU(module.negative_slope)
    if type(module) is nn.Dropout:
        return manual_layers.Dropout(module.p, FixedDraw(None))
    return None


class FixedDraw:
    """A stand-in for a random generator whose ``random(shape)`` gives 1 where ``mask`` keeps a unit and 0
    where it drops one, so ``Dropout``'s ``random(shape) >= p`` redraws exactly the user's mask."""

    def __init__(self, mask: np.ndarray | None) -> None:
        self.mask = mask

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.where(np.broadcast_to(self.mask, shape), 1.0, 0.0)


def closest(user: Iterable[tuple[Any, Any]], dtype: str, stage: str = "grad") -> float | None:
    """The worst ``max_rel`` over (user value, candidate value) pairs, or ``None`` past the tolerance."""
    worst = 0.0
    for mine, theirs in user:
        if mine is None:
            continue
        if theirs is None:
            return None
        mine, theirs = np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        if mine.shape == theirs.shape and not np.all(np.isfinite(mine)):
            # A non-finite result is reproduced when the same elements are NaN or ±inf and the rest agree.
            same = np.array_equal(np.isnan(mine), np.isnan(theirs)) and np.array_equal(np.isinf(mine), np.isinf(theirs))
            if not same or not np.array_equal(mine[np.isinf(mine)], theirs[np.isinf(theirs)]):
                return None
            finite = np.isfinite(mine)
            mine, theirs = mine[finite], theirs[finite]
        result = diff(mine, theirs)
        if result.problem is not None or result.max_rel > tolerance(dtype, stage).max_rel:
            return None
        worst = max(worst, result.max_rel)
    return worst


def _replay_layer(candidate: manual_layers.Node, runs: Sequence) -> list[tuple[Any, Any]]:
    pairs = []
    for run in runs:
        if isinstance(candidate, manual_layers.Dropout):
            candidate.rng = FixedDraw(run.mask)  # the user's mask, drawn again
        out = candidate.forward(run.x.copy())
        dx = candidate.backward(run.dout.copy())
        theirs = {"out": out, "dx": dx, **candidate.grads}
        for key, value in candidate.buffers.items():
            theirs[key] = int(value) if value.dtype.kind in "iu" else value.copy()
        pairs.extend((mine, theirs.get(key)) for key, mine in run.tensors.items())
    return pairs


def _layer_conventions(start: nn.Module, user: Any) -> list[tuple[Diagnosis, manual_layers.Node]]:
    """(the convention, torch's layer with the user's value) for each convention the user's layer may follow."""
    found = []
    settings = conventions.layer_settings(start, user)
    if settings:
        changed = copy.deepcopy(start)
        for name, value in settings.items():
            setattr(changed, name, value)
        defaults = {name: getattr(start, name) for name in settings}
        found.append((conventions.setting_diagnosis("layer", type(start).__name__, settings, defaults, 0.0), changed))
    if type(start) is nn.Dropout and 0.0 < start.p < 1.0:
        found.append((conventions.dropout_keep_diagnosis(start.p, 0.0), nn.Dropout(1.0 - start.p)))
    names = conventions.HARD_CODED.get(type(start).__name__, {})
    defaults = {name: getattr(start, name) for name in names if isinstance(getattr(start, name, None), float)}
    stated = {name: conventions.user_setting(user, name) for name in names} if user is not None else {}
    for diagnosis, values in conventions.hard_coded("layer", type(start).__name__, defaults, stated):
        changed = copy.deepcopy(start)
        for name, value in values.items():
            setattr(changed, name, value)
        found.append((diagnosis, changed))
    return [(diagnosis, manual_layer(module)) for diagnosis, module in found if manual_layer(module) is not None]


def diagnose_layer(start: nn.Module, runs: Sequence, report, dtype: str, user: Any = None) -> Diagnosis | None:
    """A convention of the user's (``compare.check.diagnosis.conventions``) or the catalog's layer mistake
    (``compare.faults.layers``) that reproduces the user's layer."""
    if manual_layer(start) is None:
        return None
    for diagnosis, candidate in _layer_conventions(start, user):
        worst = closest(_replay_layer(candidate, runs), dtype)
        if worst is not None:
            return replace(diagnosis, max_rel=worst)
    base = type(manual_layer(start))
    for fault in CATALOG_LIST:
        if fault.override.layer_base is not base:
            continue
        try:
            candidate = fault.override.make_layer(manual_layer(start))
            worst = closest(_replay_layer(candidate, runs), dtype)
        except Exception:  # a candidate that cannot run on these inputs does not match
            continue
        if worst is not None:
            return Diagnosis(fault.name, fault.description, worst, fix=fault.fix)
    return None


LOSSES: dict[type, type] = {
    nn.CrossEntropyLoss: manual_losses.CrossEntropyLoss,
    nn.MSELoss: manual_losses.MSELoss,
    nn.BCEWithLogitsLoss: manual_losses.BCEWithLogitsLoss,
}


def diagnose_loss(
    torch_loss: nn.Module, runs: Sequence[tuple[np.ndarray, np.ndarray, Any, Any]], dtype: str
) -> Diagnosis | None:
    """The catalog's loss mistake (``compare.faults.losses``), or two of them at once (one in the value, one
    in the gradient: the two classes combined), that reproduces the user's loss.

    ``runs``: per step, (scores, labels as the package's loss takes them, the user's loss, the user's
    dL/dscores)."""
    base = LOSSES.get(type(torch_loss))
    if base is None or getattr(torch_loss, "reduction", "mean") != "mean":
        return None
    faults = [f for f in CATALOG_LIST if f.override.loss is not None and issubclass(f.override.loss, base)]
    combined = [(f,) for f in faults] + list(itertools.combinations(faults, 2))
    for chosen in combined:
        worst = _replay_loss(tuple(fault.override.loss for fault in chosen), runs, dtype)
        if worst is not None:
            names = " and ".join(fault.name for fault in chosen)
            fix = "; ".join(fault.fix for fault in chosen)
            return Diagnosis(names, "; ".join(fault.description for fault in chosen), worst, fix=fix)
    return None


def _replay_loss(classes: tuple[type, ...], runs: Sequence, dtype: str) -> float | None:
    pairs: list[tuple[Any, Any]] = []
    try:
        cls = classes[0] if len(classes) == 1 else type("Combined", classes, {})
        with np.errstate(all="ignore"):
            for scores, labels, loss, dscores in runs:
                candidate = cls()
                value = candidate.forward(scores.copy(), labels)
                pairs += [(loss, np.float64(value)), (dscores, candidate.backward())]
    except Exception:  # the candidate cannot run on these inputs (or the two cannot combine): no match
        return None
    return closest(pairs, dtype, "loss")


def piece_of(failure, last: int) -> str | None:
    """The piece a failing tensor names: ``loss``, or ``<i>`` for layer i (``<i>.out`` in the forward stage:
    layer i; dL/d``<i>.out``: layer i + 1, or the loss after the last layer; ``<i>.weight`` or a buffer:
    layer i); ``None`` for the optimizer's stages."""
    prefix, _, key = failure.tensor.partition(".")
    if failure.stage == "loss" or (failure.stage == "grad" and failure.tensor == f"{last}.out"):
        return "loss"
    if not prefix.isdigit() or failure.stage not in ("forward", "grad", "state"):
        return None
    return str(int(prefix) + 1 if failure.stage == "grad" and key == "out" else int(prefix))


def piece_inputs(start: nn.Sequential, torch_loss, recorded, grads: Mapping, piece: str, buffers: Mapping | None):
    """What the piece received and what the user's piece made of it, or ``None`` when not recorded."""
    last = len(start) - 1
    if piece == "loss":
        scores = recorded.outputs.get(f"{last}.out")
        if scores is None or recorded.targets is None or recorded.output_grads.get(f"{last}.out") is None:
            return None
        targets = recorded.targets
        labels = (
            targets.argmax(axis=1) if isinstance(torch_loss, nn.CrossEntropyLoss) and targets.ndim == 2 else targets
        )
        return [(scores, labels, recorded.loss, recorded.output_grads.get(f"{last}.out"))]
    index = int(piece)
    x = recorded.input if index == 0 else recorded.outputs.get(f"{index - 1}.out")
    dout = recorded.output_grads.get(f"{index}.out")
    if x is None or dout is None:
        return None
    tensors = {"out": recorded.outputs.get(f"{index}.out")}
    if index > 0:
        tensors["dx"] = recorded.output_grads.get(f"{index - 1}.out")
    for name, value in {**grads, **(buffers or {})}.items():
        module, _, param = name.partition(".")
        if module == str(index):
            tensors[param] = value
    mask = getattr(recorded, "masks", {}).get(index)  # a dropout's draw, as check_model found it
    return [SimpleNamespace(x=x, dout=dout, tensors=tensors, mask=mask)]


def departs(start: nn.Sequential, torch_loss, recorded, grads: Mapping, piece: str, dtype: str, buffers=None) -> bool:
    """Whether the user's piece departs on its own: torch's piece, replayed on what the user's received,
    does not reproduce what it made (a piece downstream of a departing one inherits its departure only)."""
    runs = piece_inputs(start, torch_loss, recorded, grads, piece, buffers)
    if runs is None:
        return True
    try:
        with np.errstate(all="ignore"):
            if piece == "loss":
                base = LOSSES.get(type(torch_loss))
                return base is None or _replay_loss((base,), runs, dtype) is None
            layer = manual_layer(start[int(piece)])
            return layer is None or closest(_replay_layer(layer, runs), dtype) is None
    except Exception:  # torch's piece cannot be replayed here: count the piece as departing
        return True


def diagnose_model(
    start: nn.Sequential,
    torch_loss: nn.Module,
    recorded,
    grads: Mapping,
    failure,
    dtype: str,
    buffers: Mapping | None = None,
):
    """The layer or loss mistake behind a failure at step 1 of a model whose layers were recorded: the piece
    the failing tensor names (``piece_of``) is replayed on the inputs it received; ``buffers``: the running
    statistics the user's layers keep, by torch's names. ``recorded``: the ``compare.check.model_side.Recorder``."""
    piece = piece_of(failure, len(start) - 1)
    problem = failure.diff.problem if hasattr(failure, "diff") else failure.problem  # a Check or a Failure
    if piece is None or (problem or "").startswith("missing"):
        return None  # nothing of the user's to reproduce
    runs = piece_inputs(start, torch_loss, recorded, grads, piece, buffers)
    if runs is None:
        return None
    if piece == "loss":
        return diagnose_loss(torch_loss, runs, dtype)
    return diagnose_layer(start[int(piece)], runs, None, dtype)
