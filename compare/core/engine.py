"""The lockstep engine: one batch to both sides, then every tensor compared, stage by stage.

The engine knows two sides only through ``compare.core.side`` (the manual side under test, the torch
reference) and the stages only through ``compare.core.stages``, whose list it runs in order. Everything
that changes how a step runs is an ``Options`` field, given when the engine is built.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from compare.core import adjudication, decisions, gradcheck, raising, rewind, scales, stages, witness64
from compare.core.checks import BACKGROUND_MIN_PARAMETERS, Checks
from compare.core.evaluate import evaluate, loss_kind
from compare.core.gradcheck import Witness
from compare.core.records import Drift, RunResult, StepRecord
from compare.core.side import Side
from compare.core.torch_side import TorchSide


@dataclass(frozen=True)
class Options:
    """How the engine runs a step.

    ``dtype``: the tolerance table's row. ``clip_grad_norm``: both sides clip to this global norm after
    the gradients are compared. ``resync``: after each step torch's parameters, buffers and optimizer
    state are copied into the manual side, so each step is compared from identical values. ``gradcheck``:
    finite differences of the manual loss at step 1 and at the first step whose gradients disagree
    (needs a manual side with ``snapshot()``). ``background``: compare forward, loss and gradients on a
    second thread while the manual optimizer steps (``None``: for models of ``BACKGROUND_MIN_PARAMETERS``
    or more). ``inject_masks``: the manual side's dropout masks are applied by torch. ``stats_every``:
    per-parameter norms every K steps (for TensorBoard), or never. ``adjudicate``: a departure of a
    free-running step is judged by one step from identical values (``compare.core.adjudication``): drift
    is recorded and resynced, a wrong rule reported (off: ``--strict-trajectory``, every departure fails).
    ``witness_every``: a float32 run's step recomputed in float64 from torch's values at step 1 and every
    K steps (``compare.core.witness64``), or never.
    """

    dtype: str = "float64"
    clip_grad_norm: float | None = None
    resync: bool = False
    gradcheck: bool = False
    background: bool | None = None
    inject_masks: bool = True
    stats_every: int | None = None
    adjudicate: bool = True
    witness_every: int | None = None


class Lockstep:
    """Two sides advanced together, one step at a time; ``step`` returns what was compared."""

    def __init__(
        self,
        manual: Side,
        reference: TorchSide,
        options: Options = Options(),
        names: tuple[str, str] = ("manual", "torch"),
    ) -> None:
        """``manual``: the side under test; ``reference``: the side it is measured against (torch's, or the JAX
        side's, which reports the same floors); ``names``: what each is called where a person reads it
        (TensorBoard's runs): the hand-written side is ``manual`` and torch's ``torch`` by default."""
        self.names = names
        self.manual = manual
        self.reference = reference
        self.options = options
        self.device = reference.device
        background = options.background
        if background is None:
            background = sum(np.size(p) for p in manual.parameters().values()) >= BACKGROUND_MIN_PARAMETERS
        # Only when nothing writes to the gradients while they are compared: no clipping (in place), no
        # finite-difference witnesses (they need the verdicts first), a rule known to leave them alone.
        self.background = (
            background
            and options.clip_grad_norm is None
            and not options.gradcheck
            and getattr(manual, "leaves_grads", False)
        )
        self._before: dict[str, dict[str, np.ndarray]] = {}  # {side: {param: value before the update}}, reused
        self._gradcheck_rng = np.random.default_rng(0)
        self._gradchecked_failure = False
        self._stage = "forward"  # the stage running now, for a side that raises
        self._identical = True  # the step about to run starts from identical values on both sides
        self._wrong = False  # a wrong rule was found: later departures are not adjudicated
        self._first_loss: float | None = None  # torch's loss at the first step: how far a run has diverged
        self.kept: dict[int, list[int]] = {}  # dropout layer → [mask elements kept, drawn], over the run
        self._branches = decisions.declared(manual, reference)  # sign decisions refereed (None: none, no work)

    def step(self, step: int, x: np.ndarray, y: np.ndarray) -> StepRecord:
        """One step on both sides, every tensor compared; a departure adjudicated (``Options.adjudicate``);
        an exception from either side returned as the step's finding (``compare.core.raising``)."""
        identical, self._identical = self._identical, self.options.resync
        before = self._keep(step, identical)
        try:
            witnessed = self._witness64(step, x, y)
            record = self._step(step, x, y)
            if witnessed:
                record = replace(record, checks=[*record.checks, *witnessed])
        except Exception as error:
            raised = raising.finding(error, step, self._stage, self.manual, self.reference)
            if raised is None:
                raise
            return raising.record(raised)
        if self._first_loss is None:
            self._first_loss = record.loss_torch
        if record.first_failure is None or self._wrong:
            return record
        drift = None
        if not identical and self.options.adjudicate and adjudication.may_be_drift(record.departures):
            drift = self._adjudicate(record, x, y, before)
            if isinstance(drift, Drift):
                self.manual.load(self.reference.values(), self.reference.state())
                self._identical = True
                return replace(record, drift=drift)
        self._wrong = True
        undecidable = drift is adjudication.UNDECIDABLE or self._undecidable(record)
        return replace(record, undecidable=True) if undecidable else record

    def _undecidable(self, record: StepRecord) -> bool:
        """A departure by rounding alone in a run that diverged through huge values (``adjudication.diverged``)."""
        return (
            self.options.adjudicate
            and adjudication.rounding_only(record.departures)
            and adjudication.diverged(self._first_loss, record.loss_manual, record.loss_torch)
        )

    def _witness64(self, step: int, x: np.ndarray, y: np.ndarray) -> list:
        """The float64 witness's departures at this step (before the step: it starts from the same values)."""
        if not witness64.due(step, self.options.witness_every):
            return []
        self._stage = "forward"
        return witness64.departures(Lockstep, self.options, self.manual, self.reference, step, x, y)

    def _keep(self, step: int, identical: bool) -> rewind.Before | None:
        """Both sides before a step that may be adjudicated (``compare.core.rewind``)."""
        if identical or self._wrong or not self.options.adjudicate:
            return None
        return rewind.keep(step, self.manual, self.reference)

    def _adjudicate(self, record: StepRecord, x: np.ndarray, y: np.ndarray, before: rewind.Before | None):
        """The departing step again, on its batch, from copies of both sides holding torch's values before it:
        drift or ``None`` (in a float32 run, in float64 too when the witness did not run at this step)."""
        copies = None if before is None else rewind.sides(before, self.reference)
        if copies is None:
            return None
        manual, reference = copies
        if self.options.witness_every is not None and not witness64.due(record.step, self.options.witness_every):
            # a float32 departure on a step the float64 witness skipped: the rule proven in float64 too
            if witness64.departures(Lockstep, self.options, manual, reference, record.step, x, y):
                return None
        options = replace(self.options, resync=False, gradcheck=False, background=False, stats_every=None)
        with adjudication.quiet():
            again = Lockstep(manual, reference, replace(options, adjudicate=False)).step(record.step, x, y)
        return adjudication.judge(record, again)

    def _step(self, step: int, x: np.ndarray, y: np.ndarray) -> StepRecord:
        """The stages of ``stages.STEPS``, in their order, each under its name (for a side that raises)."""
        # until the run's first failure, the failing arrays are kept: the first failure's goes into its record
        keep = None if self._wrong else {}
        checks = Checks(step, self.options.dtype, self.device.type, self.background, keep=keep, measure=not self._wrong)
        work = stages.Work(step, x, y, checks)
        for stage in stages.STEPS:
            self._stage = stage.name
            stage.compute(self, work)
            if work.ended:
                break
        self._stage = "state"  # end_step() advances the lr schedules: the lr is the state stage's
        self._end_step()
        if self.options.resync and not work.ended:
            self.manual.load(self.reference.values(), self.reference.state())
        losses = (float(work.manual.loss), float(work.reference.loss.item()))
        lrs = work.lrs
        record = StepRecord(step, *losses, lrs[1], checks.collect(), work.stats, work.witnesses, lr_manual=lrs[0])
        failure = record.first_failure
        pair = None if failure is None or not keep else keep.get((step, failure.stage, failure.tensor))
        return replace(record, followed=work.followed, pair=pair)

    def update(self, work: stages.Work) -> None:
        """Both optimizers' steps, for the state stage: the comparisons so far run in the background meanwhile
        (``Options.background``), and the parameters' statistics are taken around the update when logged."""
        # a sign decision on rounding noise follows torch's (compare.core.decisions), before either side updates
        if self._branches is not None:
            work.followed = decisions.follow(
                self._branches, work.checks, self.manual, self.reference, work.reference, work.conditioning
            )
        logs = self.options.stats_every and logs_at(work.step, self.options.stats_every)
        before_update = self._snapshot() if logs else None
        work.checks.compare_in_background()
        self.manual.update()
        work.checks.collect()  # before torch's step, which wants both cores
        self._measure_spread(work)
        self.reference.update()
        if before_update is not None:
            work.stats = self._stats(before_update)

    def _measure_spread(self, work: stages.Work) -> None:
        """Until the run's first failure, a failing forward, loss or gradient check re-judged against torch's
        own rounding spread (``compare.core.spread``), torch computed again before its update; nothing is
        computed when none fails. A gradient that passes there hands its measured floor on, as a structural one
        is: to its optimizer state's conditioning and to the reference's update floors (``measured_floors``)."""
        recompute = getattr(self.reference, "recomputed", None)
        if self._wrong or recompute is None or (work.manual.masks and not self.options.inject_masks):
            return  # torch's own masks could not be drawn again alike
        masks = work.manual.masks if self.options.inject_masks else {}
        measured = work.checks.rejudge(lambda k: recompute(k, work.x, work.y, masks))
        grads = {name: floor for (stage, name), floor in measured.items() if stage == "grad"}
        floors = work.reference.floors.setdefault("grad", {})
        for name, floor in grads.items():
            if name in work.reference.grads:
                kappa = scales.conditioning(floor, work.reference.grads[name])
                work.conditioning[name] = max(work.conditioning.get(name, 1.0), kappa)
            floors[name] = max(floors.get(name, 0.0), floor)
        if grads and hasattr(self.reference, "measured_floors"):
            self.reference.measured_floors(floors)

    def _end_step(self) -> None:
        self.manual.end_step()
        self.reference.end_step()

    def witnesses(self, work: stages.Work) -> list[Witness]:
        """Finite differences of the manual loss (``Options.gradcheck``), for the grad stage: at step 1 and at
        the first step whose checks so far failed."""
        if work.before is None:
            return []
        failed = any(not check.passed for check in work.checks.collect())
        if not (work.step == 1 or (failed and not self._gradchecked_failure)):
            return []
        self._gradchecked_failure |= failed
        manual_grads = work.manual.grads
        torch_grads = {name: _numpy(g) for name, g in work.reference.grads.items() if g is not None}
        return gradcheck.witnesses(
            work.step, work.before, work.x, work.y, manual_grads, torch_grads, self._gradcheck_rng
        )

    def sides(self) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Each side's live ``(parameters, gradients)`` as NumPy arrays (torch's are views, not copies)."""
        return {
            "manual": (self.manual.parameters(), self.manual.grads()),
            "torch": (self.reference.parameters(), self.reference.grads()),
        }

    def _snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        """Each side's parameters before the update, copied into arrays kept between logged steps (fresh
        arrays of a large model cost more in new pages than the copy itself)."""
        for side, (params, _) in self.sides().items():
            arrays = self._before.setdefault(side, {})
            for name, param in params.items():
                if name not in arrays:
                    arrays[name] = np.empty_like(param)
                np.copyto(arrays[name], param)
        return self._before

    def _stats(self, before: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
        """Gradient norm, parameter norm and ‖Δθ‖/‖θ‖ (update-to-parameter ratio) per parameter and side.
        ``before`` (the snapshot) is overwritten with the updates."""
        stats = {}
        for side, (params, grads) in self.sides().items():
            norms = {name: float(np.linalg.norm(p)) for name, p in params.items()}
            updates = {name: np.subtract(p, before[side][name], out=before[side][name]) for name, p in params.items()}
            stats[side] = {
                "grad_norm": {name: float(np.linalg.norm(g)) for name, g in grads.items()},
                "param_norm": norms,
                "update_ratio": {
                    name: float(np.linalg.norm(update)) / max(norms[name], 1e-300) for name, update in updates.items()
                },
            }
        return stats

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float | None]]:
        """Loss and accuracy of both sides on held-out data, in evaluation mode."""
        sides = {"manual": self.manual, "torch": self.reference}
        return evaluate(sides, X, y, loss_kind(self.reference.loss))


def _numpy(tensor) -> np.ndarray:
    """A reference's tensor as NumPy (torch's, on any device; the JAX side's are arrays already)."""
    return tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)


def logs_at(step: int, every: int) -> bool:
    """The steps that log the heavier curves: the first, then every ``every``-th."""
    return step == 1 or step % every == 0


def run(
    lockstep: Lockstep,
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    steps: int,
    stop_at_first_failure: bool,
    on_step: Callable[[StepRecord], None],
    result: RunResult | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Advance both twins ``steps`` times; ``result`` is filled as it goes. ``should_stop`` is asked
    between steps (a signal arrived, say): the run then ends cleanly with ``complete`` False, every
    finished step recorded and handed to ``on_step``."""
    result = result if result is not None else RunResult()
    for step in range(1, steps + 1):
        if should_stop():
            return result
        x, y = next(batches)
        record = lockstep.step(step, x, y)
        on_step(record)  # first: a caller that raises here (a divergence it watches for) leaves it out
        result.add(record)
        if record.raised is not None or (record.first_failure is not None and stop_at_first_failure):
            break  # after a side raised, its state is unknown: the run cannot go on
    result.complete = True
    return result
