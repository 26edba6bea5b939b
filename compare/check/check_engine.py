"""``check_engine``: a home-made autograd engine against torch's autograd, op by op and graph by graph.

The engine is seen through four functions (``Protocol``): make a leaf from a float (a scalar engine) or a
NumPy array (a tensor engine), read a node's value, read a leaf's gradient, run backward from an output.
The defaults fit the common ``Value(data)``, ``.data``, ``.grad``, ``.backward()`` shape. Every case of
``compare.check.autograd.suite`` runs on both, at each draw (the report's steps), the output's gradient
seeded to ones; compared: ``<case>: out`` (stage ``forward``) and ``<case>: d<leaf>`` (stage ``grad``),
at float64's tolerance. A case whose forward raises ``AttributeError``, ``TypeError``,
``NotImplementedError`` or ``AssertionError`` marks its op unsupported (not a failure); any other
exception, and any exception in backward, is a failure.
A failing engine is matched against the catalog of engine mistakes (``compare.check.autograd.catalog``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

import compare.check.sandbox.guard as guard
from compare.check.autograd import mutants
from compare.check.autograd.catalog import CATALOG, MATCH, EngineBug
from compare.check.autograd.suite import DRAWS, OPS, Case, cases_for, draw_leaf, leaf_shapes
from compare.check.diagnosis import numerical
from compare.check.report import Diagnosis, Failure, Report
from compare.check.sandbox.guard import one_line
from compare.check.sandbox.isolated import entry_point
from compare.core import spread
from compare.core.checks import Checks
from compare.core.metrics import TensorDiff, diff
from compare.core.records import Check

# micrograd refuses a power it does not handle with an assert: an op form the engine has not, not a bug
UNSUPPORTED = (AttributeError, TypeError, NotImplementedError, AssertionError)
LEAVES = "abc"


@dataclass(frozen=True)
class Protocol:
    """How to use the engine: ``leaf(float or array)``, ``value(node)``, ``grad(leaf)``, ``backward(output)``."""

    leaf: Callable[[Any], Any]
    value: Callable[[Any], Any] = lambda node: node.data
    grad: Callable[[Any], Any] = lambda node: node.grad
    backward: Callable[[Any], Any] = lambda node: node.backward()

    def is_tensor_engine(self) -> bool:
        """Told by the data: a leaf made from a (2, 3) array keeps an ndarray or torch-tensor payload of that
        shape, and its gradient before any backward is not a plain number (``None``, or an array). A scalar
        engine refuses the array (``float(data)``) or, as micrograd's ``Value`` does, keeps it with the
        gradient ``0``; a tensor engine need not have ``sum``."""
        try:
            node = self.leaf(np.ones((2, 3)))
            payload, grad = self.value(node), self.grad(node)
        except Exception:  # a scalar engine may refuse an array in any way
            return False
        kept = isinstance(payload, np.ndarray | torch.Tensor) and tuple(payload.shape) == (2, 3)
        return kept and not isinstance(grad, int | float)


@dataclass
class Outcome:
    """One case at one draw: the leaves' values and the engine's gradients (``None``: none), or what the
    engine raised."""

    leaves: dict[str, np.ndarray]
    grads: dict[str, np.ndarray | None] = field(default_factory=dict)
    raised: str | None = None


@dataclass(repr=False)
class EngineReport(Report):
    """A ``Report`` plus, per op, ``supported`` / ``forward`` / ``backward`` (``ops``) and every catalog
    mistake that reproduces the engine's numbers (``bugs``; ``diagnosis`` is the first)."""

    ops: dict[str, dict[str, Any]] = field(default_factory=dict)
    bugs: list[Diagnosis] = field(default_factory=list)
    tensor: bool = False  # checked as a tensor engine (leaves from arrays), else as a scalar one

    def uncompared(self) -> str:
        """No op ran: the engine was taken for one kind and is the other, or is read otherwise."""
        kind = "a tensor engine (leaves from arrays)" if self.tensor else "a scalar engine (leaves from floats)"
        first = self.notes[0].removeprefix("unsupported: ") if self.notes else "none"
        return f"no op of the suite ran on your engine, checked as {kind}; the first refused: {first}"

    def __str__(self) -> str:
        lines = [Report.__str__(self), f"  {'op':<12} {'supported':<10} {'forward':<8} {'backward':<8}"]
        for op, status in self.ops.items():
            if not status["supported"]:
                lines.append(f"  {op:<12} {'no':<10} {'-':<8} {'-':<8}  {status['why']}".rstrip())
                continue
            marks = ["ok" if status[stage] else "FAIL" for stage in ("forward", "backward")]
            lines.append(f"  {op:<12} {'yes':<10} {marks[0]:<8} {marks[1]}")
        lines.extend(f"engine bug: {bug.line()}" for bug in self.bugs[1:])
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self) -> dict:
        return {**Report.to_dict(self), "ops": self.ops, "bugs": [bug.__dict__ for bug in self.bugs]}

    def names(self) -> set[str]:
        return {bug.name for bug in self.bugs}


