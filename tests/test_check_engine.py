"""check_engine: the tests' own engines (tests/engines.py) pass; each mistake of the engine catalog,
injected into one of them by overriding one op, is named."""

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from engines import ArrayTensor, Tensor, Value, unbroadcast
from torch import nn

from compare import check_model
from compare.bench import engine_speed
from compare.check.autograd.catalog import CATALOG
from compare.check.autograd.network import engine_model
from compare.check.check_engine import Protocol, check_engine
from compare.cli.main import main
from conftest import starts_in_order


def _mul_assigned(self, other):
    other = self._lift(other)
    out = self._node(self.data * other.data, (self, other))

    def _backward():
        self.grad = other.data * out.grad
        other.grad = self.data * out.grad

    out._backward = _backward
    return out


def _backward_from(order_of):
    def backward(self):
        self.grad = 1.0
        for node in order_of(self.topological()):
            node._backward()

    return backward


def _not_seeded(self):
    for node in reversed(self.topological()):
        node._backward()


def _recursive(self):
    def visit(node):
        node._backward()
        for child in node._prev:
            visit(child)

    self.grad = 1.0
    visit(self)


def _binary(forward, derivatives):
    """A scalar op with its own backward: derivatives(a, b) → (d/da, d/db)."""

    def op(self, other):
        other = self._lift(other)
        out = self._node(forward(self.data, other.data), (self, other))

        def _backward():
            da, db = derivatives(self.data, other.data)
            self.grad += da * out.grad
            other.grad += db * out.grad

        out._backward = _backward
        return out

    return op


def _broadcast_not_reduced(self, other, forward, backward):
    out = self._node(forward(self.data, other.data), (self, other))

    def _backward():
        ga, gb = backward(out.grad, self.data, other.data)
        self.grad = self.grad + ga
        other.grad = other.grad + gb

    out._backward = _backward
    return out


def _matmul_not_transposed(self, other):
    out = self._node(self.data @ other.data, (self, other))

    def _backward():
        self.grad += out.grad @ other.data
        other.grad += self.data.T @ out.grad

    out._backward = _backward
    return out


def _add_over_leading_axes(in_place: bool):
    """``+`` whose backward sums the axes broadcasting added, not a size-1 axis: ``+=`` (NumPy refuses the
    output's shape) or ``grad = grad + ...`` (the gradient takes the output's shape)."""

    def add(self, other):
        other = self._lift(other)
        out = self._node(self.data + other.data, (self, other))

        def _backward():
            for node in (self, other):
                summed = out.grad.sum(axis=tuple(range(out.grad.ndim - node.data.ndim)))
                if in_place:
                    node.grad += summed
                else:
                    node.grad = node.grad + summed

        out._backward = _backward
        return out

    return add


_add_summed_over_leading_axes_only = _add_over_leading_axes(in_place=True)


MISTAKES = {  # catalog name → (engine, the op(s) overridden)
    "gradient assigned, not accumulated": (Value, {"__mul__": _mul_assigned}),
    "output gradient not seeded": (Value, {"backward": _not_seeded}),
    "topological order not reversed": (Value, {"backward": _backward_from(lambda order: order)}),
    "no topological sort (backward recurses into children)": (Value, {"backward": _recursive}),
    "power rule missing its exponent": (
        Value,
        {"__pow__": lambda s, n: s._unary(s.data**n, lambda x, y: x ** (n - 1))},
    ),
    "power rule exponent not decremented": (
        Value,
        {"__pow__": lambda s, n: s._unary(s.data**n, lambda x, y: n * x**n)},
    ),
    "ReLU gradient 1 at 0": (Value, {"relu": lambda s: s._unary(max(s.data, 0.0), lambda x, y: float(x >= 0))}),
    "tanh derivative from the input": (Value, {"tanh": lambda s: s._unary(math.tanh(s.data), lambda x, t: 1 - x * x)}),
    "sigmoid derivative from the input": (
        Value,
        {"sigmoid": lambda s: s._unary(1 / (1 + math.exp(-s.data)), lambda x, y: x * (1 - x))},
    ),
    "subtraction's right operand not negated": (Value, {"__sub__": _binary(lambda a, b: a - b, lambda a, b: (1, 1))}),
    "quotient rule: divisor's gradient sign": (
        Value,
        {"__truediv__": _binary(lambda a, b: a / b, lambda a, b: (1 / b, a / b**2))},
    ),
    "broadcast gradient not reduced": (Tensor, {"_broadcast": _broadcast_not_reduced}),
    "mean's gradient not divided by the count": (
        Tensor,
        {"mean": lambda s: s._unary(s.data.mean(), lambda x, y: np.ones_like(x))},
    ),
    "matmul gradient not transposed": (Tensor, {"__matmul__": _matmul_not_transposed}),
    "gradient not summed over the broadcast size-1 axis": (Tensor, {"__add__": _add_summed_over_leading_axes_only}),
}


