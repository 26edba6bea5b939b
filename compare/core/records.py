"""What a run records: one ``Check`` per tensor compared, a ``StepRecord`` per step, a ``RunResult``
aggregated over the run; and the one rule by which runs and user checks (``compare.check.report``) rank
checks: ``first_failure``, the earliest failing check by step, then by the stage order of
``compare.core.stages.STAGES`` (within a stage, in the order checked), whatever order checks were added in
(the float64 witness adds its checks last); ``worst_by_stage``, each stage's largest ``max_rel``."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compare.core.gradcheck import Witness
from compare.core.metrics import TensorDiff
from compare.core.stages import STAGE_RANK, STAGES

if TYPE_CHECKING:
    from compare.core.verdict import Verdict


@dataclass(frozen=True)
class Check:
    """One tensor compared at one step and stage."""

    step: int
    stage: str
    tensor: str
    diff: TensorDiff
    max_rel: float  # the tolerance it was held to
    worst: tuple[dict, ...] = ()  # side-by-side elements, filled only when it fails
    # the reference's measured rounding spread, when a failure was re-judged against it (``compare.core.spread``)
    spread: float | None = None

    @property
    def passed(self) -> bool:
        return self.diff.within(self.max_rel)


def first_failure(checks: Iterable[Check]) -> Check | None:
    """The earliest failing check: by step, then by stage rank, then in the order given."""
    failed = (check for check in checks if not check.passed)
    return min(failed, key=lambda check: (check.step, STAGE_RANK.get(check.stage, len(STAGES))), default=None)


def worst_by_stage(checks: Iterable[Check]) -> dict[str, Check]:
    """For each stage, the check with the largest ``max_rel`` (ties: the first given), in stage order."""
    worst: dict[str, Check] = {}
    for check in checks:
        if check.stage not in worst or check.diff.max_rel > worst[check.stage].diff.max_rel:
            worst[check.stage] = check
    return {stage: worst[stage] for stage in STAGES if stage in worst}


@dataclass(frozen=True)
class Drift:
    """A free-running departure judged to be rounding amplified by training: the same rule, run one step
    from identical values (torch's, copied into a scratch manual side), agreed within tolerance.

    ``departures``: the step's checks outside tolerance; ``one_step``: the same tensors' ``max_rel`` in
    the step from identical values. ``growth`` of a tensor = its free-running ``max_rel`` over its
    one-step ``max_rel``: how much training amplified the rounding of a single step."""

    step: int
    departures: tuple[Check, ...]
    one_step: dict[str, float]  # "<stage> <tensor>" → max_rel from identical values

    def growth(self, check: Check) -> float:
        one = self.one_step.get(f"{check.stage} {check.tensor}", 0.0)
        return float(check.diff.max_rel / one) if one > 0 else float(np.inf)


@dataclass(frozen=True)
class Raised:
    """A side that raised an exception instead of answering: a finding, not a crash."""

    side: str  # "manual" or "torch"
    step: int
    stage: str
    layer: str  # "1 (Linear)", "optimizer", or "-" when no layer was on the stack
    type: str
    message: str
    traceback: str

    def line(self) -> str:
        return (
            f"the {self.side} side raised at step {self.step}, stage {self.stage}, layer {self.layer}: "
            f"{self.type}: {self.message}"
        )


@dataclass
class StepRecord:
    step: int
    loss_manual: float
    loss_torch: float
    lr: float
    checks: list[Check]
    # {side: {"grad_norm" | "param_norm" | "update_ratio": {param name: value}}}, when collected
    stats: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    gradcheck: list[Witness] = field(default_factory=list)  # finite differences, when asked for
    drift: Drift | None = None  # the step's departures, judged drift (the step then counts as passed)
    raised: Raised | None = None  # a side raised: the step's one check names it
    undecidable: bool = False  # a departure no step could judge: the run diverged (``compare.core.adjudication``)
    lr_manual: float | None = None  # the manual side's lr at this step (``lr`` is torch's, the reference)
    followed: int = 0  # sign decisions on rounding noise that followed torch's (``compare.core.decisions``)
    # the first failure's (manual, reference) arrays as float64 copies, for a diagnosis that measures the
    # departure (``compare.check.diagnosis.numerical``); kept by the engine until the run's first failure only
    pair: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def departures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    @property
    def first_failure(self) -> Check | None:
        if self.drift is not None:
            return None
        return first_failure(self.departures)

    def worst_by_stage(self) -> dict[str, Check]:
        return worst_by_stage(self.checks)


@dataclass
class RunResult:
    """What a lockstep run found, aggregated step by step so that memory does not grow with the run's
    length beyond a few numbers per step; ``records`` keeps every step's checks only when asked
    (``keep_records``). ``complete`` is False when the run was interrupted."""

    keep_records: bool = True
    records: list[StepRecord] = field(default_factory=list)
    steps: int = 0
    losses_manual: list[float] = field(default_factory=list)
    losses_torch: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)  # torch's lr at each step
    lrs_manual: list[float | None] = field(default_factory=list)  # the manual side's
    step_worst: list[float] = field(default_factory=list)  # each step's largest max_rel
    worst: dict[str, Check] = field(default_factory=dict)  # each stage's largest max_rel so far, in stage order
    witnesses: list[Witness] = field(default_factory=list)
    first_failure: Check | None = None
    first_pair: tuple[np.ndarray, np.ndarray] | None = None  # its (manual, reference) arrays, when kept
    failed_steps: int = 0
    drift: Drift | None = None  # the first departure judged drift (None: none, or adjudication off)
    drift_steps: list[int] = field(default_factory=list)  # every step judged drift (each then resynced)
    raised: Raised | None = None
    undecidable_from: int | None = None  # the step whose departure one step could not judge (diverged)
    followed: int = 0  # sign decisions on rounding noise that followed torch's, over the run
    followed_steps: list[int] = field(default_factory=list)  # the steps that had any
    # comparisons that passed at torch's measured rounding spread (``compare.core.spread``), "<stage> <tensor>"
    measured_spread: list[str] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)  # run-time warnings (overflow, ...) by message
    complete: bool = False
    # what was compared (``compare.core.coverage``): each stage's distinct tensor names, the comparisons, the
    # steps that made any
    compared: dict[str, set[str]] = field(default_factory=dict)
    comparisons: int = 0
    compared_steps: int = 0
    validation: list[dict] = field(default_factory=list)  # {"step", "manual": {...}, "torch": {...}}
    # Filled by compare.run: where the run wrote, its verdict text and JSON report, why a data-parallel
    # run ended early (None when it did not), and what measuring the first failure found (None: nothing).
    run_dir: Path | None = None
    verdict: str = ""
    decision: "Verdict | None" = None  # the verdict's word (``compare.core.verdict.of_run``)
    report: dict | None = None
    aborted: str | None = None
    diagnosis: dict | None = None  # ``{findings, fix}``, plain text (``compare.check.diagnosis.numerical``)

    @property
    def passed(self) -> bool:
        """No failure, every step run, and something compared (a run that compared nothing proved nothing)."""
        return self.first_failure is None and self.complete and self.comparisons > 0

    def add(self, record: StepRecord) -> None:
        self.steps += 1
        for check in record.checks:
            self.compared.setdefault(check.stage, set()).add(check.tensor)
        self.comparisons += len(record.checks)
        self.compared_steps += bool(record.checks)
        self.losses_manual.append(record.loss_manual)
        self.losses_torch.append(record.loss_torch)
        self.lrs.append(record.lr)
        self.lrs_manual.append(record.lr_manual)
        self.step_worst.append(max((check.diff.max_rel for check in record.checks), default=0.0))
        self.worst = worst_by_stage([*self.worst.values(), *record.checks])
        self.witnesses.extend(record.gradcheck)
        if record.drift is not None:
            self.drift = self.drift or record.drift
            self.drift_steps.append(record.step)
        self.raised = self.raised or record.raised
        if record.followed:
            self.followed += record.followed
            self.followed_steps.append(record.step)
        self.measured_spread += [f"{c.stage} {c.tensor}" for c in record.checks if c.spread is not None and c.passed]
        if record.undecidable and self.undecidable_from is None:
            self.undecidable_from = record.step
        failure = record.first_failure
        if failure is not None:
            self.failed_steps += 1
            if self.first_failure is None:
                self.first_failure, self.first_pair = failure, record.pair
        if self.keep_records:
            self.records.append(record)

    def worst_by_stage(self) -> dict[str, Check]:
        return dict(self.worst)
