"""The classic mistakes of a home-made autograd engine, as data: each names the suite case it shows on
(``compare.check.autograd.suite``) and the gradients the mistake produces there, from the leaves' values,
with the output's gradient seeded to ones (as ``backward()`` seeds it).

``check_engine`` names a mistake when the user's gradients on that case equal the mistake's, at every
draw, to ``MATCH`` (the user's engine then is that mistake, to rounding), or when the engine raised
there the error the mistake raises (``raised``). ``gradients`` may give several
alternatives (a mistake whose numbers depend on the order the engine visits a node's children in).
Each entry is proven named by a test on an engine with the mistake injected (``tests/test_check_engine.py``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MATCH = 1e-8  # relative: float64 engines reproduce a mistake's numbers to a few ulps (1e-15); 1e-8 is far above

Grads = dict[str, np.ndarray]


@dataclass(frozen=True)
class EngineBug:
    name: str
    explanation: str
    fix: str  # the one-line fix
    case: str  # the suite case (``Case.name``) it shows on
    gradients: Callable[..., list[Grads]]  # leaves' values → the gradients the mistake gives (alternatives)
    raised: str | None = None  # or a part of the error the mistake raises on its case (NumPy's, say)


def _ones(a: np.ndarray) -> np.ndarray:
    return np.ones_like(a)


def _recursive(a, b, c) -> list[Grads]:
    # h = a*b reached twice: h's backward runs once per path, with h's gradient so far (order-dependent)
    twice = {"a": 2 * b * (1 + c), "b": 2 * a * (1 + c), "c": a * b}
    direct_first = {"a": b * (2 + c), "b": a * (2 + c), "c": a * b}
    return [twice, direct_first]


CATALOG: tuple[EngineBug, ...] = (
    EngineBug(
        "gradient assigned, not accumulated",
        "a node used twice keeps only the last contribution: a*a gives a, not 2a",
        "in every op's backward, self.grad += ..., never self.grad = ...",
        "a * a",
        lambda a: [{"a": a}],
    ),
    EngineBug(
        "output gradient not seeded",
        "backward() starts from a zero gradient at the output, so every gradient is 0",
        "set the output's grad to 1 (ones for a tensor) before walking the graph",
        "a * b",
        lambda a, b: [{"a": 0 * a, "b": 0 * b}],
    ),
    EngineBug(
        "topological order not reversed",
        "nodes are visited from the leaves up, each before its consumers gave it a gradient: only the "
        "output's own backward counts",
        "for node in reversed(topo): node._backward()",
        "y = y*b + a, 40 times",
        lambda a, b: [{"a": _ones(a), "b": 0 * b}],
    ),
    EngineBug(
        "no topological sort (backward recurses into children)",
        "a node reached by two paths passes its gradient on once per path, the first time before it is complete",
        "build the topological order once (a node after every node it feeds), then call each _backward "
        "once, in reverse",
        "h*c + h, h = a*b",
        _recursive,
    ),
    EngineBug(
        "power rule missing its exponent",
        "d(a**n)/da computed as a**(n-1)",
        "multiply by the exponent: a.grad += n * a**(n - 1) * out.grad",
        "a ** 3",
        lambda a: [{"a": a**2}],
    ),
    EngineBug(
        "power rule exponent not decremented",
        "d(a**n)/da computed as n * a**n",
        "lower the power by one: a.grad += n * a**(n - 1) * out.grad",
        "a ** 3",
        lambda a: [{"a": 3 * a**3}],
    ),
    EngineBug(
        "ReLU gradient 1 at 0",
        "the mask is a >= 0; torch's ReLU has gradient 0 at 0",
        "(out.data > 0) * out.grad",
        "a.relu()",
        lambda a: [{"a": (a >= 0).astype(float)}],
    ),
    EngineBug(
        "tanh derivative from the input",
        "1 - a**2 with a the input, where the rule is 1 - t**2 with t = tanh(a), the output",
        "(1 - t**2) * out.grad with t the output",
        "a.tanh()",
        lambda a: [{"a": 1 - a**2}],
    ),
    EngineBug(
        "sigmoid derivative from the input",
        "a * (1 - a) with a the input, where the rule is s * (1 - s) with s = sigmoid(a), the output",
        "s * (1 - s) * out.grad with s the output",
        "a.sigmoid()",
        lambda a: [{"a": a * (1 - a)}],
    ),
    EngineBug(
        "subtraction's right operand not negated",
        "a - b gives b the gradient +out.grad",
        "other.grad -= out.grad (a - b is a + (-b))",
        "a - b",
        lambda a, b: [{"a": _ones(a), "b": _ones(b)}],
    ),
    EngineBug(
        "quotient rule: divisor's gradient sign",
        "d(a/b)/db computed as +a/b**2",
        "other.grad -= self.data / other.data**2 * out.grad",
        "a / b",
        lambda a, b: [{"a": 1 / b, "b": a / b**2}],
    ),
    EngineBug(
        "broadcast gradient not reduced",
        "a broadcast operand receives the output's gradient at the output's shape",
        "sum the gradient over the broadcast axes: grad.sum(axis=leading).reshape(operand.shape) "
        "(keepdims for size-1 axes)",
        "a + b (b: 4)",
        lambda a, b: [{"a": _ones(a), "b": np.ones(np.broadcast_shapes(a.shape, b.shape))}],
        raised="non-broadcastable output operand",  # NumPy's error for b.grad += <the output's shape>
    ),
    EngineBug(
        "gradient not summed over the broadcast size-1 axis",
        "an operand of shape (3, 1) or (1, 4), broadcast along its size-1 axis, receives the output's gradient "
        "at the output's shape: only the leading axes added by broadcasting are summed",
        "sum the gradient over the operand's size-1 axes too: grad.sum(axis=i, keepdims=True) for every i where "
        "operand.shape[i] == 1",
        "a + b (3x1, 1x4)",
        lambda a, b: [{name: np.ones(np.broadcast_shapes(a.shape, b.shape)) for name in "ab"}],
        raised="non-broadcastable output operand",  # NumPy's error for a.grad += <the output's shape>
    ),
    EngineBug(
        "mean's gradient not divided by the count",
        "mean's backward passes out.grad to every element, as sum's does",
        "out.grad / n, n the number of elements averaged",
        "a.mean()",
        lambda a: [{"a": _ones(a)}],
    ),
    EngineBug(
        "matmul gradient not transposed",
        "d(a @ b)/da computed as out.grad @ b",
        "a.grad += out.grad @ b.T; b.grad += a.T @ out.grad",
        "a @ b",
        lambda a, b: [{"a": np.ones((a.shape[0], b.shape[1])) @ b}],
    ),
)
