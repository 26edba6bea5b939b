"""The optimizer flags of ``run``, derived from the hand-written optimizers' dataclass fields (torch's
keyword names): a hyperparameter a registered optimizer gains becomes a flag with no edit here.
``MEANING`` only adds the symbol or a word of explanation to a flag's help."""

import argparse
import dataclasses

from manual.optim import REGISTRY
from manual.optim.variants import VARIANTS

MEANING = {
    "lr": "learning rate γ",
    "momentum": "μ",
    "dampening": "τ",
    "nesterov": "Nesterov momentum",
    "betas": "β1,β2",
    "eps": "ε, the denominator's floor (inside or outside the root: each rule's docstring)",
    "weight_decay": "λ: L2 added to the gradient; adamw decays the weights directly",
    "amsgrad": "keep the running max of exp_avg_sq",
    "alpha": "α: a smoothing constant or the power of η's decay (each rule's docstring)",
    "centered": "normalise by the gradient's estimated variance",
    "lr_decay": "γ/(1 + (t − 1)·η)",
    "initial_accumulator_value": "the accumulator's start",
    "momentum_decay": "ψ of the momentum schedule μ_t = β1·(1 − ½·0.96^(tψ))",
    "decoupled_weight_decay": "decay the weights directly, θ·(1 − γλ), instead of adding λθ to the gradient",
    "rho": "decay ρ of both running averages",
    "lambd": "decay term λ_d of η and of the weights",
    "t0": "the step after which averaging starts",
    "etas": "η−,η+: step-size factors on a sign change / a kept sign",
    "step_sizes": "Δmin,Δmax: the step size's bounds",
}


def pair(text: str) -> tuple[float, float]:
    """Two numbers A,B (betas, etas, step sizes)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two numbers A,B such as 0.9,0.999, got {text!r}")
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers A,B, got {text!r}") from None


def hyperparameter_fields() -> dict[str, dict[str, object]]:
    """Each torch keyword any registered optimizer (or textbook variant) takes → {optimizer: its default}."""
    found: dict[str, dict[str, object]] = {}
    rules = {name: entry.rule for name, entry in REGISTRY.items()}
    rules.update({name: variant.optimizer for name, variant in VARIANTS.items()})
    for name, rule in rules.items():
        for f in dataclasses.fields(rule):
            found.setdefault(f.name, {})[name] = f.default
    return found


def _help(key: str, defaults: dict[str, object]) -> str:
    takers = [name for name in defaults if name in REGISTRY] or list(defaults)
    if key == "lr":
        shown = ", ".join(f"{name} {entry.default_lr}" for name, entry in REGISTRY.items())
        return f"learning rate γ (default: {shown}; chosen so the default spiral run visibly learns)"
    values = {name: defaults[name] for name in takers}
    common = max(set(map(repr, values.values())), key=list(map(repr, values.values())).count)
    others = [f"{name} {value}" for name, value in values.items() if repr(value) != common]
    shown = common if not others else f"{common}; {', '.join(others)}"
    shown = shown.replace("(", "").replace(")", "").replace(" ", "") if isinstance(values[takers[0]], tuple) else shown
    return f"{', '.join(takers)}: {MEANING.get(key, key)} (default: {shown})"


def add_flags(group: argparse._ArgumentGroup) -> tuple[str, ...]:
    """One flag per hyperparameter; returns the keywords, in the order added."""
    fields = hyperparameter_fields()
    for key, defaults in fields.items():
        example = next(iter(defaults.values()))
        flag = "--" + key.replace("_", "-")
        if isinstance(example, bool):
            group.add_argument(flag, dest=key, action="store_true", help=_help(key, defaults))
        elif isinstance(example, tuple):
            group.add_argument(flag, dest=key, type=pair, metavar="A,B", help=_help(key, defaults))
        else:
            group.add_argument(flag, dest=key, type=float, help=_help(key, defaults))
    return tuple(fields)


def given(args: argparse.Namespace, keys: tuple[str, ...]) -> dict:
    """The hyperparameters the user set on the command line (a zero is set: ``--eps 0``, ``--weight-decay 0``;
    ``0.0 in (None, False)`` would drop it, as ``0.0 == False``)."""
    values = {key: getattr(args, key) for key in keys}
    return {key: value for key, value in values.items() if value is not None and value is not False}
