"""User code written in torch tensors, seen by the checkers as NumPy code: ``numpy_side(obj)``.

``check_layer``, ``check_loss``, ``check_optimizer`` and ``check_model`` speak NumPy to the user's code.
When that code works on torch tensors (a "backprop ninja" backward: every ``dlogits``, ``dh``, ``dW`` by
hand with torch ops), ``numpy_side`` wraps it, and everything crossing the boundary is converted:

* in: NumPy arrays become torch tensors of the same dtype on the user's device (the device of the first
  tensor the object holds, else the CPU), detached, never requiring a gradient; dicts and tuples of arrays
  are converted item by item, and what the user's code does to a dict it was handed (``params[k] -= ...``,
  a rebinding) is written back into the checker's dict when the call returns;
* out: tensors become NumPy arrays (on the CPU, views sharing the tensor's memory, so an optimizer's
  in-place update of a parameter reaches the user's tensor);
* autograd is off on the user's side: each call runs under ``torch.no_grad()``, and a call to
  ``Tensor.backward``, ``torch.autograd.backward`` or ``torch.autograd.grad`` from inside it raises
  ``UsedAutogradError`` (a finding: the hand-written backward is not hand-written), as does autograd's own
  "does not require grad" error.

Told apart from NumPy code by what it holds (a torch tensor among its attributes or its ``params``) or, for
functions, by the names its code uses (``torch`` and not ``np``/``numpy``); ``TorchCode(obj)`` says it outright.
"""

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

METHODS = ("forward", "backward", "gradient", "loss", "predict", "update", "init", "step", "__call__")


class UsedAutogradError(RuntimeError):
    """The user's hand-written code called autograd."""


class TorchCode:
    """Marks ``obj`` (an object, a function or a tuple of functions) as working on torch tensors."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj


_inside = threading.local()  # this thread is running the user's torch code
_patched: dict[str, Callable] = {}


def _refusing(name: str, original: Callable) -> Callable:
    @functools.wraps(original)  # torch's own name, signature and docstring, for whoever inspects them
    def refuse(*args, **kwargs):
        if getattr(_inside, "depth", 0):
            raise UsedAutogradError(
                f"your code called {name}: a hand-written backward must compute its gradients itself"
            )
        return original(*args, **kwargs)

    return refuse


def _install() -> None:
    """Once per process: the three entry points of autograd refuse while user code runs (on that thread
    only; elsewhere, and outside user code, they are torch's own)."""
    if _patched:
        return
    for owner, attribute, name in (
        (torch.Tensor, "backward", "Tensor.backward"),
        (torch.autograd, "backward", "torch.autograd.backward"),
        (torch.autograd, "grad", "torch.autograd.grad"),
    ):
        _patched[name] = getattr(owner, attribute)
        setattr(owner, attribute, _refusing(name, _patched[name]))


def call_without_autograd(function: Callable, *args, **kwargs) -> Any:
    _install()
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        with torch.no_grad():
            return function(*args, **kwargs)
    except RuntimeError as error:
        if "does not require grad" in str(error):
            raise UsedAutogradError(f"your code used autograd ({error})") from error
        raise
    finally:
        _inside.depth -= 1


def to_torch(value: Any, device: torch.device) -> Any:
    if isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value)) if value.dtype.kind != "O" else value
        return tensor.to(device) if isinstance(tensor, torch.Tensor) else tensor
    if isinstance(value, np.generic):
        return torch.tensor(value.item(), device=device)
    if isinstance(value, Mapping):
        return {key: to_torch(item, device) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(to_torch(item, device) for item in value)
    return value


def to_numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()  # NumPy has no bfloat16; float32 holds every bfloat16 value exactly
        return value.cpu().numpy() if value.device.type != "cpu" else value.numpy()
    if isinstance(value, Mapping) and not isinstance(value, TensorDict):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(to_numpy(item) for item in value)
    return value


class TensorDict(dict):
    """A user's dict of tensors as a dict of NumPy arrays (views on the CPU); setting an item sets the
    tensor in the user's dict too."""

    def __init__(self, tensors: dict, device: torch.device) -> None:
        super().__init__({key: to_numpy(value) for key, value in tensors.items()})
        self.tensors, self.device = tensors, device

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.tensors[key] = to_torch(np.asarray(value), self.device)


def _identities(converted: Any) -> dict:
    """``id`` of each tensor in a converted dict (nested dicts flattened by key path), before the call."""
    if not isinstance(converted, dict):
        return {}
    found: dict = {}
    for key, value in converted.items():
        if isinstance(value, dict):
            found.update({(key, *inner): ident for inner, ident in _identities(value).items()})
        else:
            found[(key,)] = id(value)
    return found


def _write_back(handed: Any, converted: Any, before: dict, path: tuple = ()) -> None:
    """What the user's code did to a dict it was handed, done to the checker's: a tensor updated in place is
    copied into the same array (the checker's array keeps its identity); one rebound to a new tensor, or a
    value that is not a tensor, replaces the item (so an in-place protocol sees the replacement)."""
    if not (isinstance(handed, dict) and isinstance(converted, dict)):
        return
    for key, value in converted.items():
        mine = handed.get(key)
        if isinstance(mine, dict):
            _write_back(mine, value, before, (*path, key))
        elif isinstance(value, torch.Tensor) and before.get((*path, key)) == id(value) and isinstance(mine, np.ndarray):
            if not np.shares_memory(mine, to_numpy(value)):
                mine[...] = to_numpy(value)
        else:
            handed[key] = to_numpy(value).copy() if isinstance(value, torch.Tensor) else value


def wrap_function(function: Callable, device: torch.device) -> Callable:
    def numpy_function(*args, **kwargs):
        converted = [to_torch(arg, device) for arg in args]
        before = [_identities(arg) for arg in converted]
        result = call_without_autograd(function, *converted, **{k: to_torch(v, device) for k, v in kwargs.items()})
        for handed, mine, identities in zip(args, converted, before, strict=True):
            _write_back(handed, mine, identities)
        return to_numpy(result)

    numpy_function.__wrapped__ = function
    return numpy_function


class TorchObject:
    """The user's object, its tensors read as NumPy arrays and its methods called with tensors."""

    def __init__(self, obj: Any, device: torch.device) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_device", device)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_obj", "_device"):  # copy's and pickle's probes, an unset proxy
            raise AttributeError(name)
        value = getattr(self._obj, name)
        if isinstance(value, torch.Tensor):
            return to_numpy(value)
        if isinstance(value, dict) and any(isinstance(item, torch.Tensor) for item in value.values()):
            return TensorDict(value, self._device)
        if name in METHODS and callable(value):
            return wrap_function(value, self._device)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, to_torch(value, self._device) if isinstance(value, np.ndarray) else value)

    def __call__(self, *args, **kwargs):
        return wrap_function(self._obj, self._device)(*args, **kwargs)


