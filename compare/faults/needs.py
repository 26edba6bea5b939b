"""What a fault needs from a run to be able to act at all: each a function of the configuration that
returns ``None`` when satisfied, else the missing flags in words."""

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compare.inputs.config import RunConfig

Need = Callable[["RunConfig"], str | None]  # None when satisfied, else what is missing


def optimizer_is(*names: str) -> Need:
    return lambda config: None if config.optimizer in names else "--optimizer " + " or ".join(names)


def hyperparameter_positive(key: str) -> Need:
    flag = "--" + key.replace("_", "-")
    return lambda config: None if config.hyperparameters.get(key, 0) > 0 else f"{flag} > 0"


def hyperparameter_off(key: str) -> Need:
    flag = "--" + key.replace("_", "-")
    return lambda config: None if not config.hyperparameters.get(key) else f"no {flag}"


def activation_is(name: str) -> Need:
    return lambda config: None if config.activation == name else f"--activation {name}"


def loss_is(name: str) -> Need:
    return lambda config: None if config.loss == name else f"--loss {name}"


def has(attribute: str, flag: str) -> Need:
    return lambda config: None if getattr(config, attribute) else flag


def square_layers(config: "RunConfig") -> str | None:
    if len(set(config.layers)) == 1:
        return None
    return "square Linear layers (equal --layers widths; on a non-square one NumPy raises in the update)"


def two_steps(config: "RunConfig") -> str | None:
    return None if config.steps >= 2 else "--steps >= 2 (step 1 has nothing to accumulate onto)"
