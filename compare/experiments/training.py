"""Lockstep training of one sub-run on ``compare.core.engine``, with parity asserted at every step (see
``compare.experiments.base``): measurements compared and kept as curves, event files, divergence,
progress."""

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from compare import i18n
from compare.core import engine
from compare.core.verdict import Verdict, Word, of_run
from compare.experiments.base import (
    DIVERGENCE_FACTOR,
    DTYPE,
    PROGRESS_SECONDS,
    ROUNDING_LEVEL,
    Pairs,
    ParityError,
    Session,
    SubRunParity,
    Trained,
    check_pairs,
)
from compare.output import report
from compare.output.experiment_board import subrun_config
from compare.output.progress import Bar


def _history(result: engine.RunResult) -> str:
    """How the twins' largest difference evolved before the failure: a formula error shows at once,
    while rounding amplified by unstable (chaotic) training grows from ~1e-16 step by step."""
    worst = result.step_worst
    if len(worst) < 2:
        return f"  worst max_rel at step 1: {worst[0]:.1e}"
    marks = sorted({0, len(worst) // 4, len(worst) // 2, 3 * len(worst) // 4, len(worst) - 2, len(worst) - 1})
    text = "  worst max_rel per step: " + ", ".join(f"step {i + 1} {worst[i]:.1e}" for i in marks)
    if worst[0] < ROUNDING_LEVEL and len(worst) >= 10:
        text += (
            "\n  the difference grew from rounding level over many steps: unstable (chaotic) training amplifies "
            "rounding like this, while a wrong formula shows from the first steps"
        )
    return text


class _DivergedError(Exception):
    def __init__(self, step: int) -> None:
        self.step = step


def _diverged(record: engine.StepRecord, first_loss: float) -> bool:
    """The loss left the finite range or grew ``DIVERGENCE_FACTOR``-fold, and the twins agree on it:
    every check that failed at this step failed only because *both* sides overflowed."""
    failed = [check for check in record.checks if not check.passed]
    if any(check.diff.problem != "nonfinite:both" for check in failed):
        return False  # a real disagreement: the engine reports it
    if failed:
        return True
    losses = (record.loss_manual, record.loss_torch)
    return not all(map(math.isfinite, losses)) or min(losses) > DIVERGENCE_FACTOR * first_loss


def _progress(name: str, step: int, steps: int, loss: float) -> str:
    return i18n._("  {name}: step {step}/{steps}, loss {loss:.4g}").format(name=name, step=step, steps=steps, loss=loss)


def train(
    session: Session,
    name: str,
    lockstep: engine.Lockstep,
    stream: Iterator[tuple[np.ndarray, np.ndarray]],
    steps: int,
    measure: Callable[[int], Pairs] | None = None,
    stop_on_divergence: bool = False,
    hparams: dict | None = None,
) -> Trained:
    """``steps`` lockstep steps (``compare.core.engine.run``, stopping at the first disagreement).

    After each step ``measure(step)`` may return measurements taken on both twins (``{}`` to skip a
    step): each is compared, and logged to TensorBoard under the same tag for manual and torch.
    ``hparams`` adds to the sub-run's HParams row what the twins do not know (``batch_size``, ``dataset``).
    Raises :class:`ParityError` on any disagreement.
    """
    writers = session.writers(name, subrun_config(lockstep, steps, DTYPE, hparams))
    watch = _Watch(session, name, steps, measure, stop_on_divergence, writers, Bar(steps, name))
    result = watch.result
    started = time.perf_counter()
    diverged_at = None
    try:
        engine.run(lockstep, stream, steps, True, watch, result)
    except _DivergedError as stop:
        diverged_at = stop.step
    except ParityError as broken:  # a measurement disagreed
        if writers:
            writers.finish(f"FAIL: {broken.detail}", Verdict(Word.FAIL))
            writers = None  # finished
        raise
    finally:
        watch.bar.close()
        if writers:
            writers.finish(*_subrun_verdict(result, steps, diverged_at))
    if result.first_failure is not None:
        body, _, line = report.verdict(result, steps).rpartition("\n")
        raise ParityError(name, f"{body}\n{_history(result)}\n{line}")  # the verdict line last
    # a diverged step (both twins overflowed) raised in on_step, before the engine recorded it
    worst = {stage: check.diff.max_rel for stage, check in result.worst_by_stage().items()}
    session.record(SubRunParity(name, result.steps, worst, watch.measured_worst, watch.measured, diverged_at))
    losses = np.array(result.losses_torch)
    seconds = time.perf_counter() - started
    trained = Trained(name, result, losses, watch.curves, watch.curve_steps, diverged_at, seconds)
    session.trained.append(trained)
    return trained


@dataclass
class _Watch:
    """What ``train`` does after each step: the measurements compared and kept as curves, the event files,
    divergence, progress."""

    session: Session
    name: str
    steps: int
    measure: Callable[[int], Pairs] | None
    stop_on_divergence: bool
    writers: object
    bar: Bar
    result: engine.RunResult = field(default_factory=engine.RunResult)
    curves: dict[str, list[float]] = field(default_factory=dict)
    curve_steps: dict[str, list[int]] = field(default_factory=dict)
    measured_worst: float = 0.0
    measured: int = 0
    first_loss: float = math.nan
    last_print: float = field(default_factory=time.perf_counter)

    def __call__(self, record: engine.StepRecord) -> None:
        if record.step == 1:
            self.first_loss = record.loss_torch
        stop = self.stop_on_divergence and _diverged(record, self.first_loss)
        # no measurement on a step that diverged or broke parity (the engine records that and stops)
        pairs = self.measure(record.step) if self.measure and not stop and record.first_failure is None else {}
        if self.writers:
            self.writers.log_step(record, pairs)
        if stop:
            if record.first_failure is None:
                self.result.add(record)  # still compared and agreed: it counts; a step both sides overflowed does not
            raise _DivergedError(record.step)
        self.measured_worst = max(self.measured_worst, check_pairs(self.name, record.step, pairs))
        self.measured += len(pairs)
        for tag, (_, reference) in pairs.items():
            self.curves.setdefault(tag, []).append(reference)
            self.curve_steps.setdefault(tag, []).append(record.step)
        self.bar.update(record.step, f"loss {record.loss_torch:.4g}")
        now = time.perf_counter()
        if not self.bar.enabled and now - self.last_print >= PROGRESS_SECONDS:  # a log gets a line now and then
            self.last_print = now
            self.session.say(_progress(self.name, record.step, self.steps, record.loss_torch))


def _subrun_verdict(result: engine.RunResult, steps: int, diverged_at: int | None) -> tuple[str, Verdict]:
    """The sub-run's verdict for TensorBoard: a run stopped at divergence reads DIVERGED (parity held up
    to it, which its verdict line says; the loss says nothing about the rules from there)."""
    text = report.verdict(result, steps)
    if diverged_at is None or result.first_failure is not None:
        return text, of_run(result)
    lines = text.splitlines()[:-1]  # the INCOMPLETE line of a run stopped early
    line = (
        f"DIVERGED: the loss diverged at step {diverged_at}, where the experiment stops this sub-run; parity held "
        f"at all {result.steps} steps before it"
    )
    return "\n".join([*lines, line]), Verdict(Word.DIVERGED, diverged_at, "loss")
