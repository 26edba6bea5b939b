"""The conformance suite for a home-made autograd engine: each case written once, as an expression over
objects with Python's operators and torch's method names (``a.relu()``, ``a.tanh()``, ``a.sum()``), so the
same code runs on torch float64 tensors (the reference) and on the user's nodes.

Single ops (``+ - * / **``, negation, relu, tanh, sigmoid, exp, log; for tensor engines sum, mean, matmul
and broadcasting: a (4,) vector, and size-1 axes on either side of ``+ - * /``, ``(3, 1)`` with ``(1, 4)``,
``(3, 4)`` with ``(3, 1)`` or ``(1, 4)``, ``(1, 4)`` with ``(3, 4)``), then graphs: every op with a reused
operand (``a + a``, ``a * a``, ``a - a``, ``a / a + a``, ``a @ a``, and ``f(a) * f(a)`` for each one-operand op
``f``: two nodes of ``f`` hand ``a`` its gradient, so a backward that assigns ``=`` where it should add
``+=`` keeps one of them), a node reached by two paths (fan-out), a deep chain and a mixed expression.
Leaves are named ``a``, ``b``, ``c``; each leaf's values come from its domain (``DOMAINS``), drawn ``DRAWS``
times from a seed; the ReLU's first draw sits on its kink (0, where torch's gradient is 0).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DRAWS = 4
DEPTH = 40  # the deep chain's length: y ← y·b + a, 40 times (80 nodes)
SQUARE = (3, 4)  # a tensor engine's elementwise shape: non-square, so a transposed gradient cannot pass
OPS = (
    "add", "sub", "mul", "div", "pow", "neg", "relu", "tanh", "sigmoid", "exp", "log",
    "sum", "mean", "matmul", "broadcast", "reuse", "fan-out", "deep chain", "expression",
)  # fmt: skip


def _fan_out(a, b, c):
    h = a * b  # reached from the output by two paths: directly and through h·c
    return h * c + h


def _chain(a, b):
    y = a
    for _ in range(DEPTH):
        y = y * b + a
    return y


def _expression(a, b, c):
    return ((a * b + c).tanh() - a / b) ** 2 + (-c).relu()


@dataclass(frozen=True)
class Case:
    """``f`` on leaves drawn from ``domains`` (one per leaf). On a tensor engine the leaves have ``shapes``
    (default: each ``SQUARE``); ``tensor_only`` cases (sum, mean, matmul, broadcasting) skip scalar engines."""

    name: str
    op: str
    f: Callable
    domains: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...] = ()
    tensor_only: bool = False


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _twice(f: Callable) -> Callable:
    """``f(a) * f(a)``: two nodes of ``f`` on one leaf, each handing it a gradient."""
    return lambda a: f(a) * f(a)


# broadcasting with a size-1 axis on either side: the gradient summed over that axis (keepdims) on the way back
SIZE_ONE = (((3, 1), (1, 4)), ((3, 4), (3, 1)), ((3, 4), (1, 4)), ((1, 4), (3, 4)))
ARITHMETIC = (  # (symbol, op, the right operand's domain)
    ("+", lambda a, b: a + b, "any"),
    ("-", lambda a, b: a - b, "any"),
    ("*", lambda a, b: a * b, "any"),
    ("/", lambda a, b: a / b, "away0"),
)
UNARY = (  # (the expression, op, the domain, tensor engines only): each one-operand op, reused in ``f(a) * f(a)``
    ("(a ** 3)", lambda a: a**3, "any", False),
    ("(-a)", lambda a: -a, "any", False),
    ("a.relu()", lambda a: a.relu(), "kink", False),
    ("a.tanh()", lambda a: a.tanh(), "any", False),
    ("a.sigmoid()", lambda a: a.sigmoid(), "any", False),
    ("a.exp()", lambda a: a.exp(), "any", False),
    ("a.log()", lambda a: a.log(), "positive", False),
    ("a.sum()", lambda a: a.sum(), "any", True),
    ("a.mean()", lambda a: a.mean(), "any", True),
)

# a leaf's values: "any" N(0, 1); "positive" in [0.5, 2] (log's domain, a power's base); "away0" ±[0.5, 2]
# (a divisor); "slope" in [0.5, 0.9] (the chain's factor: 40 levels neither explode nor vanish);
# "kink" 0 at the first draw, then N(0, 1)
DOMAINS = ("any", "positive", "away0", "slope", "kink")

CASES = (
    Case("a + b", "add", lambda a, b: a + b, ("any", "any")),
    Case("a - b", "sub", lambda a, b: a - b, ("any", "any")),
    Case("a * b", "mul", lambda a, b: a * b, ("any", "any")),
    Case("a / b", "div", lambda a, b: a / b, ("any", "away0")),
    Case("a ** 3", "pow", lambda a: a**3, ("any",)),
    Case("a ** 2.5", "pow", lambda a: a**2.5, ("positive",)),
    Case("-a", "neg", lambda a: -a, ("any",)),
    Case("a.relu()", "relu", lambda a: a.relu(), ("kink",)),
    Case("a.tanh()", "tanh", lambda a: a.tanh(), ("any",)),
    Case("a.sigmoid()", "sigmoid", lambda a: a.sigmoid(), ("any",)),
    Case("a.exp()", "exp", lambda a: a.exp(), ("any",)),
    Case("a.log()", "log", lambda a: a.log(), ("positive",)),
    Case("a.sum()", "sum", lambda a: a.sum(), ("any",), tensor_only=True),
    Case("a.mean()", "mean", lambda a: a.mean(), ("any",), tensor_only=True),
    Case("a @ b", "matmul", lambda a, b: a @ b, ("any", "any"), ((3, 4), (4, 4)), tensor_only=True),
    Case("a @ b (3x4 @ 4x2)", "matmul", lambda a, b: a @ b, ("any", "any"), ((3, 4), (4, 2)), tensor_only=True),
    Case("a + b (b: 4)", "broadcast", lambda a, b: a + b, ("any", "any"), ((3, 4), (4,)), tensor_only=True),
    *(
        Case(f"a {symbol} b ({_shape(x)}, {_shape(y)})", "broadcast", f, ("any", divisor), (x, y), tensor_only=True)
        for symbol, f, divisor in ARITHMETIC
        for x, y in SIZE_ONE
    ),
    Case("a * a", "reuse", lambda a: a * a, ("any",)),
    Case("a + a", "reuse", lambda a: a + a, ("any",)),
    Case("a - a", "reuse", lambda a: a - a, ("any",)),
    # + a: a / a alone has the gradient 0 exactly, where either side's rounding is all of max_rel
    Case("a / a + a", "reuse", lambda a: a / a + a, ("away0",)),
    Case("a @ a", "reuse", lambda a: a @ a, ("any",), ((4, 4),), tensor_only=True),
    *(Case(f"{e} * {e}", "reuse", _twice(f), (domain,), tensor_only=only) for e, f, domain, only in UNARY),
    Case("h*c + h, h = a*b", "fan-out", _fan_out, ("any", "any", "any")),
    Case(f"y = y*b + a, {DEPTH} times", "deep chain", _chain, ("any", "slope")),
    Case("((a*b + c).tanh() - a/b)**2 + (-c).relu()", "expression", _expression, ("any", "away0", "any")),
)


def draw_leaf(domain: str, shape: tuple[int, ...], draw: int, rng: np.random.Generator) -> np.ndarray:
    """One leaf's values (float64) of ``shape`` (``()`` for a scalar engine)."""
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "away0":
        return rng.choice((-1.0, 1.0), shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "slope":
        return rng.uniform(0.5, 0.9, shape)
    values = rng.standard_normal(shape)
    if domain == "kink" and draw == 0:
        return np.zeros(shape)
    return values


def leaf_shapes(case: Case, tensor: bool) -> tuple[tuple[int, ...], ...]:
    if not tensor:
        return tuple(() for _ in case.domains)
    return case.shapes or tuple(SQUARE for _ in case.domains)


def cases_for(tensor: bool) -> tuple[Case, ...]:
    return tuple(case for case in CASES if tensor or not case.tensor_only)
