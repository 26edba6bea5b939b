"""An output whose shape is not torch's, named as such, with both shapes, before anything is handed to the
user's backward.

A layer's backward is handed ``dout``, dL/d(out), of torch's output shape: when the user's output has another
shape (a convolution with other padding or stride, a channels-last pooling against torch's channels-first
one), no ``dout`` fits both sides, and the backward would end in an ``IndexError`` or a broadcasting error
that says nothing of the cause. So the forward outputs' shapes are compared first, and a difference is the
finding ``shape`` (``Failure.problem``), its line naming both shapes and the likely cause:

* channels last against channels first: the user's shape is torch's with axis 1 moved to the end, or a
  spatial torch module (one with a ``kernel_size``) reads the user's channels-last ``x`` as channels first
  (a convolution or batch norm raises on it instead: ``reference_forward`` says the same);
* the spatial sizes differ with batch and channels alike: padding, stride, kernel or dilation;
* a 2-D output that is torch's transposed: samples as columns;
* as many values in another arrangement: a reshape or transpose; else torch's module with its arguments.
"""

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

import compare.check.sandbox.guard as guard
from compare.check.report import Failure
from compare.check.sandbox.guard import UserCodeError

SPATIAL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")  # what sets a spatial module's output size


def _described(module: nn.Module) -> str:
    """``module`` in one line: its ``repr`` with the lines joined."""
    return " ".join(repr(module).split())


def _permutation(ndim: int) -> tuple[str, str]:
    """The axes that take channels last to first, and back: ``(0, 3, 1, 2)``, ``(0, 2, 3, 1)`` for 4-D."""
    first = (0, ndim - 1, *range(1, ndim - 1))
    last = (0, *range(2, ndim), 1)
    return str(first), str(last)


def _owner(module: Any) -> str:
    """Whose output the user's is compared with: ``torch's Conv2d``, or ``the reference`` (a function)."""
    return f"torch's {type(module).__name__}" if isinstance(module, nn.Module) else "the reference"


def _channels_fix(owner: str, ndim: int) -> str:
    first, last = _permutation(ndim)
    return (
        f"yours keeps channels last, {owner} first (N, C, ...): check against a twin that permutes, "
        f"its forward returning module(x.permute{first}).permute{last}"
    )


def _channels_last(mine: tuple, theirs: tuple, module: Any, x_shape: tuple | None) -> bool:
    """Whether the user's layer keeps channels last where torch's keeps them first."""
    if len(mine) < 3 or len(mine) != len(theirs):
        return False
    if mine == (theirs[0], *theirs[2:], theirs[1]):
        return True
    spatial = isinstance(module, nn.Module) and hasattr(module, "kernel_size")
    channels = getattr(module, "out_channels", None)
    kept_last = x_shape is not None and len(x_shape) == len(mine) and mine[-1] in (x_shape[-1], channels)
    return spatial and kept_last and mine[-1] != mine[1]


def hint(mine: tuple, theirs: tuple, module: Any = None, x_shape: tuple | None = None) -> str:
    """What most likely makes the user's output shape ``mine`` differ from torch's ``theirs`` (see the module's
    docstring), and what to do, in one clause."""
    owner = _owner(module)
    if _channels_last(mine, theirs, module, x_shape):
        return _channels_fix(owner, len(mine))
    if len(mine) == len(theirs) >= 3 and mine[:2] == theirs[:2] and hasattr(module, "kernel_size"):
        arguments = ", ".join(f"{key}={getattr(module, key)}" for key in SPATIAL if hasattr(module, key))
        return (
            f"the spatial sizes differ ({mine[2:]} against {theirs[2:]}): {owner} has {arguments} "
            "(size = (H + 2·padding − dilation·(kernel − 1) − 1) // stride + 1): give it your layer's padding and "
            "stride"
        )
    if len(mine) == len(theirs) == 2 and mine == theirs[::-1]:
        return "yours is the transpose of torch's: samples are rows, (N, features), on both sides"
    if int(np.prod(mine)) == int(np.prod(theirs)):
        return f"as many values in another arrangement: a reshape or transpose differs from {owner}'s"
    if isinstance(module, nn.Module):
        return f"give torch's module the arguments your code uses (torch's: {_described(module)})"
    return "return what the reference returns, of its shape"