@entry_point(single_threaded=False)  # report_dir=, isolate=, memory_limit=, time_limit
def check_engine(
    leaf: Callable[[Any], Any],
    *,
    value: Callable[[Any], Any] = Protocol.value,
    grad: Callable[[Any], Any] = Protocol.grad,
    backward: Callable[[Any], Any] = Protocol.backward,
    tensor: bool | None = None,
    draws: int = DRAWS,
    seed: int = 0,
    time_limit: float | None = guard.DEFAULT_TIME_LIMIT,
) -> EngineReport:
    """Check the engine whose leaves ``leaf`` makes (``Value``, say) against torch. ``tensor``: a tensor
    engine (leaves from arrays; adds sum, mean, matmul and broadcasting) or a scalar one (leaves from
    floats); default: told by ``Protocol.is_tensor_engine``. Each call into the engine has
    ``time_limit`` seconds."""
    protocol = Protocol(leaf, value, grad, backward)
    tensor = protocol.is_tensor_engine() if tensor is None else tensor
    report = EngineReport("engine", steps=draws, tensor=tensor)
    outcomes: dict[str, list[Outcome]] = {}
    rng = np.random.default_rng(seed)
    for case in cases_for(tensor):
        outcomes[case.name] = _run_case(case, protocol, tensor, draws, rng, report)
    report.ops = _op_table(report, tensor)
    if not report.passed:
        report.diagnosed = True
        report.bugs = [_diagnosis(bug) for bug in CATALOG if _matches(bug, outcomes.get(bug.case, []))]
        # a mutation of one op (named with the op), after the catalog's: an assignment in one op's backward
        # reads as the catalog's "gradient assigned" where its case shows it, and in that op only here
        report.bugs += [bug for bug in mutants.matching(cases_for(tensor), outcomes) if bug.name not in report.names()]
        report.diagnosis = report.bugs[0] if report.bugs else _measured(report, cases_for(tensor), outcomes)
    return report


def _run_case(case: Case, protocol: Protocol, tensor: bool, draws: int, rng, report: EngineReport) -> list[Outcome]:
    """Every call into the engine goes through ``guard.call`` (its exceptions and time limits)."""
    names = LEAVES[: len(case.domains)]
    outcomes = []
    for draw in range(draws):
        step = draw + 1
        values = [draw_leaf(d, s, draw, rng) for d, s in zip(case.domains, leaf_shapes(case, tensor), strict=True)]
        outcome = Outcome(dict(zip(names, values, strict=True)))
        leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
        out = case.f(*leaves)
        out.backward(torch.ones_like(out))
        checks = Checks(step, "float64")
        try:
            nodes = [protocol.leaf(v.copy() if tensor else float(v)) for v in values]
            result = guard.call(step, "forward", f"{case.name}: out", case.f, *nodes)
        except UNSUPPORTED as error:  # making a leaf, or the op itself: the engine lacks it
            report.notes.append(f"unsupported: {case.op} ({case.name}): {one_line(error)}")
            return []
        except guard.UserCodeError as error:
            if isinstance(error.__cause__, UNSUPPORTED):
                report.notes.append(f"unsupported: {case.op} ({case.name}): {error.failure.message}")
                return []
            return _raised(report, error.failure, [*outcomes, replace(outcome, raised=error.failure.message)])
        try:
            value = guard.call(step, "forward", f"{case.name}: value", _read, protocol.value, result)
            checks.add("forward", f"{case.name}: out", value, out.detach())
            guard.call(step, "grad", f"{case.name}: backward", protocol.backward, result)
            for name, node, reference in zip(names, nodes, leaves, strict=True):
                where = f"{case.name}: d{name}"
                outcome.grads[name] = guard.call(step, "grad", where, _read, protocol.grad, node)
                checks.add("grad", where, outcome.grads[name], reference.grad)
        except guard.UserCodeError as error:
            report.checks.extend(checks.collect())
            return _raised(report, error.failure, [*outcomes, replace(outcome, raised=error.failure.message)])
        checks.rejudge(lambda k, values=values, out=out: _again(k, case, values, out))  # at torch's spread
        report.checks.extend(checks.collect())
        outcomes.append(outcome)
    return outcomes


