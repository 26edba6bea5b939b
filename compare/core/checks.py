"""Collecting one step's comparisons, each held to its dtype-and-stage tolerance, optionally on a second
thread while the manual optimizer steps."""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from compare.core import spread
from compare.core.metrics import TensorDiff, diff, worst_elements
from compare.core.records import Check
from compare.core.tolerances import tolerance

# One thread, shared by every Lockstep of the process, that compares while the manual optimizer steps.
COMPARER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compare")
# Handing the comparisons to it costs about half a millisecond a step (thread wake-ups; NumPy keeps the
# GIL on small arrays), so it pays only on larger models. Step time in the background against the
# foreground, 784-W-W-10 at batch 256, Adam, float64, 2 threads (1 thread alike within 0.05):
# W=16 (13k parameters) 1.10, W=64 (55k) 1.08, W=128 (118k) 1.00, W=256 (269k) 0.94, W=1024 (1.9M) 0.91.
BACKGROUND_MIN_PARAMETERS = 1 << 17


@dataclass
class Checks:
    """Collects the checks of one step, each held to its dtype-and-stage tolerance.

    With ``background``, comparisons wait in a queue; ``compare_in_background()`` runs them on
    ``COMPARER`` as one job (the caller promises that nothing writes to the compared arrays meanwhile)
    and ``collect()`` waits for them; comparisons added after that run at once."""

    step: int
    dtype: str
    device: str = "cpu"  # where the torch twin ran: the tolerance table has an entry per device
    background: bool = False
    checks: list[Check] = field(default_factory=list)
    wrong_shape: bool = False  # a tensor of the wrong shape was added (known at once, even in the background)
    # when a dict: the (manual, reference) pairs that fail, of the first step that has any (a later step's are
    # not kept), as float64 copies keyed (step, stage, name), for a diagnosis that measures a departure
    # (``compare.check.diagnosis.numerical``); those compared in the background are kept when collected
    keep: dict | None = None
    # whether a failing comparison's arrays are copied for ``rejudge`` (the engine: not after the run's first failure)
    measure: bool = True
    _queued: list[tuple] = field(default_factory=list)  # comparisons added in the background mode, not started
    _running: Future | None = None  # the started ones, as one job
    _started: list[tuple] = field(default_factory=list)  # the started ones' arguments, until collected
    _failed: dict[int, tuple] = field(default_factory=dict)  # index in ``checks`` → a failing comparison's arguments

    def add(
        self,
        stage: str,
        name: str,
        manual: np.ndarray | None,
        reference: torch.Tensor | np.ndarray | None,
        floor: float = 0.0,
    ) -> None:
        """``floor``: the magnitude of the terms that produced the tensor (see ``compare.core.scales``)."""
        if manual is None:  # the side under test has no tensor of this name
            self.fail(stage, name, TensorDiff(np.inf, np.inf, (), "missing:manual"))
            return
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
        if reference is None:
            reference = np.full(np.shape(manual), np.nan)  # torch produced no gradient at all
        self._record(stage, name, manual, reference, tolerance(self.dtype, stage, self.device).max_rel, floor)

    def add_state(self, name: str, manual, reference, amplification: float = 1.0) -> None:
        """Optimizer state and buffers: arrays at the state tolerance, integer counters exactly.

        ``amplification``: how much larger than rounding a relative error this state may inherit from
        its gradient (see ``compare.core.scales.state_amplification``)."""
        if isinstance(reference, torch.Tensor):
            reference = reference.detach().cpu().numpy()
            reference = int(reference) if reference.dtype.kind == "i" else reference
        if manual is None and reference is None:
            return
        if manual is None or reference is None:
            side = "manual" if manual is None else "torch"
            missing = TensorDiff(np.inf, np.inf, (), f"missing:{side}")
            self.fail("state", name, missing)
            return
        exact = isinstance(manual, int | np.integer) or isinstance(reference, int | np.integer)
        max_rel = 0.0 if exact else tolerance(self.dtype, "state", self.device).max_rel
        reference = np.asarray(reference)
        self._record("state", name, np.asarray(manual), reference, max_rel, amplification=amplification)

    def fail(self, stage: str, name: str, failure: TensorDiff) -> None:
        """A check that fails without a comparison: a tensor missing, a dropout mask's improbable keep fraction."""
        self.collect().append(Check(self.step, stage, name, failure, 0.0))

    def compare_in_background(self) -> None:
        """Start the comparisons added so far on ``COMPARER``, as one job; ``collect()`` waits for them."""
        queued, self._queued = self._queued, []
        if queued:
            self._started = queued
            self._running = COMPARER.submit(lambda: [judge(*args) for args in queued])

    def collect(self) -> list[Check]:
        """Every check so far, in the order added, once the background comparisons are done; later
        comparisons run at once."""
        self.background = False
        if self._running is not None:
            for args, check in zip(self._started, self._running.result(), strict=True):
                self._append(check, args)  # the arrays are untouched until collected
            self._running, self._started = None, []
        for args in self._queued:  # queued but never started: here
            self._append(judge(*args), args)
        self._queued = []
        return self.checks

    def _record(
        self,
        stage: str,
        name: str,
        manual: np.ndarray,
        reference: np.ndarray,
        max_rel: float,
        floor: float = 0.0,
        amplification: float = 1.0,
    ) -> None:
        self.wrong_shape |= np.shape(manual) != np.shape(reference)
        args = (self.step, stage, name, manual, reference, max_rel, floor, amplification)
        if self.background:
            self._queued.append(args)
            return
        self._append(judge(*args), args)  # nothing is queued or running once collected

    def _append(self, check: Check, args: tuple) -> None:
        """A check made, its arrays kept (``keep``) when it fails at the first step that has a failure; a
        failing comparison's arguments copied, for ``rejudge`` (the failure path only)."""
        manual, reference = args[3], args[4]
        self.checks.append(check)
        if check.passed:
            return
        if self.measure and check.diff.problem is None:  # a difference of values (not shape, dtype, finiteness)
            self._failed[len(self.checks) - 1] = (*args[:3], np.array(manual), np.array(reference), *args[5:])
        if self.keep is not None and not any(key[0] < self.step for key in self.keep):
            pair = (np.array(manual, np.float64), np.array(reference, np.float64))
            self.keep[(check.step, check.stage, check.tensor)] = pair

    def rejudge(self, recompute: spread.Recompute) -> dict[tuple[str, str], float]:
        """Every failing comparison that ``recompute`` (the reference computed again with its inputs moved by
        an ulp, ``compare.core.spread``) can name, judged again with the reference's measured spread as its
        floor; one that then passes replaces its check, carrying its spread. Returns the measured floors of
        those that pass, by (stage, name). Nothing is recomputed when no check fails."""
        checks = self.collect()
        failing = {i: args for i, args in self._failed.items() if not checks[i].passed}
        if not failing:
            return {}
        samples = spread.recomputations(recompute) or []
        passed: dict[tuple[str, str], float] = {}
        for i, (step, stage, name, manual, reference, max_rel, floor, amplification) in failing.items():
            again = [sample[(stage, name)] for sample in samples if (stage, name) in sample]
            measured = spread.spread_of(reference, again) if len(again) == len(samples) else float("nan")
            if not np.isfinite(measured):
                continue
            bound = max(floor, spread.measured_floor(measured, max_rel))
            check = judge(step, stage, name, manual, reference, max_rel, bound, amplification)
            if check.passed:
                self.checks[i] = replace(check, spread=measured)
                del self._failed[i]
                passed[(stage, name)] = bound
                if self.keep is not None:
                    self.keep.pop((step, stage, name), None)
        return passed


def judge(
    step: int,
    stage: str,
    name: str,
    manual: np.ndarray,
    reference: np.ndarray,
    max_rel: float,
    floor: float = 0.0,
    amplification: float = 1.0,
) -> Check:
    """One comparison, with the worst elements side by side when it fails. Arrays of a different
    floating dtype (a float64 optimizer state inside a float32 run) fail as ``dtype``, whatever their
    values."""
    result = diff(manual, reference, floor, amplification)
    if result.problem is None and dtype_differs(manual, reference):
        result = replace(result, problem=f"dtype:{manual.dtype}!={reference.dtype}")
    check = Check(step, stage, name, result, max_rel)
    if not check.passed:
        check = Check(step, stage, name, result, max_rel, tuple(worst_elements(manual, reference)))
    return check


def dtype_differs(manual, reference) -> bool:
    """Both are floating arrays of at least one dimension (not the scalars the engine builds itself: the
    loss, the lr, the total norm) and their dtypes differ."""
    return (
        isinstance(manual, np.ndarray)
        and isinstance(reference, np.ndarray)
        and manual.ndim > 0
        and manual.dtype.kind == "f"
        and reference.dtype.kind == "f"
        and manual.dtype != reference.dtype
    )
