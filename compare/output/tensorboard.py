"""TensorBoard output for one run, laid out so the dashboards tell its story without hovering.

Each sub-run of ``<run>/`` is a TensorBoard run, so each is drawn in its own colour:

manual/ and torch/, every step:    loss/train, lr (the same tags, so each curve overlays its twin)
                   every K steps:  loss/validation, accuracy/validation (held-out split, eval mode),
                                   grad_norm/<param>, param_norm/<param>, update_ratio/<param> (‖Δθ‖/‖θ‖),
                                   histograms weights/<param> and grads/<param>
difference/:                       loss/train_manual_minus_torch every step, and every K steps
                                   loss/validation_manual_minus_torch, accuracy/validation_manual_minus_torch:
                                   the two overlaid curves' gap, drawn on its own scale
parity/<stage>/ and parity/tolerance/: the parity curves (``compare.output.parity_curves``)
summary/:                          HParams, the verdict text with the configuration, the custom-scalars
                                   layout (``compare.output.overview``)

Per-step scalars go out as one event per writer per step (a Summary with several values), written in
this thread (``compare.output.events``), which keeps logging cheap; TensorBoard stores them as float32,
which holds 1e-16 differences fine.

A run that stops at its first failure would leave one point per curve when it fails at step 1; the
charts go on ``AFTER_FAILURE`` steps past it (``draw_past_failure``) so the failure is seen in context.
The report, the verdict and the exit status stay the run's, up to the failure.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from compare.core.engine import Lockstep, logs_at
from compare.core.records import RunResult, StepRecord
from compare.core.verdict import Verdict
from compare.output.events import LazyWriters
from compare.output.histograms import HISTOGRAM_BINS, histogram_summary
from compare.output.overview import SUMMARY_RUN, Overview
from compare.output.parity_curves import MAX_ABS, MAX_REL, RATIO, ParityCurves

__all__ = ["HISTOGRAM_BINS", "LAYOUT", "RunWriters", "histogram_summary"]

SIDES = ("manual", "torch")  # the sub-runs' names by default; a run with other sides names its own (``layout``)
DIFFERENCE = "difference"
AFTER_FAILURE = 20  # steps drawn past a failure that stopped the run


def gap(sides: tuple[str, str]) -> str:
    """The suffix of the difference run's tags: ``_manual_minus_torch``, ``_manual_minus_jax``."""
    return f"_{sides[0]}_minus_{sides[1]}"


def layout(sides: tuple[str, str]) -> dict:
    """The custom-scalars layout of a run of these two sides."""
    a, b = sides
    return {
        f"Loss: {a} and {b}, and {a} − {b}": {
            f"train loss ({a}, {b})": ["Multiline", [r"^loss/train$"]],
            f"train loss, {a} − {b}": ["Multiline", [rf"^loss/train{gap(sides)}$"]],
            f"validation loss ({a}, {b})": ["Multiline", [r"^loss/validation$"]],
            f"validation loss, {a} − {b}": ["Multiline", [rf"^loss/validation{gap(sides)}$"]],
            f"validation accuracy ({a}, {b})": ["Multiline", [r"^accuracy/validation$"]],
        },
        "Parity by stage, under the tolerance (read at smoothing 0)": {
            "log10(max_rel / tolerance) per stage: under 0 passes": ["Multiline", [rf"^{RATIO}$"]],
            "max_abs per stage": ["Multiline", [rf"^{MAX_ABS}$"]],
            "max_rel per stage": ["Multiline", [rf"^{MAX_REL}$"]],
        },
    }


GAP = gap(SIDES)
LAYOUT = layout(SIDES)