def test_every_catalog_entry_has_an_injection_test():
    assert set(MISTAKES) == {bug.name for bug in CATALOG}


@pytest.mark.parametrize("engine", [Value, Tensor], ids=["scalar", "tensor"])
def test_the_tests_engines_pass(engine):
    report = check_engine(engine)
    assert report.passed, report
    tensor_ops = {"sum", "mean", "matmul", "broadcast"}
    supported = {op for op, status in report.ops.items() if status["supported"]}
    assert supported >= {"add", "pow", "relu", "reuse", "fan-out", "deep chain"}
    assert (tensor_ops <= supported) == (engine is Tensor)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_injected_engine_mistake_is_named(name):
    engine, ops = MISTAKES[name]
    buggy = type(f"Buggy{engine.__name__}", (engine,), ops)
    report = check_engine(buggy)
    assert not report.passed
    assert report.diagnosis is not None and report.diagnosis.name == name, report
    (bug,) = [bug for bug in CATALOG if bug.name == name]
    assert report.diagnosis.fix == bug.fix and f"fix: {bug.fix}" in report.diagnosis.line()


def test_unsupported_ops_are_reported_not_failed_and_a_raising_engine_is_a_finding():
    class Minimal(Value):  # micrograd's own op set: no sigmoid, exp or log
        sigmoid = exp = log = property(lambda self: (_ for _ in ()).throw(AttributeError("no such op")))

    report = check_engine(Minimal)
    assert report.passed, report
    assert [op for op, s in report.ops.items() if not s["supported"]] == ["sigmoid", "exp", "log"]

    def boom(self):
        raise RuntimeError("graph too deep")

    failed = check_engine(type("Raising", (Value,), {"backward": boom}))
    assert not failed.passed and "raised RuntimeError: graph too deep" in failed.first_failure.line()


def test_a_protocol_other_than_the_defaults():
    def leaf(x):
        return Tensor(np.asarray(x))  # arrays in; values and gradients read by functions

    report = check_engine(leaf, value=lambda n: n.data, grad=lambda n: unbroadcast(n.grad, n.data.shape), tensor=True)
    assert report.passed and report.ops["matmul"]["supported"], report


FILES = {  # the CLI's names: an engine; a custom autograd.Function with its reference and inputs
    "engine": "import sys\nsys.path.insert(0, {tests!r})\nfrom engines import Value as engine\n",
    "function": (
        "import torch\nfrom torch.nn import functional\n"
        "class Square(torch.autograd.Function):\n"
        "    @staticmethod\n    def forward(ctx, x):\n        ctx.save_for_backward(x)\n        return x * x\n"
        "    @staticmethod\n    def backward(ctx, dout):\n"
        "        (x,) = ctx.saved_tensors\n        return {factor} * x * dout\n"
        "function, reference, inputs = Square, lambda x: x**2, (torch.randn(3, 4),)\n"
        "options = {{'dtype': 'float16', 'device': 'cpu'}}\n"
    ),
}


@pytest.mark.parametrize(("name", "factor", "status"), [("engine", 2, 0), ("function", 2, 0), ("function", 1, 1)])
def test_the_cli_recognises_engine_and_function_files(tmp_path, capsys, name, factor, status):
    file = tmp_path / "mine.py"
    file.write_text(FILES[name].format(tests=str(Path(__file__).parent), factor=factor))
    assert main(["check", str(file), "--logdir", str(tmp_path / "runs"), "--json", str(tmp_path / "r.json")]) == status
    document = json.loads((tmp_path / "r.json").read_text())
    assert list(document["checks"]) == [name] and document["passed"] == (status == 0)
    assert ("ops" in document["checks"][name]) == (name == "engine")
    assert f"[{name}] {'PASS' if status == 0 else 'FAIL'}: your {name}" in capsys.readouterr().out


def test_the_readme_section_runs_and_prints_what_it_shows(tmp_path, monkeypatch):
    """Every python block of the "Beyond NumPy" page (docs/beyond-numpy.md) in one namespace, in order; each
    text block is the start of lines the block before it printed, in order."""
    monkeypatch.chdir(tmp_path)
    section = (Path(__file__).resolve().parents[1] / "docs" / "beyond-numpy.md").read_text()
    namespace, printed = {"__name__": "readme"}, ""
    for language, code in re.findall(r"^```(\w*)\n(.*?)^```\n", section, re.MULTILINE | re.DOTALL):
        if language == "text":
            assert starts_in_order(code.splitlines(), printed.splitlines()), f"printed\n{printed}\nnot\n{code}"
            continue
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(compile(code, "docs/beyond-numpy.md", "exec"), namespace)
        printed = stdout.getvalue()


def test_the_bench_meets_its_targets():
    """check_engine ≤ 5 s on a scalar engine, check_function ≤ 1 s per dtype on (64, 256): both measured
    at about 1/20 of their target on a loaded 2-core machine, so the margin covers any load."""
    results = engine_speed.measure()
    assert engine_speed.within_targets(results), results


