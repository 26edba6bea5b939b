"""The noise floor: how far apart two sides' elements may be from rounding alone.

A tensor passes when ``max|manual − torch| ≤ max_rel · scale`` (``compare.core.metrics``): ``max_rel`` is the
dtype's and stage's tolerance (``compare.core.tolerances``), and the scale is ``max(amplification ·
max|torch|, floor)``, where the floor is the magnitude of the terms that produced the tensor
(``compare.core.scales``) and the amplification what optimizer state inherits from an ill-conditioned
gradient. Read per element, the same bound is the noise floor: two elements that differ by no more are
equal as far as the checker can tell, and whatever a rule decides from them on one side it could as well
have decided on the other (``compare.core.decisions``). Nothing here is a new tolerance: it is the one the
comparison already uses, so that a value the checker accepts is never a value that it then blames.
"""

import numpy as np

from compare.core.metrics import amax, measured_scale
from compare.core.tolerances import tolerance


def floor(
    reference: np.ndarray,
    dtype: str,
    stage: str,
    device: str = "cpu",
    terms: float = 0.0,
    amplification: float = 1.0,
) -> float:
    """The largest difference of one element of ``reference`` (torch's tensor) that rounding alone explains
    at ``stage``: ``terms`` is the tensor's scale floor, ``amplification`` its state amplification."""
    if np.size(reference) == 0:
        return 0.0
    scale = measured_scale(amax(np.asarray(reference)), terms, amplification)
    return tolerance(dtype, stage, device).max_rel * scale


def within(manual: np.ndarray, reference: np.ndarray, bound: float) -> np.ndarray:
    """Elementwise: ``|manual − reference| ≤ bound`` (False where either is not finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(np.subtract(manual, reference, dtype=np.float64)) <= bound