def _mismatch(step: int, tensor: str, message: str) -> UserCodeError:
    failure = Failure(step, "forward", tensor, np.inf, np.inf, problem="shape", message=message)
    return UserCodeError(failure)


def same_output(
    step: int, where: str, what: str, mine: Any, theirs: Sequence[int], module: Any, x: Any, tensor: str = "out"
) -> None:
    """``UserCodeError`` (the finding ``shape``) when ``mine``, the user's forward output, has another shape than
    torch's ``theirs``: ``<what> has shape (...) where torch's has (...)`` (``what``: "your layer's output"),
    and the hint."""
    mine_shape, theirs_shape = tuple(np.shape(mine)), tuple(theirs)
    if mine_shape == theirs_shape:
        return
    x_shape = None if x is None else tuple(np.shape(x))
    whose = "torch's" if isinstance(module, nn.Module) else "the reference's"
    message = (
        f"shape: {where}, step {step}, forward: {what} has shape {mine_shape} where {whose} has "
        f"{theirs_shape}, so no dL/d(out) fits both (nothing after the forward compared); "
        f"fix: {hint(mine_shape, theirs_shape, module, x_shape)}"
    )
    raise _mismatch(step, tensor, message)


def reference_forward(step: int, module: nn.Module, xt: Any) -> Any:
    """torch's ``module(xt)``; when it raises on an ``x`` whose last axis has the module's channels and whose
    axis 1 has not (channels last, where torch takes them first), the finding ``shape`` saying so."""
    try:
        return guard.call(step, "forward", "torch_module(x)", module, xt)
    except UserCodeError as error:
        if error.failure.problem != "exception":  # a timeout: nothing about shapes
            raise
        shape = tuple(xt.shape)
        channels = getattr(module, "in_channels", getattr(module, "num_features", None))
        if not (len(shape) >= 3 and channels is not None and shape[-1] == channels != shape[1]):
            raise
        owner = _owner(module)
        message = (
            f"shape: torch_module(x), step {step}, forward: {owner} takes channels first, (N, {channels}, ...), "
            f"and raised on your x of shape {shape} ({error.failure.message}); fix: {_channels_fix(owner, len(shape))}"
        )
        raise _mismatch(step, "out", message) from None


def same_outputs(step: int, where: str, mine: Sequence[Any], theirs: Sequence[Any], reference: Any) -> None:
    """``same_output`` for each of a function's outputs (``out``, or ``out0``, ``out1``, ...); a different number
    of outputs is the finding ``shape`` too."""
    if len(mine) != len(theirs):
        message = (
            f"shape: {where}, step {step}, forward: your function returned {len(mine)} output(s) where the reference "
            f"returns {len(theirs)}; fix: return as many, in the reference's order"
        )
        raise _mismatch(step, "out", message)
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        tensor = "out" if len(mine) == 1 else f"out{i}"
        what = "your function's output" if len(mine) == 1 else f"your function's output {i}"
        same_output(step, where, what, a, tuple(np.shape(b)), reference, None, tensor)


@contextlib.contextmanager
def layer_shapes(model: nn.Sequential, outputs: Mapping[str, Any], step: int) -> Iterator[None]:
    """While torch's ``model`` runs a forward, each module's output is held to the user's layer's (``outputs``:
    ``<i>.out`` → the array the user's layer ``i`` returned): the first of another shape is the finding
    ``shape`` at ``<i>.out``, before a later module raises on it or a dL/d(out) is handed to the user."""

    def hook(index: int):
        def check(module: nn.Module, inputs: tuple, output: Any) -> None:
            name = f"{index}.out"
            if name in outputs and hasattr(output, "shape"):
                x = inputs[0] if inputs else None
                what = f"your layer {index}'s output"
                same_output(step, "torch_model(x)", what, outputs[name], tuple(output.shape), module, x, name)

        return check

    handles = [module.register_forward_hook(hook(i)) for i, module in enumerate(model)] if outputs else []
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