def test_a_network_of_a_tensor_engine_trains_through_check_model():
    def forward(p, x, y):
        h = (Tensor(x) @ p["0.weight"].T + p["0.bias"]).tanh()
        return ((h @ p["2.weight"].T + p["2.bias"] - Tensor(y)) ** 2).mean()

    torch.manual_seed(0)
    twin = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    params = {name: p.detach().numpy().copy() for name, p in twin.named_parameters()}
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    report = check_model(engine_model(forward, Tensor), twin, nn.MSELoss(), X, y, params=params, batch_size=8, steps=5)
    assert report.passed and len(report.checks) == 5 * 10, report


def _broadcast_added_in_place(self, other, forward, backward):
    out = self._node(forward(self.data, other.data), (self, other))

    def _backward():
        ga, gb = backward(out.grad, self.data, other.data)
        self.grad += ga  # NumPy refuses: the (3, 4) gradient does not fit b's (4,)
        other.grad += gb

    out._backward = _backward
    return out


def test_a_broadcast_gradient_added_in_place_is_named_from_numpys_error():
    report = check_engine(type("InPlace", (Tensor,), {"_broadcast": _broadcast_added_in_place}))
    assert report.diagnosis.name == "broadcast gradient not reduced", report
    assert "non-broadcastable output operand" in report.first_failure.line()


class Kept(Value):
    """micrograd's ``Value``: keeps whatever it is given (an array too), its gradient the number 0."""

    def __init__(self, data, children=()):
        self.data, self.grad = data, 0.0
        self._prev, self._backward = children, lambda: None


@pytest.mark.parametrize(
    ("engine", "tensor"),
    [(Value, False), (Kept, False), (Tensor, True), (ArrayTensor, True)],
    ids=["float-only", "micrograd-like", "tensor", "tensor-without-sum"],
)
def test_a_tensor_engine_is_told_by_its_data_not_by_a_sum_method(engine, tensor):
    assert Protocol(engine).is_tensor_engine() is tensor


def _unary_assigned(name, forward, derivative):
    """One op of ``Tensor`` whose backward sets its operand's gradient (=) instead of adding to it."""

    def op(self):
        out = self._node(forward(self.data), (self,))
        out._backward = lambda: setattr(self, "grad", derivative(self.data, out.data) * out.grad)
        return out

    return {name: op}


def _sub_assigned(self, other):
    other = self._lift(other)
    out = self._node(self.data - other.data, (self, other))

    def _backward():
        self.grad = out.grad
        other.grad = -out.grad

    out._backward = _backward
    return out


BUGS = {  # a real backward bug of a tensor engine without sum; the name check_engine(..., tensor=True) gives
    "size-1 broadcast": ({"__add__": _add_summed_over_leading_axes_only}, "gradient not summed over the broadcast"),
    "mean": ({"mean": lambda s: s._unary(s.data.mean(), lambda x, y: np.ones_like(x))}, "mean's gradient not divided"),
}


def test_a_tensor_engine_without_sum_is_checked_as_a_tensor_engine():
    report = check_engine(ArrayTensor)
    assert report.passed and not report.ops["sum"]["supported"], report
    assert all(report.ops[op]["supported"] for op in ("mean", "matmul", "broadcast")), report


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_tensor_engine_without_sum_has_its_real_bug_found(bug):
    ops, name = BUGS[bug]
    buggy = type("Buggy", (ArrayTensor,), ops)
    told, forced = check_engine(buggy), check_engine(buggy, tensor=True)
    assert not told.passed and told.diagnosis.name.startswith(name), told
    assert told.diagnosis.name == forced.diagnosis.name and len(told.checks) == len(forced.checks)


REUSED = [  # an op whose backward assigns: seen only where one operand reaches it twice; the mutant named
    ("sub", Value, {"__sub__": _sub_assigned}, "a - a"),
    ("exp", Tensor, _unary_assigned("exp", np.exp, lambda x, e: e), "a.exp() * a.exp()"),
    ("tanh", Tensor, _unary_assigned("tanh", np.tanh, lambda x, t: 1 - t * t), "a.tanh() * a.tanh()"),
]


@pytest.mark.parametrize(("op", "engine", "ops", "case"), REUSED, ids=[row[0] for row in REUSED])
def test_an_op_that_assigns_its_gradient_fails_on_its_reused_operand(op, engine, ops, case):
    report = check_engine(type("Assigning", (engine,), ops))
    assert not report.passed and report.first_failure.tensor.startswith(f"{case}: "), report
    assert report.diagnosis.name == f"gradient assigned, not accumulated, in {op}", report


def test_the_size_one_broadcast_bug_is_named_when_the_gradient_takes_the_output_s_shape():
    report = check_engine(type("Reshaped", (Tensor,), {"__add__": _add_over_leading_axes(in_place=False)}))
    assert report.diagnosis.name == "gradient not summed over the broadcast size-1 axis", report
    assert report.first_failure.tensor.startswith("a + b (3x1, 1x4): ")
