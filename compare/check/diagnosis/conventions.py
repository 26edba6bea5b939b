"""Conventions, not mistakes: a setting of the user's that differs from torch's default, found by replaying
torch's own rule with the user's value; and a loss that is torch's times a known constant. Each is a
``Convention`` (``CONVENTIONS``), named with the value that reproduces the user's numbers and its one-line fix.

* a layer's ``eps`` (BatchNorm 1e-6 vs torch's 1e-5), read from its config dict or attribute;
* a dropout ``p`` that is the keep probability (``nn.Dropout(0.2)`` drops 20%);
* an optimizer's ε, betas, momentum, α (``epsilon``, ``beta1``/``beta2``, ``decay_rate``: torch's names
  through ``compare.check.forms.optimizer.CONFIG_NAMES``), e.g. Adam's 1e-7 vs torch's 1e-8;
* a loss that is torch's times C/2 (½·Σ per sample vs ``MSELoss``'s mean over all elements), times C (a
  multiclass SVM that torch's ``MultiMarginLoss`` divides by the number of classes), times N (a sum where
  torch averages), 1/N (a mean where torch sums), ½ (½·Σ against ``MSELoss(reduction='sum')``);
* a value hard-coded in the user's code, found by replaying torch's rule with the usual ones
  (``HARD_CODED``): an optimizer's ε (+1e-7), BatchNorm's ε (1e-6, 1e-3) and momentum (Keras' 0.99);
* L2 regularisation in the user's loss (CS231n's ``reg``): every departing gradient is torch's plus λ·θ;
* the initial value of an optimizer's lazily created state (``INITIAL_STATE``): Adagrad's accumulator at
  optax's and TensorFlow's 0.1 where torch starts it at 0, alone or with a hard-coded ε;
* the start of a running statistic a layer creates on its first step (``INITIAL_BUFFER``): a running_var
  created as zeros where torch starts it at ones (``compare.check.diagnosis.initial_values`` finds it).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class Convention:
    """A convention a diagnosis can name: ``description`` and ``fix`` (what to change in the user's code, one
    line) are templates, filled with the values that reproduce the user's numbers."""

    name: str
    description: str
    fix: str

    def diagnosis(self, worst: float, **values: Any) -> Diagnosis:
        """Named ``convention:<name>``, explained and fixed with ``values``."""
        text = self.description.format(**values)
        return Diagnosis(f"convention:{self.name}", text, worst, fix=self.fix.format(**values))

    def note(self, **values: Any) -> str:
        """The convention as one line of a report's notes (a convention found where nothing failed)."""
        return f"convention:{self.name}: {self.description.format(**values)}; fix: {self.fix.format(**values)}"


