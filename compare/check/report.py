"""What checking a user's own code found: every comparison made, the first failure, the mistake named.

``Report`` is what ``compare.check_layer`` and its siblings return; ``str(report)`` is the verdict table
the CLI prints, ``to_json()`` the machine-readable form, ``_repr_html_`` the Jupyter display, and
``assert_parity(report)`` the one-line pytest helper. ``saves_report`` gives every ``check_*`` its
``report_dir=`` keyword: the report as one self-contained page, report.html, written there.
"""

import functools
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compare.check.sandbox.misbehaviour import FIXES
from compare.core import spread
from compare.core.coverage import Coverage
from compare.core.records import Check, first_failure, worst_by_stage
from compare.core.witness64 import SUFFIX
from compare.errors import InputError
from compare.output import html as report_html
from compare.output.rundir import REPORT_HTML


@dataclass(frozen=True)
class Failure:
    """Where the user's code first parts from torch: ``max_rel = max|user − torch| / max|torch|``.

    ``problem`` is ``None`` for a plain difference, else ``shape``, ``missing:manual``, ``nonfinite:...``
    or ``exception`` (the user's code raised: ``message`` is the exception in one line, ``traceback``
    the full one, kept here and printed only when asked for)."""

    step: int
    stage: str
    tensor: str
    max_abs: float
    max_rel: float
    tolerance: float = 0.0
    problem: str | None = None
    message: str = ""
    traceback: str = ""

    @classmethod
    def of(cls, check: Check) -> "Failure":
        diff = check.diff
        return cls(check.step, check.stage, check.tensor, diff.max_abs, diff.max_rel, check.max_rel, diff.problem)

    def line(self) -> str:
        where = f"step {self.step}, {self.stage}, {self.tensor}"
        if self.problem == "exception":
            return f"{where}: your code raised {self.message}"
        if self.message:  # a misbehaviour or a timeout (compare.check.sandbox.guard): its own words
            return self.message
        if self.problem is not None:
            fix = f"; fix: {FIXES[self.problem]}" if self.problem in FIXES else ""
            return f"{where}: {self.problem} (max_rel {self.max_rel:.3g}){fix}"
        return f"{where}: max_rel {self.max_rel:.3g} > {self.tolerance:.0e} (max_abs {self.max_abs:.3g})"


@dataclass(frozen=True)
class Diagnosis:
    """A known mistake, textbook variant or convention that reproduces the user's numbers, found by replaying
    it; or, when none does (``replayed`` False), what measuring the departure found
    (``compare.check.diagnosis.numerical``): ``name`` ``measured:<kind>``, the other tensors' ``findings``.
    ``fix``: how to fix the user's code, in one line, the named object's own (a fault's, a variant's, a
    convention's, an engine mistake's, a measurement's; ``"; "``-joined when several are named); ``""`` when
    it has none."""

    name: str
    explanation: str
    max_rel: float = 0.0  # how close the replay came to the user's numbers
    also: tuple[str, ...] = ()  # other candidates reproducing the same numbers (the same rule written otherwise)
    fix: str = ""
    replayed: bool = True  # False: nothing was replayed (measured, or told from a float64 re-run)
    findings: tuple[str, ...] = ()  # further measured findings, one line each, nearest the loss first

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.also)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def line(self) -> str:
        also = f"; the same numbers as {', '.join(self.also)}" if self.also else ""
        fix = f"; fix: {self.fix}" if self.fix and self.fix not in self.explanation else ""  # a convention says it
        if not self.replayed:
            return f"{self.name}: {self.explanation}{also}{fix}"
        return f"{self.name}: {self.explanation} (reproduced to {self.max_rel:.1g}{also}){fix}"


@dataclass(frozen=True)
class Part:
    """One departing piece of the user's code (a layer, the loss, the optimizer), with its own first failure
    and diagnosis: when several depart, each is listed, so a tiny departure cannot mask a gross one."""

    name: str  # "layer 2 (Linear)", "loss (CrossEntropyLoss)", "optimizer (Adam)"
    failure: Failure
    diagnosis: Diagnosis | None = None

    def line(self) -> str:
        named = self.diagnosis.line() if self.diagnosis is not None else "no known mistake reproduces it"
        return f"{self.name}: {self.failure.line()}; diagnosis: {named}"