def _tensors_held(obj: Any) -> list[torch.Tensor]:
    held = vars(obj).values() if hasattr(obj, "__dict__") and not isinstance(obj, type) else []
    found = [v for v in held if isinstance(v, torch.Tensor)]
    params = getattr(obj, "params", None)
    if isinstance(params, Mapping):
        found += [v for v in params.values() if isinstance(v, torch.Tensor)]
    return found


def _names_torch(function: Any) -> bool:
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    names = set(code.co_names) if code is not None else set()
    return "torch" in names and not names & {"np", "numpy"}


def is_torch_code(obj: Any) -> bool:
    if isinstance(obj, TorchCode):
        return True
    if isinstance(obj, tuple):
        return any(is_torch_code(item) for item in obj)
    if _tensors_held(obj):
        return True
    methods = [getattr(obj, name, None) for name in METHODS if name != "__call__"]
    return any(_names_torch(m) for m in methods if m is not None) or (callable(obj) and _names_torch(obj))


def numpy_side(obj: Any, params: Mapping[str, Any] | None = None) -> Any:
    """``obj`` as the checkers see NumPy code: unchanged when it is NumPy code, else wrapped (see above).
    ``params``: a function's starting parameters (``check_model``'s); given as tensors, their device is the
    function's. JAX code is ``compare.check.forms.jax_arrays``'s (its arrays, its ``jnp``)."""
    from compare.check.forms import jax_arrays  # JAX's side of the same boundary (it imports METHODS from here)

    if jax_arrays.is_jax_code(obj) or any(jax_arrays.is_jax_array(v) for v in (params or {}).values()):
        return jax_arrays.numpy_side(obj)
    if not is_torch_code(obj):
        return obj
    given = [v for v in (params or {}).values() if isinstance(v, torch.Tensor)]
    obj = obj.obj if isinstance(obj, TorchCode) else obj
    if isinstance(obj, tuple):
        return tuple(numpy_side(TorchCode(item)) for item in obj)
    held = _tensors_held(obj) + given
    device = held[0].device if held else torch.device("cpu")
    if callable(obj) and not any(hasattr(obj, name) for name in METHODS[:-1]):
        return wrap_function(obj, device)
    return TorchObject(obj, device)
