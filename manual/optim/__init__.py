"""Hand-written optimizers that follow ``torch.optim`` formula for formula.

Each is a dataclass of hyperparameters named exactly as torch names them (so one kwargs
dict builds both twins) with explicit state: ``init(params) -> state`` and
``step(params, grads, state)``, which updates parameters and state in place, as torch does.
State is ``{parameter name: {state key: value}}`` with torch's state keys.
"""

from manual.optim.adam import Adam
from manual.optim.sgd import SGD, Momentum

OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}

__all__ = ["OPTIMIZERS", "SGD", "Adam", "Momentum"]
