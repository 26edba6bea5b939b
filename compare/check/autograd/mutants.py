"""Name an engine mistake the catalog does not hold by replaying the suite on mutants of a correct engine.

``Node`` is a minimal correct engine (scalars as 0-d arrays, or arrays) whose every backward hands its
contribution to an operand through one place, ``Node._give``; a ``Mutation`` changes that place for one op
(and one operand): the gradient assigned instead of accumulated, a broadcast operand's gradient left
unreduced, or an elementwise derivative replaced by a sibling (``1 − t`` for tanh's ``1 − t²``). A mutant
matches when it reproduces the user's gradients on every case the user's engine ran (``check_engine``'s
outcomes) and on every draw: the user's engine then is that mutation, to rounding, named with the op.
Each mutation is tried on ``Node`` and on ``Composite``, whose ``-``, negation and ``/`` are made of ``+``,
``*`` and ``**`` as in micrograd: there a mistake in ``*`` shows in a division too.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from compare.check.autograd.catalog import MATCH
from compare.check.report import Diagnosis
from compare.core.metrics import diff


@dataclass(frozen=True)
class Mutation:
    name: str
    explanation: str
    fix: str
    op: str = ""
    operand: str = "both"  # "self", "other" or "both": which operand's gradient is assigned
    kind: str = "assign"  # "assign", "unreduced" or "derivative"
    derivative: Callable | None = None  # (input, output) → the sibling derivative


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


BROADCASTING = ("add", "sub", "mul", "div")


class Node:
    mutation: Mutation | None = None

    def __init__(self, data, children: tuple = ()) -> None:
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self._prev, self._backward = children, lambda: None

    def _give(self, operand: "Node", value: np.ndarray, op: str, side: str) -> None:
        m = self.mutation
        hit = m is not None and m.op == op and m.operand in (side, "both")
        # only the broadcasting ops reduce: a one-operand op passes on the gradient it was given, of any shape
        keep = (hit and m.kind == "unreduced") or op not in BROADCASTING or np.shape(value) == operand.data.shape
        value = value if keep else _unbroadcast(value, operand.data.shape)
        operand.grad = value if hit and m.kind == "assign" else operand.grad + value

    def _lift(self, other) -> "Node":
        return other if isinstance(other, Node) else type(self)(other)

    def _binary(self, other, op: str, data, da: Callable, db: Callable) -> "Node":
        other = self._lift(other)
        out = type(self)(data(self.data, other.data), (self, other))

        def backward():
            self._give(self, da(self.data, other.data, out.grad), op, "self")
            self._give(other, db(self.data, other.data, out.grad), op, "other")

        out._backward = backward
        return out

    def _unary(self, op: str, data, derivative: Callable) -> "Node":
        out = type(self)(data, (self,))
        m = self.mutation
        if m is not None and m.kind == "derivative" and m.op == op:
            derivative = m.derivative
        out._backward = lambda: self._give(self, derivative(self.data, out.data) * out.grad, op, "self")
        return out

    def __add__(self, other):
        return self._binary(other, "add", np.add, lambda a, b, g: g, lambda a, b, g: g)

    def __sub__(self, other):
        return self._binary(other, "sub", np.subtract, lambda a, b, g: g, lambda a, b, g: -g)

    def __mul__(self, other):
        return self._binary(other, "mul", np.multiply, lambda a, b, g: g * b, lambda a, b, g: g * a)

    def __truediv__(self, other):
        return self._binary(other, "div", np.divide, lambda a, b, g: g / b, lambda a, b, g: -g * a / b**2)

    def __matmul__(self, other):
        return self._binary(other, "matmul", np.matmul, lambda a, b, g: g @ b.T, lambda a, b, g: a.T @ g)

    def __pow__(self, n):
        return self._unary("pow", self.data**n, lambda x, y: n * x ** (n - 1))

    def __neg__(self):
        return self._unary("neg", -self.data, lambda x, y: -np.ones_like(x))

    def relu(self):
        return self._unary("relu", np.maximum(self.data, 0.0), lambda x, y: (x > 0).astype(float))

    def tanh(self):
        return self._unary("tanh", np.tanh(self.data), lambda x, t: 1 - t * t)

    def sigmoid(self):
        return self._unary("sigmoid", 1 / (1 + np.exp(-self.data)), lambda x, s: s * (1 - s))

    def exp(self):
        return self._unary("exp", np.exp(self.data), lambda x, e: e)

    def log(self):
        return self._unary("log", np.log(self.data), lambda x, y: 1 / x)

    def sum(self):
        return self._unary("sum", self.data.sum(), lambda x, y: np.ones_like(x))

    def mean(self):
        return self._unary("mean", self.data.mean(), lambda x, y: np.full_like(x, 1 / x.size))

    def backward(self) -> None:
        order, seen = [], set()

        def visit(node: Node) -> None:
            if id(node) not in seen:
                seen.add(id(node))
                for child in node._prev:
                    visit(child)
                order.append(node)

        visit(self)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


class Composite(Node):
    """The same engine with micrograd's compositions: ``a - b`` as ``a + b·(−1)``, ``−a`` as ``a·(−1)``,
    ``a / b`` as ``a·b⁻¹``; a mutation of ``mul`` or ``add`` then reaches them too, as it does in an
    engine written so (the tests' own ``Tensor``)."""

    def __sub__(self, other):
        return self + self._lift(other) * -1.0

    def __neg__(self):
        return self * -1.0

    def __truediv__(self, other):
        return self * self._lift(other) ** -1


BINARY = ("add", "sub", "mul", "div", "matmul")
UNARY = ("pow", "neg", "relu", "tanh", "sigmoid", "exp", "log", "sum", "mean")
SIBLINGS = (  # (op, how the sibling reads, the sibling, the right rule)
    ("tanh", "1 − t (t = tanh(a), not squared)", lambda x, t: 1 - t, "(1 - t**2) * out.grad with t the output"),
    ("tanh", "1 − a² (the rule on the input)", lambda x, t: 1 - x * x, "(1 - t**2) * out.grad with t the output"),
    ("sigmoid", "s (the 1 − s factor missing)", lambda x, s: s, "s * (1 - s) * out.grad with s the output"),
    ("sigmoid", "1 − s", lambda x, s: 1 - s, "s * (1 - s) * out.grad with s the output"),
    ("exp", "a (the input, not exp(a))", lambda x, e: x, "exp(a) * out.grad: the output itself"),
    ("log", "1/log(a) (the output, not the input)", lambda x, y: 1 / y, "out.grad / a, a the input"),
    ("relu", "1 everywhere", lambda x, y: np.ones_like(x), "(a > 0) * out.grad"),
)


def mutations() -> list[Mutation]:
    """Every mutation tried, in the order they are named."""
    found = []
    for op in BINARY + UNARY:
        sides = ("both", "self", "other") if op in BINARY else ("self",)
        for side in sides:
            which = "" if side == "both" or op in UNARY else f" (its {'left' if side == 'self' else 'right'} operand)"
            found.append(Mutation(
                f"gradient assigned, not accumulated, in {op}{which}",
                f"{op}'s backward sets the operand's gradient (=) instead of adding to it (+=): a node that also "
                "receives a gradient from elsewhere keeps only one contribution",
                f"in {op}'s backward: operand.grad += ..., never operand.grad = ...", op, side, "assign",
            ))  # fmt: skip
    for op in ("add", "sub", "mul", "div"):
        found.append(Mutation(
            f"broadcast gradient not reduced in {op}", f"{op}'s backward hands a broadcast operand the gradient at "
            "the output's shape", f"in {op}'s backward, sum the gradient over the broadcast axes back to the "
            "operand's shape", op, "both", "unreduced",
        ))  # fmt: skip
    for op, reads, sibling, rule in SIBLINGS:
        found.append(Mutation(
            f"{op} derivative written {reads}", f"{op}'s backward multiplies by {reads}", rule, op, "self",
            "derivative", sibling,
        ))  # fmt: skip
    return found


def _replays(
    mutation: Mutation, base: type[Node], f: Callable, leaves: Mapping[str, np.ndarray], grads: Mapping
) -> bool:
    mutant = type("Mutant", (base,), {"mutation": mutation})
    nodes = {name: mutant(value) for name, value in leaves.items()}
    with np.errstate(all="ignore"):
        f(*nodes.values()).backward()
    for name, node in nodes.items():
        mine = grads.get(name)
        if mine is None or not diff(np.asarray(mine), node.grad).within(MATCH):
            return False
    return True


def matching(cases: Sequence, outcomes: Mapping[str, list]) -> list[Diagnosis]:
    """The first mutation that reproduces the user's gradients on every case that ran (``cases``: the suite's
    ``Case`` objects; ``outcomes``: ``check_engine``'s, by case name), the others that do in its ``also``; each
    tried on ``Node`` and on ``Composite`` (its sub, neg and div made of add, mul and pow)."""
    ran = [(case, outcomes[case.name]) for case in cases if outcomes.get(case.name)]
    ran = [(case, runs) for case, runs in ran if all(run.raised is None for run in runs)]
    found = []
    for mutation in mutations():
        if ran and any(_all_replay(mutation, base, ran) for base in (Node, Composite)):
            found.append(Diagnosis(mutation.name, mutation.explanation, MATCH, fix=mutation.fix))
    return [replace(found[0], also=tuple(d.name for d in found[1:]))] if found else []


def _all_replay(mutation: Mutation, base: type[Node], ran: Sequence) -> bool:
    try:
        return all(_replays(mutation, base, case.f, run.leaves, run.grads) for case, runs in ran for run in runs)
    except (ValueError, TypeError, ArithmeticError):  # a mutant that cannot run a case does not match
        return False
