"""graph: computational graphs of add and multiply nodes, each with its local forward and backward.

The lecture's first examples (deep-learning-from-scratch §5.1–5.4): buying 2 apples at 100 with
10 % tax, then 2 apples at 100 and 3 oranges at 150 with tax, and the composite function
z = t², t = x + y for the chain rule. Each node computes only its own piece:

* add node ``z = x + y``: backward passes ``dout`` on unchanged to both inputs (∂z/∂x = ∂z/∂y = 1);
* multiply node ``z = x·y``: backward hands each input ``dout`` times the *other* input, so it must
  keep its forward inputs;
* square node ``z = t²``: backward ``dout·2t``.

Backward runs the nodes in reverse, multiplying each incoming gradient by the node's local
derivative: the chain rule. The same graph is built in torch (the same operator on tensors), and
every node value, every local derivative ∂node/∂input (``torch.autograd.grad`` on that edge alone)
and every end-to-end gradient ∂output/∂value (``backward`` with ``retain_grad``) is compared.
"""

import operator
from dataclasses import dataclass

import torch

from compare.experiments.base import Experiment, Outcome, Pairs, Session, SubRunParity, check_pairs
from compare.experiments.text import pad
from compare.i18n import N_, _


class AddNode:
    """z = x + y;  ∂z/∂x = ∂z/∂y = 1, so backward passes ``dout`` through to both inputs."""

    def forward(self, x: float, y: float) -> float:
        return x + y

    def backward(self, dout: float) -> tuple[float, float]:
        return dout * 1.0, dout * 1.0


class MulNode:
    """z = x·y;  ∂z/∂x = y, ∂z/∂y = x: backward swaps the forward inputs, which it keeps."""

    def forward(self, x: float, y: float) -> float:
        self.x, self.y = x, y
        return x * y

    def backward(self, dout: float) -> tuple[float, float]:
        return dout * self.y, dout * self.x


class SquareNode:
    """z = t²;  ∂z/∂t = 2t."""

    def forward(self, t: float) -> float:
        self.t = t
        return t * t

    def backward(self, dout: float) -> tuple[float]:
        return (dout * 2.0 * self.t,)


NODES = {"add": AddNode, "mul": MulNode, "square": SquareNode}
TORCH_OPS = {"add": operator.add, "mul": operator.mul, "square": lambda t: t * t}  # the same arithmetic on tensors
FORMULAS = {"add": "{} + {}", "mul": "{} × {}", "square": "{}²"}


@dataclass(frozen=True)
class Op:
    out: str
    kind: str  # a key of NODES
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    name: str
    title: str  # English, marked for the catalog (N_); shown through _()
    leaves: dict[str, float]
    ops: tuple[Op, ...]  # in forward order; the last one's output is the graph's output

    @property
    def output(self) -> str:
        return self.ops[-1].out


GRAPHS = (
    Graph(
        "apple",
        N_("2 apples at 100, 10 % tax: price = apple_price × apple_count × tax"),
        {"apple_price": 100.0, "apple_count": 2.0, "tax": 1.1},
        (Op("apple_total", "mul", ("apple_price", "apple_count")), Op("price", "mul", ("apple_total", "tax"))),
    ),
    Graph(
        "apple_orange",
        N_(
            "2 apples at 100 and 3 oranges at 150, 10 % tax: price = (apple_price × apple_count + orange_price "
            "× orange_count) × tax"
        ),
        {"apple_price": 100.0, "apple_count": 2.0, "orange_price": 150.0, "orange_count": 3.0, "tax": 1.1},
        (
            Op("apple_total", "mul", ("apple_price", "apple_count")),
            Op("orange_total", "mul", ("orange_price", "orange_count")),
            Op("subtotal", "add", ("apple_total", "orange_total")),
            Op("price", "mul", ("subtotal", "tax")),
        ),
    ),
    Graph(
        "composite",
        N_("z = t², t = x + y at x = 2, y = 1: the chain rule ∂z/∂x = ∂z/∂t · ∂t/∂x = 2t · 1"),
        {"x": 2.0, "y": 1.0},
        (Op("t", "add", ("x", "y")), Op("z", "square", ("t",))),
    ),
)


@dataclass(frozen=True)
class Params:
    """graph takes no size: its graphs are the lecture's, value for value."""


def manual_pass(graph: Graph) -> tuple[dict[str, float], dict[tuple[str, str], float], dict[str, float]]:
    """Forward through the nodes, then backward in reverse: (values, local derivatives per edge
    (out, input), gradients ∂output/∂value)."""
    values = dict(graph.leaves)
    nodes = []
    for op in graph.ops:
        node = NODES[op.kind]()
        values[op.out] = node.forward(*(values[name] for name in op.inputs))
        nodes.append(node)
    local: dict[tuple[str, str], float] = {}
    grads = {name: 0.0 for name in values}
    grads[graph.output] = 1.0
    for op, node in zip(reversed(graph.ops), reversed(nodes), strict=True):
        for name, d in zip(op.inputs, node.backward(1.0), strict=True):
            local[(op.out, name)] = d  # ∂out/∂input: the node's backward of an upstream 1
        for name, d in zip(op.inputs, node.backward(grads[op.out]), strict=True):
            grads[name] += d  # the chain rule: upstream gradient times the local derivative
    return values, local, grads


def torch_graph(graph: Graph, retain: bool) -> dict[str, torch.Tensor]:
    """The same graph on float64 tensors: leaves that require grad, then each op's output."""
    tensors = {
        name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in graph.leaves.items()
    }
    for op in graph.ops:
        tensors[op.out] = TORCH_OPS[op.kind](*(tensors[name] for name in op.inputs))
        if retain:
            tensors[op.out].retain_grad()  # keep ∂output/∂(this intermediate) after backward
    return tensors


