"""The optimizer forms of the courses, recognised without glue: their names for torch's settings and state.

* a function ``update(w, dw, config) -> (next_w, config)``, one config dict per parameter (as a training
  loop keeps them), each starting as a copy of ``config=`` (default: torch's hyperparameters under the
  textbook names below); its state (``velocity``, ``cache``, ``m``, ``v``, ``t``) lives in the config;
* an object whose ``update(param, grad, name)`` returns the new parameter (or changes it in place),
  its state in dicts keyed by parameter name (``self.cache[name] = {"m": ..., "v": ..., "t": ...}`` or
  ``self.velocity[name]``); so too an object whose ``update(params, grads)`` takes them all, its state
  often created by its first update (``self.v = None`` before it: ``self.v[key]``, ``self.h[key]``).

``CONFIG_NAMES`` maps a textbook setting to torch's (learning_rate → lr, decay_rate → alpha, epsilon →
eps, beta1/beta2 → betas); ``STATE_NAMES`` maps, per torch optimizer, a textbook state to torch's key. The
textbook velocity ``v ← μv − γg`` is torch's buffer times −γ (while γ is constant), so it is compared as
``−v/γ`` when that is what the user keeps.
"""

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from compare.check.forms.layer_loss import positional_count

CONFIG_NAMES: dict[str, tuple[str, int | None]] = {
    "learning_rate": ("lr", None),
    "lr": ("lr", None),
    "decay_rate": ("alpha", None),
    "alpha": ("alpha", None),
    "epsilon": ("eps", None),
    "eps": ("eps", None),
    "beta1": ("betas", 0),
    "beta2": ("betas", 1),
    "momentum": ("momentum", None),
    "weight_decay": ("weight_decay", None),
}
TEXTBOOK_NAMES = {"lr": "learning_rate", "alpha": "decay_rate", "eps": "epsilon", "momentum": "momentum"}
STATE_NAMES: dict[str, dict[str, str]] = {
    "SGD": {"velocity": "momentum_buffer", "momentum_buffer": "momentum_buffer", "v": "momentum_buffer"},
    "Adam": {"m": "exp_avg", "mean": "exp_avg", "v": "exp_avg_sq", "var": "exp_avg_sq", "t": "step"},
    "AdamW": {"m": "exp_avg", "mean": "exp_avg", "v": "exp_avg_sq", "var": "exp_avg_sq", "t": "step"},
    "RMSprop": {"cache": "square_avg", "square_avg": "square_avg", "h": "square_avg", "t": "step"},
    "Adagrad": {"cache": "sum", "sum": "sum", "h": "sum", "t": "step"},
}


def is_function(optimizer: Any) -> bool:
    """``update(w, dw, config) -> (next_w, config)``: a plain function of three arguments."""
    return inspect.isroutine(optimizer) and positional_count(optimizer) >= 3


def is_per_parameter(optimizer: Any) -> bool:
    """An object whose ``update(param, grad, name)`` takes one parameter at a time (and no ``init``)."""
    update = getattr(optimizer, "update", None)
    if not callable(update) or callable(getattr(optimizer, "init", None)):
        return False
    return positional_count(update, required=True) >= 3  # update(params, grads, extra=None) is the textbook form


def textbook_config(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """torch's hyperparameters under the textbook config names (betas as beta1, beta2)."""
    config: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key == "betas":
            config["beta1"], config["beta2"] = value
        elif key in TEXTBOOK_NAMES:
            config[TEXTBOOK_NAMES[key]] = value
    return config


def torch_settings(held: Mapping[str, Any]) -> dict[str, Any]:
    """The user's settings under torch's names (``beta1``/``beta2`` joined into ``betas``)."""
    found: dict[str, Any] = {}
    betas = [None, None]
    for key, value in held.items():
        if key not in CONFIG_NAMES or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        name, index = CONFIG_NAMES[key]
        if index is None:
            found[name] = float(value)
        else:
            betas[index] = float(value)
    if None not in betas:
        found["betas"] = tuple(betas)
    return found


def object_settings(optimizer: Any) -> dict[str, Any]:
    """An object's settings: its attributes and a ``hyperparameters``/``config``/``defaults`` dict."""
    held = {key: value for key, value in vars(optimizer).items()} if hasattr(optimizer, "__dict__") else {}
    for name in ("hyperparameters", "config", "defaults", "hyper"):
        inner = held.get(name)
        if isinstance(inner, Mapping):
            held = {**held, **inner}
    return torch_settings(held)


def state_entries(holder: Any, name: str) -> dict[str, Any]:
    """The state of parameter ``name``: its config dict (a function's), or what an object keeps in dicts
    keyed by parameter names (``cache[name]`` a dict of state, or ``velocity[name]`` one array)."""
    if isinstance(holder, Mapping):
        return dict(holder)
    entries: dict[str, Any] = {}
    for attribute, value in (vars(holder) if hasattr(holder, "__dict__") else {}).items():
        if isinstance(value, Mapping) and name in value:
            inner = value[name]
            entries.update(inner if isinstance(inner, Mapping) else {attribute: inner})
    return entries


def torch_state(entries: Mapping[str, Any], torch_class: str) -> dict[str, Any]:
    """``{torch key: (textbook name, value)}`` of the entries that name a state torch keeps."""
    names = STATE_NAMES.get(torch_class, {})
    return {names[key]: (key, value) for key, value in entries.items() if key in names and value is not None}


def velocity_scale(velocity: np.ndarray, grad: np.ndarray, lr: float | None) -> float:
    """−1/γ when the first step's velocity is −γ·g (the textbook form), else 1 (torch's buffer itself)."""
    if lr and np.shape(velocity) == np.shape(grad) and np.allclose(velocity, -lr * grad, rtol=1e-6, atol=0):
        return -1.0 / lr
    return 1.0


class LrHandle:
    """The user's lr wherever it is kept, as an ``lr`` attribute a schedule can read and set: the configs of
    a function's parameters (``learning_rate``), an object's attribute, or its hyperparameter dict."""

    def __init__(self, target: Any, configs: dict[str, dict] | None) -> None:
        self.target, self.configs = target, configs

    def _where(self) -> tuple[Any, str] | None:
        holders = list(self.configs.values()) if self.configs is not None else []
        if self.configs is None:
            holders = [self.target] + [
                getattr(self.target, name) for name in ("hyperparameters", "config", "defaults", "hyper")
                if isinstance(getattr(self.target, name, None), Mapping)
            ]  # fmt: skip
        for holder in holders:
            for key in ("lr", "learning_rate"):
                value = holder.get(key) if isinstance(holder, Mapping) else getattr(holder, key, None)
                if isinstance(value, int | float | np.floating) and not isinstance(value, bool):
                    return holder, key
        return None

    @property
    def lr(self) -> float | None:
        where = self._where()
        if where is None:
            return None
        holder, key = where
        return float(holder[key] if isinstance(holder, Mapping) else getattr(holder, key))

    @lr.setter
    def lr(self, value: float) -> None:
        where = self._where()
        key = "learning_rate" if where is None else where[1]
        holders = list(self.configs.values()) if self.configs is not None else [where[0] if where else self.target]
        for holder in holders:
            if isinstance(holder, dict):
                holder[key] = value
            else:
                setattr(holder, key, value)
