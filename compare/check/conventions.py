"""Conventions, not mistakes: a setting of the user's that differs from torch's default, found by replaying
torch's own rule with the user's value; and a loss that is torch's times a known constant. Each is named with
the value that reproduces the user's numbers and the one-line fix.

* a layer's ``eps`` (BatchNorm 1e-6 vs torch's 1e-5), read from its config dict or attribute;
* a dropout ``p`` that is the keep probability (``nn.Dropout(0.2)`` drops 20%);
* an optimizer's ε, betas, momentum, α (``epsilon``, ``beta1``/``beta2``, ``decay_rate``: torch's names
  through ``compare.check.optimizer_forms.CONFIG_NAMES``), e.g. Adam's 1e-7 vs torch's 1e-8;
* a loss that is torch's times C/2 (½·Σ per sample vs ``MSELoss``'s mean over all elements), times C (a
  multiclass SVM that torch's ``MultiMarginLoss`` divides by the number of classes), times N (a sum where
  torch averages), 1/N (a mean where torch sums), ½ (½·Σ against ``MSELoss(reduction='sum')``);
* a value hard-coded in the user's code, found by replaying torch's rule with the usual ones
  (``HARD_CODED``): an optimizer's ε (+1e-7), BatchNorm's ε (1e-6, 1e-3) and momentum (Keras' 0.99);
* L2 regularisation in the user's loss (CS231n's ``reg``): every departing gradient is torch's plus λ·θ.

Each ``Diagnosis`` carries its own ``fix``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from compare.check.report import Diagnosis

LAYER_SETTINGS = ("eps",)  # a layer setting torch's module has under the same name


def user_setting(obj: Any, name: str) -> Any:
    """``name`` in the user's config dict (a functional layer's), its ``hyperparameters`` dict, or attribute."""
    for holder in (getattr(obj, "config", None), getattr(obj, "hyperparameters", None)):
        if isinstance(holder, Mapping) and name in holder:
            return holder[name]
    return getattr(obj, name, None)


def layer_settings(start: nn.Module, user: Any) -> dict[str, float]:
    """The user's values of torch's settings where they differ from the module's."""
    found = {}
    for name in LAYER_SETTINGS:
        mine, theirs = user_setting(user, name), getattr(start, name, None)
        if isinstance(mine, int | float) and isinstance(theirs, int | float) and mine != theirs:
            found[name] = float(mine)
    return found


def setting_diagnosis(kind: str, torch_name: str, values: Mapping[str, Any], defaults: Mapping[str, Any], worst: float):
    """``your eps is 1e-07; torch's Adam has eps=1e-08: pass eps=1e-07 to the twin, or use 1e-08``."""
    parts = [f"your {name} is {values[name]:g}; torch's {torch_name} has {name}={defaults[name]:g}" for name in values]
    fix = ", ".join(f"{name}={values[name]:g}" for name in values)
    use = ", ".join(f"{defaults[name]:g}" for name in values)
    line = f"pass {fix} to the twin, or use {use} in your {kind}"
    return Diagnosis(f"convention:{'+'.join(values)}", f"{'; '.join(parts)}: {line}", worst, fix=line)


def dropout_keep_diagnosis(p: float, worst: float) -> Diagnosis:
    fix = f"pass nn.Dropout({1 - p:g}) to the twin, or drop with probability p (mask = rand >= p, scaled by 1/(1 - p))"
    return Diagnosis(
        "convention:dropout-keep-probability",
        f"your p ({p:g}) is the keep probability: nn.Dropout({p:g}) drops {p:.0%} of the units; {fix}",
        worst,
        fix=fix,
    )


LOSS_SCALES = (  # (name, k from the batch size n and the classes c, what it is; the fix)
    ("half-sum-per-sample", lambda n, c: c / 2, "your loss is ½·Σ over the outputs per sample, {torch} averages over "
     "all elements: yours is torch's ×C/2 = {k:g}", "divide by {k:g}, or pass a twin of ½·Σ per sample"),
    ("per-class-mean", lambda n, c: c, "{torch} divides by the number of classes C as well as by N: yours is "
     "torch's ×C = {k:g}", "divide your loss and dscores by {k:g}, or multiply the twin's by {k:g}"),
    ("sum-reduction", lambda n, c: n, "your loss sums over the batch, {torch} averages: yours is torch's ×N = {k:g}",
     "divide by the batch size, or pass reduction='sum' to the twin"),
    ("mean-reduction", lambda n, c: 1 / n, "your loss averages over the batch, {torch} sums (reduction='sum'): "
     "yours is torch's ×1/N = {k:g}", "multiply by the batch size, or pass reduction='mean' to the twin"),
    ("half-of-sum", lambda n, c: 0.5, "your loss is ½·Σ, {torch} has no ½ (MSELoss(reduction='sum') is Σ): yours "
     "is torch's ×½", "drop the ½ (and the gradient's matching factor), or halve the twin's loss"),
    ("half-sum", lambda n, c: n * c / 2, "your loss is ½·Σ over everything, {torch} averages over all elements: ×N·C/2 "
     "= {k:g}", "divide by {k:g}"),
)  # fmt: skip