SETTING = Convention(
    "setting",  # a diagnosis is named after the settings themselves: convention:eps, convention:eps+betas
    "your {name} is {value:g}; torch's {torch} has {name}={default:g}",  # one per setting, joined by "; "
    "pass {values} to the twin, or use {defaults} in your {kind}",
)
DROPOUT_KEEP = Convention(
    "dropout-keep-probability",
    "your p ({p:g}) is the keep probability: nn.Dropout({p:g}) drops {p:.0%} of the units",
    "pass nn.Dropout({q:g}) to the twin, or drop with probability p (mask = rand >= p, scaled by 1/(1 - p))",
)
HALF_SUM_PER_SAMPLE = Convention(
    "half-sum-per-sample",
    "your loss is ½·Σ over the outputs per sample, {torch} averages over all elements: yours is torch's ×C/2 = {k:g}",
    "divide your loss and its gradient by C/2 = {k:g}, or pass a twin of ½·Σ per sample",
)
PER_CLASS_MEAN = Convention(
    "per-class-mean",
    "{torch} divides by the number of classes C as well as by N: yours is torch's ×C = {k:g}",
    "divide your loss and dscores by C = {k:g}, or multiply the twin's by {k:g}",
)
SUM_REDUCTION = Convention(
    "sum-reduction",
    "your loss sums over the batch, {torch} averages: yours is torch's ×N = {k:g}",
    "divide your loss and its gradient by the batch size, or pass reduction='sum' to the twin",
)
MEAN_REDUCTION = Convention(
    "mean-reduction",
    "your loss averages over the batch, {torch} sums (reduction='sum'): yours is torch's ×1/N = {k:g}",
    "multiply your loss and its gradient by the batch size, or pass reduction='mean' to the twin",
)
HALF_OF_SUM = Convention(
    "half-of-sum",
    "your loss is ½·Σ, {torch} has no ½ (MSELoss(reduction='sum') is Σ): yours is torch's ×½",
    "drop the ½ (and the gradient's matching factor), or halve the twin's loss",
)
HALF_SUM = Convention(
    "half-sum",
    "your loss is ½·Σ over everything, {torch} averages over all elements: ×N·C/2 = {k:g}",
    "take the mean over all N·C elements instead of ½·Σ: divide your loss and its gradient by {k:g}",
)
LOSS_SCALES = (
    (HALF_SUM_PER_SAMPLE, lambda n, c: c / 2),
    (PER_CLASS_MEAN, lambda n, c: c),
    (SUM_REDUCTION, lambda n, c: n),
    (MEAN_REDUCTION, lambda n, c: 1 / n),
    (HALF_OF_SUM, lambda n, c: 0.5),
    (HALF_SUM, lambda n, c: n * c / 2),
)  # each with the factor k(N, C): the user's loss is torch's ×k
HARD_CODED_SETTING = Convention(
    "hard-coded-{name}",  # convention:hard-coded-eps, convention:hard-coded-momentum
    "your {kind} uses {name} = {value:g}, written into its code; torch's {torch} has {name}={default:g}",
    "pass {name}={value:g} to the twin, or use torch's {name}={default:g} in your code",
)
L2_IN_THE_LOSS = Convention(
    "l2-in-the-loss",
    "your gradients of {names} are torch's plus λ·θ with λ = {lam:g} on every element: L2 regularisation "
    "(reg·Σθ²) in your loss that the twin's loss does not have",
    "put the same term into the twin's loss (+ {half:g}·Σθ² over those parameters), or drop it from your loss "
    "and regularise with the optimizer's weight_decay={lam:g} on both sides",
)
INITIAL_STATE_VALUE = Convention(
    "initial-state",
    "your optimizer's {state} starts at {value:g} ({who}), torch's {torch} starts it at {default:g}: the "
    "initial value of its lazily created state",
    "torch.optim.{torch}(..., {name}={value:g}) for the twin, or start your {state} at {default:g} as torch does",
)
INITIAL_BUFFER = Convention(
    "initial-buffer",
    "your {key} did not exist before the first step and starts at {value}, torch's {torch} starts it at "
    "{default}: the initial value of lazily created state (its update is compared from the step after)",
    "create your {key} as {default} (torch's start), or fill the twin's with {value} before the check "
    "({where}.fill_({number:g}))",
)
CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        SETTING, DROPOUT_KEEP, *(c for c, _ in LOSS_SCALES), HARD_CODED_SETTING, L2_IN_THE_LOSS, INITIAL_STATE_VALUE,
        INITIAL_BUFFER,
    )
}  # fmt: skip


def setting_diagnosis(kind: str, torch_name: str, values: Mapping[str, Any], defaults: Mapping[str, Any], worst: float):
    """``your eps is 1e-07; torch's Adam has eps=1e-08``, fixed by ``pass eps=1e-07 to the twin, or use 1e-08 in
    your optimizer``."""
    text = "; ".join(
        SETTING.description.format(name=name, value=values[name], torch=torch_name, default=defaults[name])
        for name in values
    )
    fix = SETTING.fix.format(
        values=", ".join(f"{name}={values[name]:g}" for name in values),
        defaults=", ".join(f"{defaults[name]:g}" for name in values),
        kind=kind,
    )
    return Diagnosis(f"convention:{'+'.join(values)}", text, worst, fix=fix)


def dropout_keep_diagnosis(p: float, worst: float) -> Diagnosis:
    return DROPOUT_KEEP.diagnosis(worst, p=p, q=1 - p)


def loss_scale_diagnosis(
    torch_loss: Any, runs: Sequence[tuple[np.ndarray, float, Any, Any, Any]], tolerance: float
) -> Diagnosis | None:
    """``runs``: per step (scores, torch's loss, torch's dscores, the user's loss, the user's dscores): the
    known constant k with user = k·torch for both, within ``tolerance``."""
    torch_name = type(torch_loss).__name__
    for convention, factor in LOSS_SCALES:
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
            return convention.diagnosis(worst, torch=torch_name, k=k)
    return None


