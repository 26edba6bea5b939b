"""What a comparison covered, stated in one line by every report: how many steps, how many distinct tensors of
each stage, how many comparisons in all, and what was not compared and why.

A check's ``Report`` (``compare.check.report``) counts its checks and reads its notes; a run counts as it goes
(``compare.core.records.RunResult``), as it keeps no step's checks unless asked. The line:
``coverage: compared 4 step(s) × [forward: 3, grad: 6, param: 4] tensors (52 comparisons); not compared:
layer outputs (it exposes no layers list and last layer)``. A check that compared nothing is never a pass
(``compare.check.report.require_compared``).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from compare.core.records import Check
from compare.core.stages import STAGES

# a note saying what was not compared and why, as the checks write them: "<what> [is|are ]not compared: <why>"
NOT_COMPARED = re.compile(r"^(?P<what>.+?) (?:is |are )?not compared: (?P<why>.+)$")
# a note ending ": not compared" (a draw whose reference is not finite): the whole note is what and why
ENDS_NOT_COMPARED = ": not compared"
# check_engine's note on an op the engine lacks: "unsupported: <op> (<case>): <why>"
UNSUPPORTED = re.compile(r"^unsupported: (?P<op>.+?) \((?P<case>.+?)\): ")


@dataclass(frozen=True)
class Coverage:
    """``steps``: the steps with at least one comparison; ``tensors``: per stage (in ``STAGES`` order), the
    distinct tensors compared; ``comparisons``: every comparison; ``not_compared``: each thing not compared,
    ``"<what> (<why>)"``."""

    steps: int = 0
    comparisons: int = 0
    tensors: dict[str, int] = field(default_factory=dict)
    not_compared: tuple[str, ...] = ()

    @classmethod
    def of(cls, checks: Iterable[Check], notes: Iterable[str] = ()) -> "Coverage":
        """The coverage of ``checks`` (every comparison made), with what ``notes`` say was not compared."""
        checks = list(checks)
        names: dict[str, set[str]] = {}
        for check in checks:
            names.setdefault(check.stage, set()).add(check.tensor)
        return cls.counted(len({check.step for check in checks}), len(checks), names, notes)

    @classmethod
    def counted(
        cls, steps: int, comparisons: int, names: Mapping[str, set[str]], notes: Iterable[str] = ()
    ) -> "Coverage":
        """From counts kept as a run went: ``names``, each stage's distinct tensor names."""
        order = [stage for stage in STAGES if stage in names] + sorted(set(names) - set(STAGES))
        tensors = {stage: len(names[stage]) for stage in order}
        return cls(steps if comparisons else 0, comparisons, tensors, not_compared(notes))

    @property
    def empty(self) -> bool:
        return self.comparisons == 0

    def line(self) -> str:
        """The one line: ``coverage: compared ...; not compared: ...``."""
        if self.empty:
            compared = "nothing compared"
        else:
            stages = ", ".join(f"{stage}: {count}" for stage, count in self.tensors.items())
            compared = f"compared {self.steps} step(s) × [{stages}] tensors ({self.comparisons} comparisons)"
        missing = f"; not compared: {'; '.join(self.not_compared)}" if self.not_compared else ""
        return f"coverage: {compared}{missing}"

    def to_json(self) -> dict:
        return {
            "steps": self.steps,
            "comparisons": self.comparisons,
            "tensors": dict(self.tensors),
            "not_compared": list(self.not_compared),
        }


def not_compared(notes: Iterable[str]) -> tuple[str, ...]:
    """What the notes say was not compared, ``"<what> (<why>)"`` each; an engine's unsupported cases in one
    entry, ``"<case>, <case> (your engine lacks the op)"``."""
    found, unsupported = [], []
    for note in notes:
        if (match := UNSUPPORTED.match(note)) is not None:
            unsupported.append(match["case"])
        elif (match := NOT_COMPARED.match(note)) is not None:
            found.append(f"{match['what']} ({match['why']})")
        elif note.endswith(ENDS_NOT_COMPARED):
            found.append(note.removesuffix(ENDS_NOT_COMPARED))
    if unsupported:
        found.append(f"{', '.join(unsupported)} (your engine lacks the op)")
    return tuple(found)
