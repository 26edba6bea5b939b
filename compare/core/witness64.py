"""float32 proven in float64: the step a float32 run is about to take, recomputed from the same values
in float64 on both sides and judged at float64's tolerance.

float32's tolerance (rounding at 1.2e-7 per operation, amplified by training) is far above a rule error
of relative size 1e-7 to 1e-4: AdamW's decay after the update instead of before, BatchNorm's ε outside
the square root, clipping without torch's 1e-6. In float64 such an error is 1e2 to 1e6 times the
tolerance. So before a witnessed step, both sides are copied, torch's values (parameters, buffers,
optimizer state) cast to float64 and loaded into both copies, and the copies take the step on the same
batch in float64. A departure there is a wrong rule at this step, whatever float32 shows; it joins the
step's checks as ``<tensor> (float64)``, and is never adjudicated as drift.

Which steps: every step for models below ``EVERY_STEP_MAX_PARAMETERS`` parameters (the witness costs
about 1.5 steps) and for rules that branch on their step count, step 1 and every ``EVERY_LARGE`` steps
for the others.
"""

from dataclasses import replace

import numpy as np

from compare.core import adjudication
from compare.core.records import Check

EVERY_STEP_MAX_PARAMETERS = 1 << 14
# A witness costs 1.5 steps (784-256-256-10, batch 256, Adam, float32, 1 thread: 72.5 ms a step, 180.9 ms a
# witnessed one, medians of 3): 1.5% at K = 100, well inside the bench's lockstep overhead target (<= 1.3).
EVERY_LARGE = 100
SUFFIX = " (float64)"


def every(parameters: int, rule: type | None = None) -> int:
    """How often a float32 run of ``parameters`` parameters is witnessed in float64: every step for a small
    model, or for a ``rule`` that branches on its step count (``Rule.branches_on_step``: wrong at one step,
    it could fall between two witnessed ones)."""
    if parameters < EVERY_STEP_MAX_PARAMETERS or getattr(rule, "branches_on_step", False):
        return 1
    return EVERY_LARGE


def due(step: int, every: int | None) -> bool:
    return every is not None and (step == 1 or step % every == 0)


def sides(manual, reference):
    """float64 copies of both sides, both holding torch's values; ``None`` when a side cannot be copied
    (a side without ``clone``/``load``/``with_dtype``)."""
    if not all(hasattr(manual, method) for method in ("clone", "load", "with_dtype")):
        return None
    reference64 = adjudication.scratch_reference(reference, np.float64)
    if reference64 is None:
        return None
    manual64 = manual.with_dtype(np.float64)
    manual64.load(reference64.values(), reference64.state())
    return manual64, reference64


def departures(lockstep_class, options, manual, reference, step: int, x: np.ndarray, y: np.ndarray) -> list[Check]:
    """The witnessed step's checks outside float64's tolerance, named ``<tensor> (float64)``."""
    copies = sides(manual, reference)
    if copies is None:
        return []
    options64 = replace(options, dtype="float64", resync=False, gradcheck=False, background=False)
    options64 = replace(options64, stats_every=None, adjudicate=False, witness_every=None)
    y64 = y if y.dtype.kind == "i" else y.astype(np.float64)
    with adjudication.quiet():
        record = lockstep_class(*copies, options64).step(step, x.astype(np.float64), y64)
    return [replace(check, tensor=check.tensor + SUFFIX) for check in record.checks if not check.passed]
