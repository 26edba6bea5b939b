"""Reading and writing a user object's parameters, gradients and buffers, wherever it keeps them.

Accepted: dicts ``params`` / ``grads`` / ``buffers`` (this package's layers, many course codes), or
``parameters`` / ``gradients`` (possibly created by the first forward: read each time, never cached; an
entry still ``None``, as numpy-ml declares ``{"W": None, "b": None}`` until its first forward, is not there
yet, and a running statistic kept among the parameters, as numpy-ml's ``BatchNorm1D`` keeps it, is a
buffer), or attributes with textbook names: ``W``, ``b``, ``gamma``, ``beta`` (or ``weight``, ``bias``, ``w``,
``kernel``) with gradients ``dW``, ``db``, ``dgamma``, ``dbeta`` (``d`` + the name), and running
statistics ``running_mean``, ``running_var`` (``num_batches_tracked`` when kept).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from compare.check.forms.mapping import BUFFER_NAMES, grad_name

PARAM_ATTRIBUTES = ("W", "b", "gamma", "beta", "weight", "bias", "w", "kernel")
PARAM_DICTS = ("params", "parameters")
GRAD_DICTS = ("grads", "gradients")


class Access:
    """One user object (a layer, a model, a loss) seen through the names above."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def _dict(self, names: tuple[str, ...]) -> Any:
        for name in names:
            value = getattr(self.obj, name, None)
            if isinstance(value, Mapping):
                return value
        return None

    def params(self) -> dict[str, np.ndarray]:
        held = self._dict(PARAM_DICTS)
        if held is not None:
            return {name: value for name, value in held.items() if value is not None and name not in BUFFER_NAMES}
        found = {}
        for name in PARAM_ATTRIBUTES:
            value = getattr(self.obj, name, None)
            if isinstance(value, np.ndarray):
                found[name] = value
        return found

    def grad(self, name: str) -> Any:
        grads = self._dict(GRAD_DICTS)
        if grads is not None and name in grads:
            return grads[name]
        return getattr(self.obj, grad_name(name), None)

    def set_param(self, name: str, value: np.ndarray) -> None:
        held = self._dict(PARAM_DICTS)
        if held is not None:
            held[name] = value
        else:
            setattr(self.obj, name, value)

    def _buffer_holder(self, name: str) -> Any:
        """Where running statistic ``name`` is kept: a ``buffers`` dict, the parameters dict (numpy-ml's
        ``BatchNorm1D``), or ``None`` for an attribute."""
        held = getattr(self.obj, "buffers", None)
        if isinstance(held, Mapping):
            return held
        params = self._dict(PARAM_DICTS)
        return params if params is not None and name in params else None

    def buffers(self) -> dict[str, Any]:
        """Running statistics the object keeps now (a ``None`` one, not yet created, is left out)."""
        found = {}
        for name in BUFFER_NAMES:
            held = self._buffer_holder(name)
            value = held.get(name) if held is not None else getattr(self.obj, name, None)
            if value is not None:
                found[name] = value
        return found

    def set_buffer(self, name: str, value: np.ndarray) -> None:
        held = self._buffer_holder(name)
        if held is not None:
            held[name] = value
        else:
            setattr(self.obj, name, value)

    def cast(self, dtype: np.dtype) -> None:
        """Floating parameters and buffers to ``dtype`` (the check's precision), as new arrays."""
        for name, value in self.params().items():
            if value.dtype.kind == "f" and value.dtype != dtype:
                self.set_param(name, value.astype(dtype))
        for name, value in self.buffers().items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.dtype != dtype:
                self.set_buffer(name, value.astype(dtype))
