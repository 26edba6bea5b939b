"""User code written in JAX, seen by the checkers as NumPy code: ``numpy_side(obj)``; and a JAX function
(a ``jax.custom_vjp``, a ``jnp`` composition) seen by ``check_function`` as a torch one: ``torch_facing(fn)``.

``check_layer``, ``check_loss``, ``check_optimizer`` and ``check_model`` speak NumPy to the user's code
(``compare.check.forms.torch_tensors.numpy_side`` hands JAX code here). When that code holds ``jax.Array``
parameters or is written with ``jax.numpy``, everything crossing the boundary is converted:

* in: NumPy arrays become jax arrays of the same dtype (the check's: ``jax_ref`` turns ``jax_enable_x64``
  on, so float64 stays float64), copied; dicts, lists and tuples (named ones too) item by item;
* out: jax arrays become NumPy arrays (writable copies);
* JAX arrays are immutable, so an update is a rebinding (``params[k] = params[k] - lr * g``,
  ``self.W = ...``): what the user's code rebinds in a dict it was handed is read back into the checker's
  array (the same array, so an in-place protocol is kept); an object's jax attributes and dicts of them
  are read by the checker as NumPy mirrors, written into the object (as jax arrays) before each call of
  its methods when the checker changed them, and read back after each call.

Told apart by what it holds (a jax array among its attributes or its ``params``), by its type (jax's or
optax's own callables: a ``jax.jit`` or ``jax.custom_vjp`` function, an optax ``GradientTransformation``),
or, for functions, by the names its code uses (``jnp`` or ``jax``, and not ``torch``); ``JaxCode(obj)`` says
it outright. Nothing here imports JAX unless the user's code already did (``jax`` in ``sys.modules``).
Unlike torch code, a JAX backward that calls ``jax.grad`` is not detected: JAX's differentiation has no
single entry point to refuse.
"""

import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from compare.check.forms.torch_tensors import METHODS

JAX_MODULES = ("jax", "jaxlib", "optax")  # the top-level packages whose own objects are JAX code


class JaxCode:
    """Marks ``obj`` (an object, a function or a tuple of functions) as working on jax arrays."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj


def _jnp() -> Any:
    import jax.numpy as jnp  # the user's code imported it already (is_jax_code)

    import jax_ref  # noqa: F401 (jax_enable_x64: float64 arrays stay float64)

    return jnp


def is_jax_array(value: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.Array)


def _named_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _rebuilt(value: tuple | list, items: list) -> Any:
    return type(value)(*items) if _named_tuple(value) else type(value)(items)


def to_jax(value: Any) -> Any:
    """NumPy arrays (in containers too) as jax arrays of their dtype; scalars and anything else as they are."""
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        return _jnp().array(value)  # a copy: the checker may write into its array later
    if isinstance(value, Mapping):
        return {key: to_jax(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return _rebuilt(value, [to_jax(item) for item in value])
    return value


def to_numpy(value: Any) -> Any:
    """jax arrays (in containers too) as writable NumPy arrays; anything else as it is."""
    if is_jax_array(value):
        if value.dtype.name == "bfloat16":
            value = value.astype("float32")  # float32 holds every bfloat16 value exactly
        return np.array(value)
    if isinstance(value, Mapping):
        return {key: to_numpy(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return _rebuilt(value, [to_numpy(item) for item in value])
    return value


def _into(mine: Any, value: Any) -> np.ndarray:
    """``value`` (a jax array) read back into the checker's array ``mine`` when it has its shape (the array
    keeps its identity), else as a new array."""
    array = to_numpy(value)
    if isinstance(mine, np.ndarray) and mine.shape == array.shape and mine.flags.writeable:
        mine[...] = array
        return mine
    return array


def _same(current: Any, mine: np.ndarray) -> bool:
    """Whether the user's jax array ``current`` holds what the checker's ``mine`` holds."""
    if not is_jax_array(current) or current.shape != mine.shape:
        return False
    return bool(np.array_equal(to_numpy(current), mine, equal_nan=mine.dtype.kind in "fc"))


def _write_back(handed: Any, converted: Any) -> None:
    """What the user's code rebound in a dict it was handed, done to the checker's dict: an array read back
    into the checker's array (``_into``), anything else set as it is."""
    if not (isinstance(handed, dict) and isinstance(converted, dict)):
        return
    for key, value in converted.items():
        mine = handed.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            _write_back(mine, value)
        elif is_jax_array(value):
            read = _into(mine, value)
            if read is not mine:
                handed[key] = read
        elif value is not mine:
            handed[key] = to_numpy(value)