# Values a user's code hard-codes where torch takes a setting, tried when the user's object does not state it:
# Keras and TensorFlow's ε 1e-7 (1e-3 for BatchNorm), the 1e-6 and 1e-10 of other libraries and lectures; a
# BatchNorm momentum of Keras' 0.99 or 0.999 (torch's 0.01, 0.001), or another round value.
HARD_CODED: dict[str, dict[str, tuple[float, ...]]] = {
    "BatchNorm1d": {"eps": (1e-3, 1e-4, 1e-6, 1e-7, 1e-8), "momentum": (0.01, 0.001, 0.2, 0.3, 0.5)},
    "optimizer": {"eps": (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-10, 1e-12)},
}


def hard_coded(kind: str, torch_name: str, defaults: Mapping[str, Any], stated: Mapping[str, Any]) -> list:
    """(diagnosis, {setting: value}) for each usual value of each setting torch has and the user does not state
    (a momentum stated may be Keras', the weight of the old value: tried all the same)."""
    found = []
    for name, values in HARD_CODED.get(kind if kind == "optimizer" else torch_name, {}).items():
        if name not in defaults or (stated.get(name) is not None and name != "momentum"):
            continue
        for value in values:
            if value == defaults[name]:
                continue
            words = {"kind": kind, "name": name, "value": value, "torch": torch_name, "default": defaults[name]}
            diagnosis = HARD_CODED_SETTING.diagnosis(0.0, **words)
            if name == "momentum":
                keras = f" (running = {1 - value:g}·running + {value:g}·batch; Keras and CS231n write it {1 - value:g})"
                diagnosis = replace(diagnosis, explanation=diagnosis.explanation + keras)
            found.append((replace(diagnosis, name=f"convention:hard-coded-{name}"), {name: value}))
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
    names = ", ".join(name for name, _, _ in pairs)
    return L2_IN_THE_LOSS.diagnosis(0.0, names=names, lam=found[0], half=found[0] / 2)


# The initial values other libraries give an optimizer's lazily created state where torch has a setting for it:
# torch class → (torch's setting, the state it starts, {value: who starts it there}).
INITIAL_STATE: dict[str, tuple[str, str, dict[float, str]]] = {
    "Adagrad": ("initial_accumulator_value", "accumulator (torch's state 'sum')", {0.1: "optax's and TensorFlow's"}),
}


def initial_state(torch_name: str, defaults: Mapping[str, Any], stated: Mapping[str, Any]) -> list:
    """(diagnosis, {setting: value}) for each initial value of state another library uses, when the user does
    not state it: alone, then with the user's ε where it differs from torch's (stated, or one of ``HARD_CODED``'s
    when not stated): optax's Adagrad starts its accumulator at 0.1 and has ε = 1e-7."""
    name, state, values = INITIAL_STATE.get(torch_name, ("", "", {}))
    if name not in defaults or stated.get(name) is not None:
        return []
    found = []
    for value, who in values.items():
        words = {"name": name, "state": state, "value": value, "who": who, "torch": torch_name}
        alone = INITIAL_STATE_VALUE.diagnosis(0.0, **words, default=defaults[name])
        found.append((alone, {name: value}))
        for eps, also in _other_eps(torch_name, defaults, stated):
            fix = (
                f"torch.optim.{torch_name}(..., {name}={value:g}, eps={eps:g}) for the twin, or start your {state} "
                f"at {defaults[name]:g} and use torch's eps={defaults['eps']:g} in your code"
            )
            explanation = f"{alone.explanation}; {also.explanation}"
            found.append(
                (replace(alone, name=f"{alone.name}+eps", explanation=explanation, fix=fix), {name: value, "eps": eps})
            )
    return found


def _other_eps(
    torch_name: str, defaults: Mapping[str, Any], stated: Mapping[str, Any]
) -> list[tuple[float, Diagnosis]]:
    """The user's ε where it is not torch's, each with its diagnosis: the one stated, or each of ``HARD_CODED``'s."""
    default, mine = defaults.get("eps"), stated.get("eps")
    if default is None or (mine is not None and mine == default):
        return []
    if mine is not None:
        return [(float(mine), setting_diagnosis("optimizer", torch_name, {"eps": float(mine)}, defaults, 0.0))]
    words = {"kind": "optimizer", "name": "eps", "torch": torch_name, "default": default}
    return [
        (eps, HARD_CODED_SETTING.diagnosis(0.0, value=eps, **words))
        for eps in HARD_CODED["optimizer"]["eps"]
        if eps != default
    ]