def scale_diagnosis(name: str, text: str, fix: str, torch_name: str, k: float, worst: float) -> Diagnosis:
    """A ``LOSS_SCALES`` entry as a diagnosis: what it is, then its fix."""
    line = fix.format(torch=torch_name, k=k)
    return Diagnosis(f"convention:{name}", f"{text.format(torch=torch_name, k=k)}; {line}", worst, fix=line)


def loss_scale_diagnosis(
    torch_loss: Any, runs: Sequence[tuple[np.ndarray, float, Any, Any, Any]], tolerance: float
) -> Diagnosis | None:
    """``runs``: per step (scores, torch's loss, torch's dscores, the user's loss, the user's dscores): the
    known constant k with user = k·torch for both, within ``tolerance``."""
    torch_name = type(torch_loss).__name__
    for name, factor, text, fix in LOSS_SCALES:
        worst = 0.0
        for scores, loss, dscores, mine, dmine in runs:
            n, c = (scores.shape[0], scores.shape[1]) if np.ndim(scores) == 2 else (len(scores), 1)
            k = factor(n, c)
            if k == 1 or mine is None or dmine is None or np.shape(dmine) != np.shape(dscores):
                worst = np.inf
                break
            pairs = ((np.float64(mine), k * loss), (np.asarray(dmine, np.float64), k * np.asarray(dscores)))
            for a, b in pairs:
                scale = float(np.max(np.abs(b))) or 1.0
                worst = max(worst, float(np.max(np.abs(a - b))) / scale)
        if worst <= tolerance:
            return scale_diagnosis(name, text, fix, torch_name, k, worst)
    return None


# Values a user's code hard-codes where torch takes a setting, tried when the user's object does not state it:
# Keras and TensorFlow's ε 1e-7 (1e-3 for BatchNorm), the 1e-6 and 1e-10 of other libraries and lectures; a
# BatchNorm momentum of Keras' 0.99 or 0.999 (torch's 0.01, 0.001), or another round value.
HARD_CODED: dict[str, dict[str, tuple[float, ...]]] = {
    "BatchNorm1d": {"eps": (1e-3, 1e-4, 1e-6, 1e-7, 1e-8), "momentum": (0.01, 0.001, 0.2, 0.3, 0.5)},
    "optimizer": {"eps": (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-10, 1e-12)},
}


def hard_coded(kind: str, torch_name: str, defaults: Mapping[str, Any], stated: Mapping[str, Any]) -> list:
    """(diagnosis, {setting: value}) for each usual value of each setting torch has and the user does not state."""
    found = []
    for name, values in HARD_CODED.get(kind if kind == "optimizer" else torch_name, {}).items():
        if name not in defaults or (stated.get(name) is not None and name != "momentum"):
            continue  # a momentum stated may be Keras' (the weight of the old value): tried all the same
        for value in values:
            if value == defaults[name]:
                continue
            fix = f"pass {name}={value:g} to the twin, or use torch's {name}={defaults[name]:g} in your code"
            text = (f"your {kind} uses {name} = {value:g}, written into its code; torch's {torch_name} has "
                    f"{name}={defaults[name]:g}")  # fmt: skip
            if name == "momentum":
                text += f" (running = {1 - value:g}·running + {value:g}·batch; Keras and CS231n write it {1 - value:g})"
            found.append((Diagnosis(f"convention:hard-coded-{name}", f"{text}: {fix}", fix=fix), {name: value}))
    return found


def l2_diagnosis(params: Mapping[str, np.ndarray], pairs: Sequence[tuple[str, Any, Any]], tolerance: float):
    """L2 regularisation in the user's loss (CS231n's ``reg``): each departing gradient (``pairs``: name, the
    user's, torch's) is torch's plus the same λ times its parameter (``params``: the values it was taken at)."""
    found = []
    for name, mine, theirs in pairs:
        theta = params.get(name)
        if theta is None or np.shape(mine) != np.shape(theirs) or np.shape(theta) != np.shape(mine):
            return None
        gap, theta = np.asarray(mine, np.float64) - np.asarray(theirs, np.float64), np.asarray(theta, np.float64)
        norm = float(np.sum(theta * theta))
        lam = float(np.sum(gap * theta)) / norm if norm else 0.0
        if lam <= 0 or float(np.max(np.abs(gap - lam * theta))) > tolerance * max(float(np.max(np.abs(mine))), 1e-300):
            return None
        found.append(lam)
    if not found or max(found) - min(found) > 1e-6 * max(found):
        return None
    lam = found[0]
    fix = (f"put the same term into the twin's loss (+ {lam / 2:g}·Σθ² over those parameters), or drop it from "
           f"your loss and regularise with the optimizer's weight_decay={lam:g} on both sides")  # fmt: skip
    names = ", ".join(name for name, _, _ in pairs)
    text = (f"your gradients of {names} are torch's plus λ·θ with λ = {lam:g} on every element: L2 regularisation "
            "(reg·Σθ²) in your loss that the twin's loss does not have")  # fmt: skip
    return Diagnosis("convention:l2-in-the-loss", f"{text}; {fix}", fix=fix)
