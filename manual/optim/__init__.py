"""Hand-written optimizers that follow ``torch.optim`` formula for formula.

Each is a dataclass of hyperparameters named exactly as torch names them (so one kwargs
dict builds both twins) with explicit state: ``init(params) -> state`` and
``step(params, grads, state)``, which updates parameters and state in place, as torch does.
State is ``{parameter name: {state key: value}}`` with torch's state keys. ``lr`` is a plain
attribute, read at every step, which a schedule (``manual.schedules``) may change between steps.

``OPTIMIZERS`` holds torch's rules only; ``VARIANTS`` holds textbook rules under their own names,
each with the torch optimizer it is compared against and the cause of the departure.
"""

from manual.optim.adagrad import Adagrad
from manual.optim.adam import Adam
from manual.optim.adamw import AdamW
from manual.optim.rmsprop import RMSprop
from manual.optim.sgd import SGD, Momentum, Nesterov
from manual.optim.variants import VARIANTS, AdamEpsHat, ClassicMomentum, RMSpropEpsInside, Variant

OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "VARIANTS",
    "Adagrad",
    "Adam",
    "AdamEpsHat",
    "AdamW",
    "ClassicMomentum",
    "Momentum",
    "Nesterov",
    "RMSprop",
    "RMSpropEpsInside",
    "Variant",
]
