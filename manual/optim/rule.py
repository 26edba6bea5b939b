"""What every hand-written rule shares: torch's keyword names as dataclass fields, explicit state, and one
step loop that applies the rule's ``update`` to each parameter in turn (torch's single-tensor path).

A rule is written as small named pieces that mirror its docstring (``weight_decay_grad``, ``moments``,
``denominator``, ...), called in order by its ``update``; a textbook variant (``manual.optim.variants``) or
a catalog fault (``compare.faults.optimizers``) overrides the one piece it changes, never the loop.
"""

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

Params = dict[str, np.ndarray]
PerParameter = dict[str, Any]  # one parameter's state: torch's state keys → arrays, counters, scalars
State = dict[str, PerParameter]

# torch keeps a rule's scalar state (``mu_product``, ``eta``, ``mu``) in a 0-d tensor of
# torch.optim.optimizer._get_scalar_dtype(): float32 unless torch's default dtype is float64, which this
# package never changes. Its rounding to float32 shows at 1e-8 in float64 runs, so the manual side keeps
# the same 0-d float32 arrays.
SCALAR_DTYPE = np.float32


def scalar(value: float) -> np.ndarray:
    """A 0-d scalar-state array, as torch builds one (``torch.tensor(value, dtype=float32)``)."""
    return np.array(value, dtype=SCALAR_DTYPE)


def check_nonnegative(rule: object, *names: str) -> None:
    """torch's checks ``not 0.0 <= value`` (so that NaN is rejected too), with its messages."""
    for name in names:
        value = getattr(rule, name)
        if not 0.0 <= value:
            what = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
            raise ValueError(f"invalid {what}: {value}")


def check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    """``betas`` as floats, each in [0, 1) as torch requires."""
    betas = (float(betas[0]), float(betas[1]))
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"invalid beta parameter at index {index}: {beta}")
    return betas


@dataclass
class Rule:
    """The loop and the plumbing; a subclass defines ``init_one`` and ``update`` from its pieces."""

    lr: float = 1e-3

    # Keyword arguments that take every branch of the rule at once (L2, amsgrad, centering, decoupled
    # decay, ...): the tests' and the sweep's hyperparameters start from these, so a new rule brings its own.
    every_branch: ClassVar[dict] = {}

    # A rule that branches on the sign of a value, a discontinuity in its inputs, names what it reads: the
    # state keys (``branch_state``) besides the gradient, and ``branch_values``, the values whose signs
    # decide. A checker then knows which elements two sides could decide differently from values equal up to
    # rounding (``compare.core.decisions``). ``None``: no such branch (a max, a clamp, a threshold on the
    # step count are continuous in the tensors, or decided alike on both sides).
    branch_state: ClassVar[tuple[str, ...] | None] = None
    # Whether the rule branches on its step count (a threshold reached at one step, an averaging start): such
    # a rule can be wrong at a single step, so a float32 run of it is proven in float64 at every step.
    branches_on_step: ClassVar[bool] = False

    @staticmethod
    def branch_values(g: np.ndarray, s: PerParameter) -> tuple[np.ndarray, ...]:
        """The values whose signs the rule branches on, from the gradient and the state before the step."""
        return ()

    def hyperparameters(self) -> dict:
        """The torch keyword arguments that build the same optimizer."""
        return asdict(self)

    def init(self, params: Params) -> State:
        return {name: self.init_one(param) for name, param in params.items()}

    def step(self, params: Params, grads: Params, state: State) -> None:
        """Updates ``params`` and ``state`` in place, one parameter after another, as torch does."""
        for name, param in params.items():
            self.update(param, grads[name], state[name])

    def init_one(self, param: np.ndarray) -> PerParameter:
        raise NotImplementedError

    def update(self, param: np.ndarray, g: np.ndarray, s: PerParameter) -> None:
        raise NotImplementedError

    def decay(self, param: np.ndarray, g: np.ndarray) -> np.ndarray:
        """θ ← θ·(1 − γλ) for a rule whose ``decoupled_weight_decay`` is set, else g ← g + λθ."""
        weight_decay = getattr(self, "weight_decay", 0.0)
        if getattr(self, "decoupled_weight_decay", False) and weight_decay != 0:
            param *= 1.0 - self.lr * weight_decay
            return g
        return self.coupled_decay(param, g)

    def coupled_decay(self, param: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g ← g + λθ (coupled L2; a new array, the gradient itself is never changed)."""
        weight_decay = getattr(self, "weight_decay", 0.0)
        return g + weight_decay * param if weight_decay != 0 else g


def adam_moments(s: PerParameter, g: np.ndarray, betas: tuple[float, float]) -> None:
    """torch's moments of the Adam family, in place: m ← m + (1 − β1)·(g − m), v ← β2·v + (1 − β2)·g²."""
    s["exp_avg"] += (1.0 - betas[0]) * (g - s["exp_avg"])
    s["exp_avg_sq"] *= betas[1]
    s["exp_avg_sq"] += (1.0 - betas[1]) * g * g
