"""Drift told from a wrong rule: a free-running departure judged by one step from identical values.

Left to run freely, the two sides' rounding differs in the last bits at every step, and training can
amplify that difference until it exceeds the tolerance, long after the last rule acted wrongly (if any
did). A wrong rule, on the other hand, shows in any single step. So at the first departure of a step that
did not itself start from identical values, the engine copies both sides into scratch copies, loads
torch's values (parameters, buffers, optimizer state) into the manual copy, and runs one step of the same
batch on the copies:

* within tolerance → drift: the run records it (``compare.core.records.Drift``), copies torch's values
  into the real manual side (a resync) and goes on;
* outside → a wrong rule, reported at the free-running step, stage and tensor, as without adjudication;
* non-finite on torch's side (alone or with the manual side's) → undecidable: from torch's own values
  the run leaves the finite numbers, so one step can neither show a wrong rule nor rule it out. The run
  diverged; the verdict says ``diverged: undecidable from step N`` (exit 4), never a wrong rule.

A run whose loss has grown ``DIVERGED_GROWTH`` times past its first step's, on both sides alike, has
diverged through huge values: there a departure by rounding alone is undecidable too (``diverged``),
whether or not the step started from identical values, the float64 witness's included.

A step that started from identical values (step 1, a step after a resync) is its own proof: its departure
is a wrong rule at once. Departures that rounding cannot cause (a shape, a dtype, a missing tensor, a
non-finite value, the learning rate) are never drift. Nothing here runs on a step that passes.
"""

import contextlib
import warnings
from collections.abc import Iterator

from compare.core.records import Check, Drift
from compare.core.torch_side import TorchSide

# Departures that no rounding can produce: judged wrong without a second step.
NEVER_DRIFT_TENSORS = frozenset({"lr"})
WITNESS = " (float64)"  # compare.core.witness64's suffix: a departure in float64 from identical values


def rounding_only(departures: list[Check]) -> bool:
    """Whether every departure is one of values (no shape, dtype, non-finite value or lr): what rounding can
    produce in a run that diverged, the float64 witness's included."""
    return bool(departures) and all(
        check.diff.problem is None and check.tensor not in NEVER_DRIFT_TENSORS for check in departures
    )


def may_be_drift(departures: list[Check]) -> bool:
    """Whether rounding, amplified by training, could explain every departure of the step (the float64
    witness's start from identical values: theirs cannot be drift)."""
    return rounding_only(departures) and not any(check.tensor.endswith(WITNESS) for check in departures)


def scratch_reference(reference: TorchSide, dtype: type | None = None) -> TorchSide | None:
    """A copy of the reference side (``scratch``: torch's, a data-parallel side's local twin, JAX's), its
    floating values cast to ``dtype`` when given, or ``None`` when it cannot be copied."""
    try:
        return reference.scratch(dtype)
    except Exception:  # a reference that cannot be copied is not adjudicated
        return None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """A scratch step without torch's warning that a copied scheduler's optimizer "has been overridden"
    (the copy's ``step`` is a copy of the wrapper the scheduler installed, which torch cannot recognise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Seems like `optimizer.step\\(\\)` has been overridden")
        yield


# A loss 10^4 times its first step's: the run is not learning but diverging. At such magnitudes a step is
# ill-conditioned (a saturated tanh's 1 − t², sums of huge terms that cancel), so one rounding apart on the
# two sides grows past the dtype's tolerance within a step, from identical values too, in float64 as in
# float32: a departure there cannot be told from a wrong rule. (Measured: float32 Nesterov, lr 2, tanh, mse
# on the spirals, loss 0.53 → 2.9e3 → 6.7e5 at steps 1-4; the float64 witness departs at step 6.) A wrong
# rule that acts while the run still learns is reported where it acts, long before.
DIVERGED_GROWTH = 1e4


def diverged(first_loss: float | None, loss_manual: float, loss_torch: float) -> bool:
    """Whether both sides' loss has grown ``DIVERGED_GROWTH`` times past the first step's (torch's)."""
    if first_loss is None or not first_loss > 0:
        return False
    return min(abs(loss_manual), abs(loss_torch)) > DIVERGED_GROWTH * first_loss


class Undecidable:
    """``judge``'s answer when the step from identical values overflowed on torch's side."""


UNDECIDABLE = Undecidable()
OVERFLOWED = frozenset({"nonfinite:both", "nonfinite:torch"})


def judge(departed, again) -> Drift | Undecidable | None:
    """``departed``: the free-running step's record; ``again``: the step from identical values. Drift
    when the step from identical values passed; undecidable when torch's side of it left the finite numbers."""
    if again.raised is None and any(check.diff.problem in OVERFLOWED for check in again.checks):
        return UNDECIDABLE
    if again.first_failure is not None or again.raised is not None:
        return None
    one_step = {f"{check.stage} {check.tensor}": check.diff.max_rel for check in again.checks}
    return Drift(departed.step, tuple(departed.departures), one_step)
