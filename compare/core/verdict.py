"""The verdict of a run, decided here and nowhere else: one word, the step it was decided at, and the
exit status it carries. The terminal's last line, ``runs``, the HParams verdict column, the Text card,
report.json's top-level ``verdict`` and report.html all read the same ``Verdict``.

The words (docs/verdicts.md lists them with their exit statuses):

- ``PASS``: every tensor of every step agrees within its tolerance (exit 0).
- ``PASS (drift adjudicated)``: a free-running departure was judged rounding amplified by training (one
  step from identical values agreed) and resynced; ``drift_ratio`` is its worst max_rel / tolerance,
  ``step`` the first drift step (exit 0).
- ``FAIL``: the sides part (a wrong rule, a side that raised; exit 1), or a complete run compared nothing
  (``where`` ``nothing compared``: a run that compared nothing proved nothing).
- ``DEPARTS``: a textbook variant departs from torch's rule, as expected (exit 1: it is not torch's).
- ``DIVERGED``: both sides alike left the finite numbers, or the run diverged where no step can tell
  rounding from a wrong rule: nothing is said about the rules (exit 4).
- ``INCOMPLETE``: stopped before the last step (exit 128 + the signal, 130 for Ctrl-C; 3 when a
  data-parallel rank died or timed out).
"""

import enum
from dataclasses import dataclass

from compare import exits
from compare.core.records import RunResult


class Word(enum.StrEnum):
    PASS = "PASS"
    PASS_DRIFT = "PASS (drift adjudicated)"
    FAIL = "FAIL"
    DEPARTS = "DEPARTS"
    DIVERGED = "DIVERGED"
    INCOMPLETE = "INCOMPLETE"


EXIT = {  # the exit status of each word (INCOMPLETE: ``Verdict.exit_status`` names the signal or the abort)
    Word.PASS: exits.PASS,
    Word.PASS_DRIFT: exits.PASS,
    Word.FAIL: exits.FAIL,
    Word.DEPARTS: exits.FAIL,
    Word.DIVERGED: exits.DIVERGED,
    Word.INCOMPLETE: exits.INTERRUPTED,
}
PASSING = frozenset({Word.PASS, Word.PASS_DRIFT})
NOTHING = "nothing compared"  # the ``where`` of a complete run that compared nothing: a FAIL, never a PASS


@dataclass(frozen=True)
class Verdict:
    """A run's verdict. ``step``: where it was decided (the first failure, departure or divergence; the
    first drift step; the steps done when it stopped); ``where``: the stage and tensor there;
    ``drift_ratio``: for a drift-adjudicated pass, its worst max_rel / tolerance (above 1)."""

    word: Word
    step: int | None = None
    where: str = ""
    drift_ratio: float | None = None

    @property
    def passed(self) -> bool:
        return self.word in PASSING

    def exit_status(self, signum: int | None = None, aborted: bool = False) -> int:
        if self.word is Word.INCOMPLETE and aborted:
            return exits.ABORTED
        if self.word is Word.INCOMPLETE and signum is not None:
            return exits.SIGNAL_BASE + signum
        return EXIT[self.word]

    def cell(self, tensor: bool = True) -> str:
        """The verdict in a table cell (``runs``, HParams): ``PASS``, ``PASS (drift x8.33 from 12)``,
        ``FAIL step 3 grad 0.weight``, ``DEPARTS step 1 param``, ``DIVERGED step 14``, ``INCOMPLETE 12 steps``."""
        if self.word is Word.PASS_DRIFT:
            ratio = f" x{self.drift_ratio:.3g}" if self.drift_ratio is not None else ""
            return f"PASS (drift{ratio} from {self.step})"
        if self.word is Word.INCOMPLETE:
            return "INCOMPLETE" if self.step is None else f"INCOMPLETE {self.step} steps"
        if self.step is None or self.word is Word.PASS:
            return str(self.word)
        where = self.where if tensor else self.where.split(" ")[0]
        return f"{self.word} step {self.step}" + (f" {where}" if where else "")

    def to_json(self) -> dict:
        return {"word": str(self.word), "step": self.step, "where": self.where, "drift_ratio": self.drift_ratio}

    @classmethod
    def from_json(cls, found: dict) -> "Verdict":
        return cls(Word(found["word"]), found.get("step"), found.get("where") or "", found.get("drift_ratio"))


def passed_or_failed(passed: bool, failure: tuple[int, str] | None = None) -> Verdict:
    """PASS or FAIL, for what decides nothing else (a check of the user's model, a sub-run whose
    measurement disagreed); ``failure``: the first failure's (step, stage)."""
    if passed:
        return Verdict(Word.PASS)
    return Verdict(Word.FAIL, *(failure or (None, "")))


def _where(check) -> str:
    return f"{check.stage} {check.tensor}"


def of_run(result: RunResult, variant: bool = False) -> Verdict:
    """The verdict of a lockstep run (``variant``: a textbook variant against torch's rule)."""
    failure = result.first_failure
    if not result.complete or result.aborted is not None:
        return Verdict(Word.INCOMPLETE, result.steps)
    if failure is None and result.comparisons == 0:
        return Verdict(Word.FAIL, None, NOTHING)
    if failure is None:
        if result.drift is None:
            return Verdict(Word.PASS)
        ratio = max(check.diff.max_rel / check.max_rel for check in result.drift.departures)
        worst = max(result.drift.departures, key=lambda check: check.diff.max_rel / check.max_rel)
        return Verdict(Word.PASS_DRIFT, result.drift.step, _where(worst), float(ratio))
    if result.raised is not None:
        return Verdict(Word.FAIL, failure.step, f"{failure.stage} raised:{result.raised.type}")
    if variant:
        return Verdict(Word.DEPARTS, failure.step, _where(failure))
    if result.undecidable_from == failure.step or failure.diff.problem == "nonfinite:both":
        return Verdict(Word.DIVERGED, failure.step, _where(failure))
    return Verdict(Word.FAIL, failure.step, _where(failure))


def of_report(report: dict) -> Verdict:
    """The verdict a report.json records (its ``verdict_detail``), or, for a report written before the
    verdict was recorded, the one its fields imply."""
    if isinstance(report.get("verdict_detail"), dict):
        return Verdict.from_json(report["verdict_detail"])
    failure = report.get("first_failure") or {}
    where = f"{failure.get('stage')} {failure.get('tensor')}" if failure else ""
    if not report.get("complete", True):
        return Verdict(Word.INCOMPLETE, report.get("steps"))
    if (report.get("variant") or {}).get("departs"):
        return Verdict(Word.DEPARTS, failure.get("step"), where)
    if report.get("passed"):
        drift = report.get("drift")
        if not drift:
            return Verdict(Word.PASS)
        ratio = max((t["max_rel"] / t["tolerance"] for t in drift.get("tensors", []) if t.get("max_rel")), default=None)
        return Verdict(Word.PASS_DRIFT, drift.get("first_step"), "", ratio)
    if report.get("diverged"):
        return Verdict(Word.DIVERGED, failure.get("step"), where)
    return Verdict(Word.FAIL, failure.get("step"), where)