class RunWriters:
    """One writer per sub-run, made when it first gets data; each directory is new, so nothing interleaves
    with an old run."""

    def __init__(
        self, run_dir: Path, dtype: str, log_every: int, device: str = "cpu", sides: tuple[str, str] = SIDES
    ) -> None:
        """``sides``: the sub-runs' names of the side under test and the reference (``manual``, ``torch``)."""
        self.run = run_dir.name
        self.sides = tuple(sides)
        self.gap = gap(self.sides)  # the difference run's tag suffix, made once: log_step runs every step
        self.log_every = log_every
        self.writers = LazyWriters(run_dir)
        self.parity = ParityCurves(self.writers, dtype, device)
        self.overview: Overview | None = None
        self.worst = 0.0  # the largest max_rel / tolerance so far, an HParams metric
        self.last_step = 0
        self.failure: tuple[int, str] | None = None  # the first failing (step, stage), an HParams metric

    def start(self, config: dict) -> None:
        """HParams (in the summary run's own file, no stray sub-directory) and the layout."""
        self.overview = Overview(self.writers[SUMMARY_RUN], self.run, config, layout(self.sides))

    def log_step(self, record: StepRecord, lockstep: Lockstep) -> None:
        step = self.last_step = record.step
        for slot, side, loss, lr in (
            ("manual", self.sides[0], record.loss_manual, record.lr_manual),
            ("torch", self.sides[1], record.loss_torch, record.lr),
        ):
            values = {"loss/train": loss, "lr": lr}
            for metric, per_param in record.stats.get(slot, {}).items():
                values.update({f"{metric}/{name}": value for name, value in per_param.items()})
            self.writers.scalars(side, values, step)
        gaps = {f"loss/train{self.gap}": record.loss_manual - record.loss_torch}
        self.writers.scalars(DIFFERENCE, gaps, step)
        self.worst = max(self.worst, self.parity.log(step, record.worst_by_stage()))
        if self.failure is None and record.first_failure is not None:
            self.failure = (step, record.first_failure.stage)
        if logs_at(step, self.log_every):
            for slot, (params, grads) in lockstep.sides().items():
                side = self.sides[0 if slot == "manual" else 1]
                arrays = {f"weights/{name}": array for name, array in params.items()}
                arrays.update({f"grads/{name}": array for name, array in grads.items()})
                for tag, array in arrays.items():
                    histogram = histogram_summary(tag, array)
                    if histogram is not None:
                        self.writers[side].add_summary(histogram, step)
            self.writers.flush()  # a live dashboard sees the run as it goes

    def log_validation(self, step: int, metrics: dict[str, dict[str, float | None]]) -> None:
        for slot, side in zip(("manual", "torch"), self.sides, strict=True):
            values = {f"{key}/validation": value for key, value in metrics[slot].items() if value is not None}
            self.writers.scalars(side, values, step)
        gaps = {
            f"{key}/validation{self.gap}": value - metrics["torch"][key]
            for key, value in metrics["manual"].items()
            if value is not None and metrics["torch"].get(key) is not None
        }
        self.writers.scalars(DIFFERENCE, gaps, step)

    def draw_past_failure(
        self, lockstep: Lockstep, batches: Iterator[tuple[np.ndarray, np.ndarray]], result: RunResult, steps: int
    ) -> None:
        """After a run stopped at its first failure: up to ``AFTER_FAILURE`` more steps, for the charts only."""
        if result.first_failure is None:
            return
        kept = (self.worst, self.last_step, self.failure)  # the HParams metrics stay the run's
        for step in range(result.steps + 1, min(steps, result.steps + AFTER_FAILURE) + 1):
            try:
                record = lockstep.step(step, *next(batches))
            except Exception:  # a faulty side may break past its failure; the charts just end
                break
            self.log_step(record, lockstep)
        self.worst, self.last_step, self.failure = kept

    def finish(self, verdict: str, decided: Verdict) -> None:
        """The verdict text and the HParams metrics (``decided``: the run's verdict); flushes and closes
        every event file."""
        if self.overview is not None:
            self.overview.finish(verdict, decided, self.worst, self.last_step, self.failure)
        self.writers.close()
