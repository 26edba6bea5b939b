"""What checking a user's own code found: every comparison made, the first failure, the mistake named.

``Report`` is what ``compare.check_layer`` and its siblings return; ``str(report)`` is the verdict table
the CLI prints, ``to_json()`` the machine-readable form, ``_repr_html_`` the Jupyter display, and
``assert_parity(report)`` the one-line pytest helper.
"""

import html
import json
from dataclasses import dataclass, field

from compare.check.conduct import FIXES
from compare.core.records import Check
from compare.core.tolerances import STAGES


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
        if self.message:  # a misbehaviour or a timeout (compare.check.guard): its own words
            return self.message
        if self.problem is not None:
            fix = f"; fix: {FIXES[self.problem]}" if self.problem in FIXES else ""
            return f"{where}: {self.problem} (max_rel {self.max_rel:.3g}){fix}"
        return f"{where}: max_rel {self.max_rel:.3g} > {self.tolerance:.0e} (max_abs {self.max_abs:.3g})"


@dataclass(frozen=True)
class Diagnosis:
    """A known mistake or textbook variant that reproduces the user's numbers, found by replaying it."""

    name: str
    explanation: str
    max_rel: float = 0.0  # how close the replay came to the user's numbers
    also: tuple[str, ...] = ()  # other candidates reproducing the same numbers (the same rule written otherwise)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.also)

    def line(self) -> str:
        also = f"; the same numbers as {', '.join(self.also)}" if self.also else ""
        return f"{self.name}: {self.explanation} (reproduced to {self.max_rel:.1g}{also})"


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

    @property
    def first_failure(self) -> Failure | None:
        failed = next((check for check in self.checks if not check.passed), None)
        if failed is not None:
            return Failure.of(failed)
        return self.error

    @property
    def passed(self) -> bool:
        return self.first_failure is None

    def worst_by_stage(self) -> dict[str, Check]:
        worst: dict[str, Check] = {}
        for check in self.checks:
            if check.stage not in worst or check.diff.max_rel > worst[check.stage].diff.max_rel:
                worst[check.stage] = check
        return {stage: worst[stage] for stage in STAGES if stage in worst}

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: your {self.kind}, {self.steps} step(s), {len(self.checks)} comparisons against torch"]
        lines.append(f"  {'stage':<8} {'worst tensor':<28} {'max_rel':>10} {'tolerance':>10}")
        for stage, check in self.worst_by_stage().items():
            mark = "ok" if check.passed else "FAIL"
            rel = check.diff.problem or f"{check.diff.max_rel:.3g}"
            lines.append(f"  {stage:<8} {check.tensor[:28]:<28} {rel:>10} {check.max_rel:>10.0e}  {mark}")
        failure = self.first_failure
        if failure is not None:
            lines.append(f"first failure: {failure.line()}")
        if self.diagnosis is not None:
            lines.append(f"diagnosis: {self.diagnosis.line()}")
        elif self.diagnosed:
            lines.append("diagnosis: no known mistake or textbook variant reproduces your numbers")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    __repr__ = __str__  # the table, in a REPL and in pytest's assertion messages

    def to_dict(self) -> dict:
        failure = self.first_failure
        return {
            "kind": self.kind,
            "passed": self.passed,
            "steps": self.steps,
            "first_failure": None if failure is None else failure.__dict__,
            "diagnosis": None if self.diagnosis is None else self.diagnosis.__dict__,
            "notes": list(self.notes),
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

    def to_json(self) -> str:
        """JSON (``inf`` written as ``Infinity``, as Python's json module reads it back)."""
        return json.dumps(self.to_dict(), indent=2)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(stage)}</td><td>{html.escape(check.tensor)}</td>"
            f"<td>{check.diff.problem or format(check.diff.max_rel, '.3g')}</td><td>{check.max_rel:.0e}</td>"
            f"<td>{'ok' if check.passed else 'FAIL'}</td></tr>"
            for stage, check in self.worst_by_stage().items()
        )
        tail = ("first failure:", "diagnosis:", "note:")
        extra = "".join(f"<p>{html.escape(line)}</p>" for line in str(self).splitlines() if line.startswith(tail))
        return (
            f"<div><b style='color:{colour}'>{'PASS' if self.passed else 'FAIL'}</b> your {html.escape(self.kind)}"
            "<table><tr><th>stage</th><th>worst tensor</th><th>max_rel</th><th>tolerance</th><th></th></tr>"
            f"{rows}</table>{extra}</div>"
        )


def assert_parity(report: Report) -> Report:
    """For a user's own tests: raises ``AssertionError`` whose message is the verdict table when the
    report failed; returns the report otherwise."""
    if not report.passed:
        raise AssertionError("\n" + str(report))
    return report