def wrap_function(function: Callable) -> Callable:
    def numpy_function(*args, **kwargs):
        converted = [to_jax(arg) for arg in args]
        result = function(*converted, **{key: to_jax(value) for key, value in kwargs.items()})
        for handed, mine in zip(args, converted, strict=True):
            _write_back(handed, mine)
        return to_numpy(result)

    numpy_function.__wrapped__ = function
    return numpy_function


class ArrayDict(dict):
    """A user's dict of jax arrays as the checker's dict of NumPy arrays: set items reach the user's dict
    at once, arrays changed in place before the next call (``push``); ``pull`` reads the user's dict back."""

    def __init__(self, held: dict) -> None:
        super().__init__()
        self.held = held
        self.pull(held)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.held[key] = to_jax(value)

    def push(self) -> None:
        for key, mine in self.items():
            if isinstance(mine, np.ndarray) and not _same(self.held.get(key), mine):
                self.held[key] = to_jax(mine)

    def pull(self, held: dict) -> None:
        self.held = held
        for key in [key for key in self if key not in held]:
            super().__delitem__(key)
        for key, value in held.items():
            super().__setitem__(key, _into(dict.get(self, key), value) if is_jax_array(value) else value)


def _holds_jax(value: Any) -> bool:
    return isinstance(value, dict) and any(is_jax_array(item) for item in value.values())


class JaxObject:
    """The user's object, its jax arrays read as NumPy mirrors and its methods called with jax arrays."""

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_mirrors", {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_obj", "_mirrors"):  # copy's and pickle's probes, an unset proxy
            raise AttributeError(name)
        if name in self._mirrors:
            return self._mirrors[name]
        value = getattr(self._obj, name)
        if is_jax_array(value) or _holds_jax(value):
            self._mirrors[name] = ArrayDict(value) if isinstance(value, dict) else to_numpy(value)
            return self._mirrors[name]
        if name in METHODS and callable(value):
            return self._method(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, to_jax(value) if isinstance(value, np.ndarray) else value)
        if isinstance(value, np.ndarray):
            self._mirrors[name] = value
        else:
            self._mirrors.pop(name, None)

    def __call__(self, *args, **kwargs):
        return self._method(self._obj)(*args, **kwargs)

    def _method(self, method: Callable) -> Callable:
        wrapped = wrap_function(method)

        def called(*args, **kwargs):
            self._push()
            try:
                return wrapped(*args, **kwargs)
            finally:
                self._pull()

        return called

    def _push(self) -> None:
        for name, mine in self._mirrors.items():
            if isinstance(mine, ArrayDict):
                mine.push()
            elif not _same(getattr(self._obj, name, None), mine):
                setattr(self._obj, name, to_jax(mine))

    def _pull(self) -> None:
        for name, mine in list(self._mirrors.items()):
            current = getattr(self._obj, name, None)
            if isinstance(mine, ArrayDict) and isinstance(current, dict):
                mine.pull(current)
            elif is_jax_array(current) and not isinstance(mine, ArrayDict):
                self._mirrors[name] = _into(mine, current)
            else:
                del self._mirrors[name]


