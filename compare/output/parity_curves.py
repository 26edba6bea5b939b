"""The parity curves: one TensorBoard run per stage, so each stage is drawn in its own colour, and a
``tolerance`` run drawn on the same chart.

``<dir>/parity/<stage>/``, every step:  ``parity/log10_max_rel_over_tolerance`` (the scale every run shares),
                                        ``parity/max_rel`` and ``parity/max_abs`` (the raw differences)
``<dir>/parity/tolerance/``, every step: ``parity/log10_max_rel_over_tolerance`` = 0, the line to stay under

One scale for every dtype: each stage's worst max_rel is divided by that stage's tolerance before its
log10 is taken, so 0 is the line for float64 (1e-10) and float32 (3.5e-4) alike, below it passes, and
any number of runs share one axis and one line (a float32 run's passing curves no longer sit above the
float64 line). ``-3`` reads "a thousand times under the tolerance". The raw max_rel stays in its own tag.

Read at smoothing 0. Choices that keep the chart readable at TensorBoard's default settings:

- The tolerance line has a point at every step, as many as each stage: "ignore outliers in chart scaling"
  (on by default) scales the axis to the 5th–95th percentile of all points in the chart, so a line with a
  point every K steps is cut off the axis; with one point per step it is at least a sixth of the points.
- An exact 0 has no logarithm. While a stage has been exact from the first step it is drawn at
  ``FLOOR`` (the same for every dtype); once it has differed, a later exact 0 is left out, so the curve
  joins its neighbours instead of dropping to the floor in a comb of spikes.
- A stage a run does not have (``eval`` without dropout or batch norm) gets no run: it is absent, not 0.
"""

import math

import torch

from compare.core.records import Check
from compare.core.stages import STAGES
from compare.core.tolerances import TOLERANCES, tolerance
from compare.output.events import LazyWriters

RATIO = "parity/log10_max_rel_over_tolerance"
MAX_REL = "parity/max_rel"
MAX_ABS = "parity/max_abs"
TOLERANCE_RUN = "parity/tolerance"


def _floor() -> float:
    """Where an exact 0 is drawn on the shared scale: two decades under the lowest any dtype's epsilon
    reaches there (float64: log10(2.2e-16 / 1e-10) = -5.7, so -8; float32's is -3.5; torch's finfo, as NumPy
    has no bfloat16)."""
    reaches = [
        math.log10(torch.finfo(getattr(torch, dtype)).eps / tol.max_rel) for (_, dtype, _), tol in TOLERANCES.items()
    ]
    return float(math.floor(min(reaches)) - 2)


FLOOR = _floor()


def stage_run(stage: str) -> str:
    return f"parity/{stage}"


class ParityCurves:
    """Writes each step's worst difference per stage into that stage's run, and the tolerance line."""

    def __init__(self, writers: LazyWriters, dtype: str, device: str = "cpu") -> None:
        self.writers = writers
        self.tolerances = {stage: tolerance(dtype, stage, device).max_rel for stage in STAGES}
        self.strictest = min(self.tolerances.values())  # for a comparison outside the stages
        self._differed: set[str] = set()  # stages that have had a nonzero difference

    def ratio(self, value: float, stage: str | None = None) -> float:
        """log10(max_rel / tolerance), never under ``FLOOR`` (inf and nan pass through: TensorBoard marks
        them)."""
        if value == 0:
            return FLOOR
        if not (value > 0 and math.isfinite(value)):
            return value
        return max(math.log10(value / self.tolerances.get(stage, self.strictest)), FLOOR)

    def log(self, step: int, worst: dict[str, Check]) -> float:
        """One step's worst check per stage; returns the step's largest max_rel / tolerance (0 when nothing
        was compared)."""
        largest = 0.0
        for stage, check in worst.items():
            rel, abs_ = check.diff.max_rel, check.diff.max_abs
            largest = max(largest, rel / self.tolerances[stage]) if not math.isnan(rel) else math.inf
            if rel == 0 and stage in self._differed:
                continue  # a gap, not a spike to the floor
            if rel != 0:
                self._differed.add(stage)
            self.writers.scalars(stage_run(stage), {RATIO: self.ratio(rel, stage), MAX_REL: rel, MAX_ABS: abs_}, step)
        if worst:
            self.writers.scalars(TOLERANCE_RUN, {RATIO: 0.0}, step)
        return largest
