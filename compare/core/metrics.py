"""How far apart two tensors are, in numbers that stay meaningful near zero.

Definitions (torch is the reference side):

* ``max_abs = max_i |manual_i − torch_i|``
* ``max_rel = max_abs / max_i |torch_i|``: the worst difference relative to the tensor's
  *scale*, not element by element, so an element that happens to be near zero cannot blow
  the ratio up. ``0/0`` counts as 0; a difference on an all-zero reference is ``inf``.
  One refinement: a node can produce a result much smaller than the terms it combined (a ReLU
  zeroing most of a batch, a gradient sum whose terms cancel); rounding error scales with the
  terms, so the scale is never less than ``scale_floor``, the terms' magnitude (``compare.core.scales``).
  A tensor that may inherit a larger relative error than its own rounding (optimizer state built from
  an ill-conditioned gradient) is measured against ``amplification`` times its scale instead.
* ``worst_index``: where ``|manual − torch|`` is largest.

A non-finite value (NaN, ±inf) on either side makes both numbers ``inf`` and names the side.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorDiff:
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    problem: str | None = None  # "shape", "nonfinite:manual", "nonfinite:torch", "nonfinite:both"

    def within(self, max_rel: float) -> bool:
        return self.problem is None and self.max_rel <= max_rel


def amax(array: np.ndarray) -> float:
    """``max|array|`` read as the largest and the smallest element, with no ``|array|`` copy; NaN if any is NaN."""
    return max(float(array.max()), -float(array.min()))


# Tensors are compared a block at a time, so that the difference of a block is still in cache when its
# largest element is found: each array is read from memory once, where whole-array NumPy calls read it
# (or its difference) five times. 2^16 elements (512 KiB in float64) measured best among 2^14..2^19
# (a step's worth of 784-1024-1024-10 tensors: 18 ms whole, 11.7 ms in blocks; 2 cores, AMD EPYC).
BLOCK = 1 << 16


def diff(manual: np.ndarray, reference: np.ndarray, scale_floor: float = 0.0, amplification: float = 1.0) -> TensorDiff:
    """``amplification`` (≥ 1): the scale is ``max(amplification · max|reference|, scale_floor)``."""
    manual, reference = np.asarray(manual), np.asarray(reference)
    if manual.shape != reference.shape:
        return TensorDiff(np.inf, np.inf, (), "shape")
    if manual.size == 0:
        return TensorDiff(0.0, 0.0, ())
    m, r = manual.reshape(-1), reference.reshape(-1)
    delta = np.empty(min(BLOCK, m.size))  # |manual − torch| of one block, in float64 whatever the dtype
    max_abs, flat, reference_max = -1.0, 0, 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf is NaN, reported below
        for start in range(0, m.size, BLOCK):
            block = delta[: min(BLOCK, m.size - start)]
            m_block, r_block = m[start : start + BLOCK], r[start : start + BLOCK]
            np.subtract(m_block, r_block, out=block, dtype=np.float64)
            np.abs(block, out=block)
            i = int(np.argmax(block))  # NaN wins argmax, so a non-finite element is found here
            if not block[i] <= max_abs:
                max_abs, flat = float(block[i]), start + i
                if not np.isfinite(max_abs):
                    return nonfinite(manual, reference)
            reference_max = max(reference_max, amax(r_block))
    scale = measured_scale(reference_max, scale_floor, amplification)
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return TensorDiff(max_abs, max_rel, tuple(int(i) for i in np.unravel_index(flat, manual.shape)))


def measured_scale(reference_max: float, scale_floor: float = 0.0, amplification: float = 1.0) -> float:
    """What a difference is measured against: ``max(amplification · max|reference|, scale_floor)``."""
    return max(amplification * reference_max, scale_floor)


def nonfinite(manual: np.ndarray, reference: np.ndarray) -> TensorDiff:
    """NaN or inf on at least one side (inf − inf and NaN − x are NaN): which side, and the first such element."""
    bad_manual = not np.all(np.isfinite(manual))
    bad_torch = not np.all(np.isfinite(reference))
    side = "both" if bad_manual and bad_torch else ("manual" if bad_manual else "torch")
    first = np.argwhere(~np.isfinite(manual) | ~np.isfinite(reference))[0]
    return TensorDiff(np.inf, np.inf, tuple(int(i) for i in first), f"nonfinite:{side}")


def worst_elements(manual: np.ndarray, reference: np.ndarray, count: int = 5) -> list[dict]:
    """The ``count`` elements with the largest ``|manual − torch|``, for a side-by-side print."""
    manual = np.asarray(manual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if manual.shape != reference.shape:
        return []
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.abs(manual - reference)
    delta = np.where(np.isnan(delta), np.inf, delta)
    order = np.argsort(delta, axis=None, kind="stable")[::-1][:count]
    rows = []
    for flat in order:
        index = tuple(int(i) for i in np.unravel_index(flat, manual.shape))
        rows.append({"index": list(index), "manual": float(manual[index]), "torch": float(reference[index])})
    return rows