def _arrays_held(obj: Any) -> list[Any]:
    held = vars(obj).values() if hasattr(obj, "__dict__") and not isinstance(obj, type) else []
    found = [value for value in held if is_jax_array(value)]
    params = getattr(obj, "params", None)
    if isinstance(params, Mapping):
        found += [value for value in params.values() if is_jax_array(value)]
    return found


def _names_jax(function: Any) -> bool:
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    names = set(code.co_names) if code is not None else set()
    return bool(names & {"jnp", "jax"}) and "torch" not in names


def _jax_type(obj: Any) -> bool:
    return type(obj).__module__.partition(".")[0] in JAX_MODULES


def is_jax_code(obj: Any) -> bool:
    if isinstance(obj, JaxCode):
        return True
    if "jax" not in sys.modules:  # code that never imported JAX holds no jax array
        return False
    if isinstance(obj, tuple) and not _named_tuple(obj):
        return any(is_jax_code(item) for item in obj)
    if _jax_type(obj) or _arrays_held(obj):
        return True
    methods = [getattr(obj, name, None) for name in METHODS if name != "__call__"]
    return any(_names_jax(m) for m in methods if m is not None) or (callable(obj) and _names_jax(obj))


def numpy_side(obj: Any) -> Any:
    """``obj`` (JAX code: ``is_jax_code``) as the checkers see NumPy code (see above)."""
    obj = obj.obj if isinstance(obj, JaxCode) else obj
    if isinstance(obj, tuple) and not _named_tuple(obj):
        return tuple(numpy_side(JaxCode(item)) for item in obj)
    if callable(obj) and not any(hasattr(obj, name) for name in METHODS[:-1]):
        return wrap_function(obj)
    return JaxObject(obj)


def _jax_input(tensor: torch.Tensor) -> Any:
    """A torch tensor as a jax array of its dtype (bfloat16 through float32, which NumPy lacks)."""
    jnp = _jnp()
    value = tensor.detach().cpu()
    if value.dtype == torch.bfloat16:
        return jnp.array(value.float().numpy(), dtype=jnp.bfloat16)
    return jnp.array(value.numpy())


def _torch_output(value: Any, device: torch.device) -> torch.Tensor:
    dtype = getattr(torch, value.dtype.name)
    return torch.from_numpy(to_numpy(value)).to(device=device, dtype=dtype)


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def torch_facing(fn: Any) -> Any:
    """A JAX function (``is_jax_code``: a ``jax.custom_vjp``, a ``jnp`` composition) as the ``apply`` of a
    ``torch.autograd.Function`` whose backward is JAX's ``jax.vjp`` of ``fn`` (a custom_vjp's own ``bwd``;
    JAX's differentiation for a plain composition), over the floating inputs; anything else as it is."""
    if isinstance(fn, type) or not is_jax_code(fn):
        return fn
    import jax

    fn = fn.obj if isinstance(fn, JaxCode) else fn

    class JaxFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            floating = [i for i, x in enumerate(inputs) if _floating(x)]
            values = [_jax_input(x) if isinstance(x, torch.Tensor) else x for x in inputs]

            def of_floating(*xs):
                args = list(values)
                for i, x in zip(floating, xs, strict=True):
                    args[i] = x
                out = fn(*args)
                return tuple(out) if isinstance(out, tuple | list) else (out,)

            outs, ctx.vjp = jax.vjp(of_floating, *(values[i] for i in floating))
            ctx.floating, ctx.count = floating, len(inputs)
            ctx.device = next((x.device for x in inputs if isinstance(x, torch.Tensor)), torch.device("cpu"))
            results = tuple(_torch_output(out, ctx.device) for out in outs)
            return results if len(results) > 1 else results[0]

        @staticmethod
        def backward(ctx, *grads):
            found = ctx.vjp(tuple(_jax_input(g) for g in grads))
            result: list[Any] = [None] * ctx.count
            for i, grad in zip(ctx.floating, found, strict=True):
                result[i] = _torch_output(grad, ctx.device)
            return tuple(result)

    return JaxFunction.apply