def _again(k: int, case: Case, values: list, out: torch.Tensor) -> dict:
    """torch's value and gradients of ``case`` again, inputs moved by an ulp (``compare.core.spread``)."""
    leaves = [torch.tensor(value, dtype=torch.float64) for value in values]
    (value,), grads, _ = spread.torch_again(k, case.f, leaves, [torch.ones_like(out)])
    tensors = {("grad", f"{case.name}: d{name}"): grad for name, grad in zip(LEAVES, grads, strict=False)}
    return tensors | {("forward", f"{case.name}: out"): value}


def _read(read: Callable[[Any], Any], node: Any) -> np.ndarray | None:
    return _array(read(node))


def _array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.array(value, dtype=np.float64)


def _raised(report: Report, failure: Failure, outcomes: list[Outcome]) -> list[Outcome]:
    """The engine raised: a failing check at that place (the other cases still run)."""
    raised = TensorDiff(np.inf, np.inf, (), f"raised {failure.message}")
    report.checks.append(Check(failure.step, failure.stage, failure.tensor, raised, 0.0))
    return outcomes


def _op_table(report: EngineReport, tensor: bool) -> dict[str, dict[str, Any]]:
    ops: dict[str, dict[str, Any]] = {}
    cases = cases_for(tensor)
    for op in OPS:
        names = [case.name for case in cases if case.op == op]
        if not names:
            continue
        checks = [c for c in report.checks if any(c.tensor.startswith(f"{name}: ") for name in names)]
        why = next((n.partition(": ")[2] for n in report.notes if n.startswith(f"unsupported: {op} (")), "")
        ops[op] = {
            "supported": bool(checks),
            "forward": all(c.passed for c in checks if c.stage == "forward"),
            "backward": all(c.passed for c in checks if c.stage == "grad") and any(c.stage == "grad" for c in checks),
            "why": why,
        }
    return ops


def _matches(bug: EngineBug, outcomes: list[Outcome]) -> bool:
    """The engine raised the bug's error on its case, or its gradients there equal one of the bug's
    alternatives at every draw."""
    if bug.raised is not None and any(bug.raised in (outcome.raised or "") for outcome in outcomes):
        return True
    if not outcomes or any(outcome.raised is not None for outcome in outcomes):
        return False
    for outcome in outcomes:
        alternatives = bug.gradients(*outcome.leaves.values())
        if not any(_same(outcome.grads, expected) for expected in alternatives):
            return False
    return True


def _same(found: dict[str, np.ndarray | None], expected: dict[str, np.ndarray]) -> bool:
    for name, value in expected.items():
        mine = found.get(name)
        if mine is None or not diff(mine, np.asarray(value, dtype=np.float64)).within(MATCH):
            return False
    return True


def _measured(report: EngineReport, cases: tuple[Case, ...], outcomes: dict[str, list[Outcome]]) -> Diagnosis | None:
    """No catalog mistake or mutation: what each failing case's gradients say, measured
    (``compare.check.diagnosis``) over every draw together (a scalar engine's draws make one vector), against
    torch's, recomputed from the leaves; a one-leaf case is an elementwise op, known by its input, its output
    and the seed's ones."""
    found = []
    for case in cases:
        runs = outcomes.get(case.name) or []
        failing = {c.tensor for c in report.checks if not c.passed and c.stage == "grad"}
        names = [name for name in LEAVES[: len(case.domains)] if f"{case.name}: d{name}" in failing]
        if not names or any(run.raised is not None for run in runs):
            continue
        torch_runs = [_torch_case(case, run.leaves) for run in runs]
        out = np.concatenate([np.ravel(t[0]) for t in torch_runs])
        x = np.concatenate([np.ravel(run.leaves["a"]) for run in runs]) if len(case.domains) == 1 else None
        context = numerical.Context(x=x, out=out, dout=np.ones_like(out)) if x is not None else numerical.Context()
        try:
            pairs = [
                (f"{case.name}: d{name}", np.concatenate([np.ravel(run.grads[name]) for run in runs]),
                 np.concatenate([np.ravel(t[1][name]) for t in torch_runs]))
                for name in names
            ]  # fmt: skip
        except (KeyError, TypeError, ValueError):  # a gradient missing or of another shape: nothing to stack
            continue
        found += numerical.findings(pairs, context)
    return numerical.from_findings(found)


def _torch_case(case: Case, leaves: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """torch's output and leaf gradients of ``case`` at ``leaves`` (the output's gradient seeded to ones)."""
    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in leaves.items()}
    out = case.f(*tensors.values())
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), {name: tensor.grad.numpy() for name, tensor in tensors.items()}


def _diagnosis(bug: EngineBug) -> Diagnosis:
    return Diagnosis(bug.name, f"{bug.explanation} (shows on {bug.case})", MATCH, fix=bug.fix)