@dataclass(repr=False)
class Report:
    """Every comparison made (``checks``, in the order made), the first failure, the diagnosis.

    ``notes``: what the checker noticed that is not a failure (a backward that wrote into ``dout``,
    optimizer state that was not compared and why). ``diagnosed``: whether a diagnosis was attempted
    (``diagnosis`` is then the match, or ``None`` when no known mistake reproduces the numbers)."""

    kind: str  # "layer", "loss", "optimizer", "model"
    checks: list[Check] = field(default_factory=list)
    error: Failure | None = None  # the user's code raised
    diagnosis: Diagnosis | None = None
    diagnosed: bool = False
    notes: list[str] = field(default_factory=list)
    steps: int = 0
    parts: list[Part] = field(default_factory=list)  # every departing piece, when more than the first was found

    @property
    def first_failure(self) -> Failure | None:
        """The earliest failing check by step, then stage (``compare.core.records.first_failure``, as in a
        run), or else the exception the user's code raised."""
        failed = first_failure(self.checks)
        if failed is not None:
            return Failure.of(failed)
        return self.error

    @property
    def passed(self) -> bool:
        """No failure, and something compared: a check that compared nothing proved nothing."""
        return self.first_failure is None and bool(self.checks)

    def where(self) -> str:
        """Where to look, when the first failure is a gradient of a model or a function: the gradients nearer
        the loss (or the output), checked before it in backward order, that agree; ``""`` otherwise."""
        failure = self.first_failure
        end = {"model": "the loss", "function": "the output"}.get(self.kind)
        if failure is None or failure.stage != "grad" or end is None or failure.problem == "exception":
            return ""
        before = []
        for check in self.checks:
            if (check.step, check.stage, check.tensor) == (failure.step, failure.stage, failure.tensor):
                break
            if check.step == failure.step and check.stage == "grad" and check.passed:
                before.append(check.tensor)
        if not before:
            grads = {c.tensor.removesuffix(SUFFIX) for c in self.checks if c.step == failure.step and c.stage == "grad"}
            several = len(grads) > 1
            return f"{failure.tensor}, the gradient nearest {end}, departs first" if several else ""
        shown = ", ".join(before[:4]) + (", ..." if len(before) > 4 else "")
        return f"everything between {end} and {failure.tensor} agrees ({shown}): look at what makes {failure.tensor}"

    def worst_by_stage(self) -> dict[str, Check]:
        return worst_by_stage(self.checks)

    @property
    def coverage(self) -> Coverage:
        """What was compared (steps, tensors per stage, comparisons) and what the notes say was not, and why."""
        return Coverage.of(self.checks, self.notes)

    def uncompared(self) -> str:
        """Why nothing (or not everything) was compared, in a few words: what the notes say, or the steps run."""
        return "; ".join(self.coverage.not_compared) or (f"it ran {self.steps} step(s)" if not self.steps else "")

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: your {self.kind}, {self.steps} step(s), {len(self.checks)} comparisons against torch"]
        lines.append(f"  {'stage':<8} {'worst tensor':<28} {'max_rel':>10} {'tolerance':>10}")
        for stage, check in self.worst_by_stage().items():
            mark = "ok" if check.passed else "FAIL"
            rel = check.diff.problem or f"{check.diff.max_rel:.3g}"
            lines.append(f"  {stage:<8} {check.tensor[:28]:<28} {rel:>10} {check.max_rel:>10.0e}  {mark}")
        lines.append(self.coverage.line())
        failure = self.first_failure
        if failure is not None:
            lines.append(f"first failure: {failure.line()}")
            lines.extend(f"where: {line}" for line in [self.where()] if line)
        elif not self.checks:
            lines.append("nothing was compared: a check that compares nothing is never a pass")
        if self.diagnosis is not None:
            lines.append(f"diagnosis: {self.diagnosis.line()}")
            lines.extend(f"  also measured: {line}" for line in self.diagnosis.findings)
        elif self.diagnosed:
            lines.append("diagnosis: no known mistake or textbook variant reproduces your numbers")
        if len(self.parts) > 1:
            lines.extend(f"departs: {part.line()}" for part in self.parts)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    __repr__ = __str__  # the table, in a REPL and in pytest's assertion messages

    def to_dict(self) -> dict:
        """The report as JSON-ready data: non-finite numbers (an infinite ``max_rel``) are ``None``."""
        failure = self.first_failure
        return finite(
            {
                "kind": self.kind,
                "passed": self.passed,
                "steps": self.steps,
                "first_failure": None if failure is None else failure.__dict__,
                "diagnosis": None if self.diagnosis is None else self.diagnosis.as_dict(),
                "notes": list(self.notes),
                "coverage": self.coverage.to_json(),
                "parts": [
                    {
                        "name": part.name,
                        "first_failure": part.failure.__dict__,
                        "diagnosis": None if part.diagnosis is None else part.diagnosis.as_dict(),
                    }
                    for part in self.parts
                ],
                "checks": [
                    {
                        "step": c.step,
                        "stage": c.stage,
                        "tensor": c.tensor,
                        "max_abs": c.diff.max_abs,
                        "max_rel": c.diff.max_rel,
                        "tolerance": c.max_rel,
                        "problem": c.diff.problem,
                        "passed": c.passed,
                    }
                    for c in self.checks
                ],
            }
        )

    def to_json(self) -> str:
        """Valid JSON: a non-finite number (an infinite ``max_rel``, a NaN) is written as ``null``."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save_html(self, path: str | Path) -> Path:
        """Write the report as one self-contained page (``compare.output.html``): the verdict, the
        per-stage table, the diagnosis and its fix; returns the path written."""
        rows = [
            (stage, check.tensor, check.diff.problem or f"{check.diff.max_rel:.3e}", f"{check.max_rel:.0e}",
             "ok" if check.passed else "FAIL")
            for stage, check in self.worst_by_stage().items()
        ]  # fmt: skip
        path = Path(path)
        path.write_text(report_html.check_page(self.kind, self.passed, str(self), rows), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(stage)}</td><td>{html.escape(check.tensor)}</td>"
            f"<td>{check.diff.problem or format(check.diff.max_rel, '.3g')}</td><td>{check.max_rel:.0e}</td>"
            f"<td>{'ok' if check.passed else 'FAIL'}</td></tr>"
            for stage, check in self.worst_by_stage().items()
        )
        tail = ("coverage:", "first failure:", "where:", "diagnosis:", "  also measured:", "note:")
        extra = "".join(f"<p>{html.escape(line)}</p>" for line in str(self).splitlines() if line.startswith(tail))
        return (
            f"<div><b style='color:{colour}'>{'PASS' if self.passed else 'FAIL'}</b> your {html.escape(self.kind)}"
            "<table><tr><th>stage</th><th>worst tensor</th><th>max_rel</th><th>tolerance</th><th></th></tr>"
            f"{rows}</table>{extra}</div>"
        )


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no inf or NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if isinstance(value, np.generic):
        return finite(value.item())
    return value


HINTS = {  # what to pass, per check, when a check compared nothing
    "layer": "give x as an array (or a non-empty list of batches) and steps >= 1",
    "loss": "give scores and targets as arrays (or non-empty lists of them) and steps >= 1",
    "optimizer": "give steps >= 1 (or a non-empty gradients= list)",
    "model": "give steps >= 1 (or a non-empty batches= list), and a model whose parameters map to the twin's",
    "function": "give at least one draw, on inputs where the reference is finite in this dtype (inside its domain, "
    "or dtype='float64' for its range)",
    "engine": "pass tensor=True if your engine's leaves hold arrays (tensor=False if floats), and value=, grad=, "
    "backward= if its nodes are read otherwise than .data, .grad, .backward()",
}


def require_compared(report: Report) -> Report:
    """``report``, unless it would pass having proved nothing: a check that compared nothing, or a model check
    that compared none of the model's parameters, is bad input (``InputError``: what could not be checked, why,
    and what to pass). A check that found something (a failure, an exception of the user's) is its finding."""
    if report.first_failure is not None:
        return report
    coverage, hint, why = report.coverage, HINTS.get(report.kind, ""), report.uncompared()
    because = f" ({why})" if why else ""
    if coverage.empty:
        raise InputError(f"check_{report.kind} compared nothing{because}, which is never a pass: {hint}")
    if report.kind == "model" and "param" not in coverage.tensors:
        raise InputError(f"check_model compared none of your model's parameters{because}: {hint}")
    return report


def assert_parity(report: Report) -> Report:
    """For a user's own tests: raises ``AssertionError`` whose message is the verdict table when the
    report failed; returns the report otherwise."""
    if not report.passed:
        raise AssertionError("\n" + str(report))
    return report


def report_page(report_dir: str | Path) -> Path:
    """Where ``report_dir=`` puts the page: ``report_dir/report.html``, refused (one ``ValueError`` line,
    before the check runs) where that is a file already: a report is never overwritten."""
    folder = Path(report_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"report_dir={str(folder)!r} is a file; give a folder for {REPORT_HTML}")
    page = folder / REPORT_HTML
    if page.exists():
        raise ValueError(
            f"report_dir={str(folder)!r} already holds {REPORT_HTML}, which is never overwritten: "
            "give another folder, or move that page away"
        )
    return page


def saves_report(check: Callable[..., Report]) -> Callable[..., Report]:
    """``check`` with one more keyword, ``report_dir``: its report saved there as report.html
    (``Report.save_html``), in this process; a report that compared nothing raises ``InputError`` instead
    (``require_compared``), nothing written (an ``isolate=True`` check's child never writes it), and a note
    saying where."""

    @functools.wraps(check)
    def wrapper(*args: Any, report_dir: str | Path | None = None, **kwargs: Any) -> Report:
        page = None if report_dir is None else report_page(report_dir)
        report = require_compared(check(*args, **kwargs))  # before anything is written
        measured = spread.note(report.checks)  # the checks that passed at their measured spread, said
        if measured is not None and measured not in report.notes:
            report.notes.append(measured)
        if page is not None:
            page.parent.mkdir(parents=True, exist_ok=True)
            if not page.exists():  # else the check itself wrote this report there (check_model's tensorboard_dir)
                report.save_html(page)
            report.notes.append(f"report: {page} (one page, to open in a browser or send)")
        return report

    return wrapper
