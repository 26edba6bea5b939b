"""The parity curves: one TensorBoard run per stage, so each stage is drawn in its own colour, and a
``tolerance`` run drawn on the same chart.

``<dir>/parity/<stage>/``, every step:  ``parity/log10_max_rel``, ``parity/max_rel``, ``parity/max_abs``
``<dir>/parity/tolerance/``, every step: ``parity/log10_max_rel`` = log10(tolerance), the line to stay under

Read at smoothing 0. Choices that keep the chart readable at TensorBoard's default settings:

- The tolerance line has a point at every step, as many as each stage: "ignore outliers in chart scaling"
  (on by default) scales the axis to the 5th–95th percentile of all points in the chart, so a line with a
  point every K steps is cut off the axis; with one point per step it is at least a sixth of the points.
- An exact 0 has no logarithm. While a stage has been exact from the first step it is drawn at
  ``floor`` (two decades under the dtype's epsilon); once it has differed, a later exact 0 is left out,
  so the curve joins its neighbours instead of dropping to the floor in a comb of spikes.
- A stage a run does not have (``eval`` without dropout or batch norm) gets no run: it is absent, not 0.
- Every stage of a dtype has the same tolerance; should they ever differ, the line is the strictest one.
"""

import math

import numpy as np

from compare.core.records import Check
from compare.core.tolerances import STAGES, tolerance
from compare.output.events import LazyWriters

LOG10 = "parity/log10_max_rel"
MAX_REL = "parity/max_rel"
MAX_ABS = "parity/max_abs"
TOLERANCE_RUN = "parity/tolerance"


def log10_floor(dtype: str) -> float:
    """Where an exact 0 is drawn: two decades under the dtype's epsilon (float64 -18, float32 -9)."""
    return float(math.floor(math.log10(np.finfo(np.dtype(dtype)).eps)) - 2)


def stage_run(stage: str) -> str:
    return f"parity/{stage}"


class ParityCurves:
    """Writes each step's worst difference per stage into that stage's run, and the tolerance line."""

    def __init__(self, writers: LazyWriters, dtype: str, device: str = "cpu") -> None:
        self.writers = writers
        self.floor = log10_floor(dtype)
        self.tolerance = min(tolerance(dtype, stage, device).max_rel for stage in STAGES)
        self._differed: set[str] = set()  # stages that have had a nonzero difference

    def log10(self, value: float) -> float:
        """log10 of a difference, never under the floor (inf and nan pass through: TensorBoard marks them)."""
        if value == 0:
            return self.floor
        return max(math.log10(value), self.floor) if value > 0 and math.isfinite(value) else value

    def log(self, step: int, worst: dict[str, Check]) -> float:
        """One step's worst check per stage; returns the step's largest max_rel (0 when nothing was compared)."""
        largest = 0.0
        for stage, check in worst.items():
            rel, abs_ = check.diff.max_rel, check.diff.max_abs
            largest = max(largest, rel) if not math.isnan(rel) else math.inf
            if rel == 0 and stage in self._differed:
                continue  # a gap, not a spike to the floor
            if rel != 0:
                self._differed.add(stage)
            self.writers.scalars(stage_run(stage), {LOG10: self.log10(rel), MAX_REL: rel, MAX_ABS: abs_}, step)
        if worst:
            self.writers.scalars(TOLERANCE_RUN, {LOG10: math.log10(self.tolerance)}, step)
        return largest