def torch_pass(graph: Graph) -> tuple[dict[str, float], dict[tuple[str, str], float], dict[str, float]]:
    """torch.autograd on the same graph: each edge's local derivative with ``autograd.grad`` on its own
    (a graph without retained gradients, which that call would fill), then ``backward`` from the output."""
    local = {}
    tensors = torch_graph(graph, retain=False)
    for op in graph.ops:
        derivatives = torch.autograd.grad(tensors[op.out], [tensors[name] for name in op.inputs], retain_graph=True)
        local.update({(op.out, name): float(d) for name, d in zip(op.inputs, derivatives, strict=True)})
    tensors = torch_graph(graph, retain=True)
    tensors[graph.output].backward()
    values = {name: float(t.detach()) for name, t in tensors.items()}
    return values, local, {name: float(t.grad) for name, t in tensors.items()}


def conclude(session: Session, n: dict) -> str:
    """The conclusion, in the session's language, from the graphs' numbers ``n``."""
    compared = sum(entry.measured for entry in session.parity)
    conclusion = _(
        "all {compared} node values, local derivatives and gradients equal torch.autograd's (worst max_rel "
        "{worst:.1e}). The multiply node swaps its inputs: ∂price/∂apple_price = apple_count × tax = {d_apple:.4g} "
        "and ∂price/∂tax = apple_price × apple_count = {d_tax:.4g}; the add node passes its gradient on unchanged, "
        "so both fruit totals get ∂price/∂subtotal = tax, and ∂price/∂orange_price = orange_count × tax = "
        "{d_orange:.4g} (price {price:.6g}). Chain rule: ∂z/∂x = ∂z/∂t · ∂t/∂x = 2t · 1 = {dz:.4g} at t = {t:.4g}."
    ).format(
        compared=compared,
        worst=max(n[f"{g.name}/max_rel"] for g in GRAPHS),
        d_apple=n["apple/dprice/dapple_price"],
        d_tax=n["apple/dprice/dtax"],
        d_orange=n["apple_orange/dprice/dorange_price"],
        price=n["apple_orange/price"],
        dz=n["composite/dz/dx"],
        t=n["composite/t"],
    )
    return conclusion


def run(params: Params, session: Session) -> Outcome:
    table = [
        _(
            "the notes' order: 1. build the graph of add and multiply nodes, 2. forward from left to right, "
            "3. backward from right to left, each node multiplying the upstream gradient by its local derivative"
        )
    ]
    numbers: dict[str, float | int | str | None] = {}
    for graph in GRAPHS:
        values, local, grads = manual_pass(graph)
        tvalues, tlocal, tgrads = torch_pass(graph)
        pairs: Pairs = {f"value/{name}": (values[name], tvalues[name]) for name in values}
        pairs |= {f"local/∂{out}/∂{name}": (local[(out, name)], tlocal[(out, name)]) for out, name in local}
        pairs |= {f"grad/∂{graph.output}/∂{name}": (grads[name], tgrads[name]) for name in grads}
        worst = check_pairs(graph.name, 0, pairs)
        session.record(SubRunParity(graph.name, 0, {}, worst, len(pairs)))
        writers = session.writers(graph.name)
        if writers:
            writers.pairs({tag.replace("∂", "d"): pair for tag, pair in pairs.items()}, 0)
            writers.measured("graph", worst, 0)
        formulas = {op.out: f"{op.out} = {FORMULAS[op.kind].format(*op.inputs)}" for op in graph.ops}
        edges = [(formulas[op.out], f"∂{op.out}/∂{name}", op.out, name) for op in graph.ops for name in op.inputs]
        width = max(len(formula) for formula, *_ in edges)
        label_width = max(len(label) for _formula, label, *_rest in edges)
        lines = [
            _("graph {name}: {title}; {output} = {value:.6g}").format(
                name=graph.name, title=_(graph.title), output=graph.output, value=values[graph.output]
            )
        ]
        lines.append(
            f"  {pad(_('node'), width)}  {pad(_('local derivative'), label_width)} "
            f"{pad(_('manual'), 10, '>')} {'torch.autograd':>15}"
        )
        for formula, label, out, name in edges:
            lines.append(
                f"  {pad(formula, width)}  {pad(label, label_width)} {local[(out, name)]:>10.6g} "
                f"{tlocal[(out, name)]:>15.6g}"
            )
        lines.append(
            f"  {pad(_('value'), 14)} {pad(_('forward'), 10, '>')}   "
            f"{_('∂{output}/∂value: manual').format(output=graph.output):>24} {'torch.autograd':>15}"
        )
        for name in values:
            lines.append(f"  {pad(name, 14)} {values[name]:>10.6g}   {grads[name]:>24.6g} {tgrads[name]:>15.6g}")
        if writers:
            writers.text("graph", lines)
            writers.close()
        table += lines
        numbers |= {f"{graph.name}/{name}": values[name] for name in values}
        numbers |= {f"{graph.name}/d{graph.output}/d{name}": grads[name] for name in graph.leaves}
        numbers[f"{graph.name}/max_rel"] = worst

    conclusion = conclude(session, numbers)
    return Outcome(table, conclusion, numbers)


EXPERIMENT = Experiment(
    "graph",
    N_(
        "computational graphs: add/multiply nodes with local forward and backward (the apple-and-orange bill), "
        "the chain rule through z = (x + y)²; every local gradient vs torch.autograd"
    ),
    Params,
    run,
)
