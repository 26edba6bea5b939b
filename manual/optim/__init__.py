"""Hand-written optimizers that follow ``torch.optim`` formula for formula.

Each is a dataclass of hyperparameters named exactly as torch names them (so one kwargs
dict builds both twins) with explicit state: ``init(params) -> state`` and
``step(params, grads, state)``, which updates parameters and state in place, as torch does.
State is ``{parameter name: {state key: value}}`` with torch's state keys. ``lr`` is a plain
attribute, read at every step, which a schedule (``manual.schedules``) may change between steps.

``REGISTRY`` holds torch's rules only, each with its torch class and squared state (``OPTIMIZERS``
maps each name to its rule); ``VARIANTS`` holds textbook rules under their own names,
each with the torch optimizer it is compared against and the cause of the departure.
"""

from dataclasses import dataclass

from manual.optim.adadelta import Adadelta
from manual.optim.adagrad import Adagrad
from manual.optim.adam import Adam
from manual.optim.adamax import Adamax
from manual.optim.adamw import AdamW
from manual.optim.asgd import ASGD
from manual.optim.nadam import NAdam
from manual.optim.radam import RAdam
from manual.optim.rmsprop import RMSprop
from manual.optim.rprop import Rprop
from manual.optim.sgd import SGD, Momentum, Nesterov
from manual.optim.variants import VARIANTS, AdamEpsHat, ClassicMomentum, RMSpropEpsInside, Variant


@dataclass(frozen=True)
class Registered:
    """Everything the package knows about one optimizer, in one place.

    ``rule``: the hand-written class; ``torch_class``: the ``torch.optim`` class it is checked against (by
    name: this package imports no torch); ``squared_state``: state keys built from g², whose relative
    error is twice the gradient's; ``default_lr``: the command line's ``--lr`` when none is given (torch's
    1e-3 barely moves the built-in spirals in 500 steps, and the curves should show learning);
    ``torch_kwargs``: the keyword arguments the name implies beyond torch's defaults (``momentum`` is SGD
    with μ = 0.9). The torch twin is built from ``torch_class`` and ``torch_kwargs`` alone, never from the
    rule's own defaults, so that a wrong default in the rule cannot pass by building torch with it."""

    rule: type
    torch_class: str
    squared_state: frozenset[str]
    default_lr: float
    torch_kwargs: tuple[tuple[str, object], ...] = ()


REGISTRY: dict[str, Registered] = {
    "sgd": Registered(SGD, "SGD", frozenset(), 0.1),
    "momentum": Registered(Momentum, "SGD", frozenset(), 0.05, (("momentum", 0.9),)),
    "nesterov": Registered(Nesterov, "SGD", frozenset(), 0.05, (("momentum", 0.9), ("nesterov", True))),
    "adam": Registered(Adam, "Adam", frozenset({"exp_avg_sq", "max_exp_avg_sq"}), 0.01),
    "adamw": Registered(AdamW, "AdamW", frozenset({"exp_avg_sq", "max_exp_avg_sq"}), 0.01),
    "rmsprop": Registered(RMSprop, "RMSprop", frozenset({"square_avg"}), 0.01),
    "adagrad": Registered(Adagrad, "Adagrad", frozenset({"sum"}), 0.05),
    "adamax": Registered(Adamax, "Adamax", frozenset(), 0.01),  # exp_inf is max(β2·u, |g| + ε): linear in g
    "nadam": Registered(NAdam, "NAdam", frozenset({"exp_avg_sq"}), 0.01),
    "radam": Registered(RAdam, "RAdam", frozenset({"exp_avg_sq"}), 0.01),
    "adadelta": Registered(Adadelta, "Adadelta", frozenset({"square_avg", "acc_delta"}), 1.0),
    "asgd": Registered(ASGD, "ASGD", frozenset(), 0.1),
    "rprop": Registered(Rprop, "Rprop", frozenset(), 0.01),
}
OPTIMIZERS = {name: entry.rule for name, entry in REGISTRY.items()}  # name → rule, a view of REGISTRY
SQUARED_STATE = frozenset().union(*(entry.squared_state for entry in REGISTRY.values()))


__all__ = [
    "ASGD",
    "OPTIMIZERS",
    "REGISTRY",
    "SGD",
    "SQUARED_STATE",
    "VARIANTS",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamEpsHat",
    "AdamW",
    "Adamax",
    "ClassicMomentum",
    "Momentum",
    "NAdam",
    "Nesterov",
    "RAdam",
    "RMSprop",
    "RMSpropEpsInside",
    "Registered",
    "Rprop",
    "Variant",
]
