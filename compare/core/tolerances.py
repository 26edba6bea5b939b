"""Every tolerance the checker uses, keyed by device, dtype and stage, each with its reason.

A tensor passes when ``max_rel = max|manual − torch| / max|torch| ≤ max_rel`` of its entry
(torch is the reference; see ``compare.core.metrics``). The values come from the dtype's machine
epsilon and were never tuned until a run went green.
"""

from dataclasses import dataclass

import numpy as np

# The stages of a step in the order they are computed: the one list that the engine follows
# (``compare.core.stages``), that ranks a step's first failure and worst checks (``compare.core.records``)
# and that the text report and TensorBoard list. A new stage is added here, in its place.
STAGES = ("forward", "loss", "grad", "state", "param", "eval")
STAGE_RANK = {stage: rank for rank, stage in enumerate(STAGES)}

EPS32 = float(np.finfo(np.float32).eps)  # 1.2e-7


@dataclass(frozen=True)
class Tolerance:
    max_rel: float
    reason: str


FLOAT64 = Tolerance(
    1e-10,
    "same formulas in float64 agree to a few ulps (~1e-15) per step, and rounding drift over thousands "
    "of steps stays below 1e-13; 1e-10 keeps 1000x headroom over that drift while any difference of "
    "formula (eps placement, bias correction, dampening) shows at 1e-8 or more",
)
FLOAT32 = Tolerance(
    float(np.sqrt(EPS32)),  # 3.5e-4
    "float32 rounds at 1.2e-7 per operation and, unlike float64, that noise is amplified by the training "
    "dynamics over hundreds of steps (1e-6 to 1e-4 measured after 500 steps); sqrt(eps) = 3.5e-4 is half of "
    "float32's digits, above that drift and far below an O(1) formula error. Use float64 to prove a rule",
)

# The torch twin on a CUDA GPU (compare.inputs.devices: TF32 off, deterministic kernels). cuBLAS and the
# CUDA kernels sum in other orders than the CPU (tiles, tree reductions) and use FMA, and CUDA's exp
# and log are within 1-2 ulp rather than correctly rounded: each operation still rounds at the
# dtype's epsilon, so the per-step error stays a few ulps times the reduction length, as on the
# CPU, and the CPU's bounds carry over with the same headroom. TF32 would not: with it on, float32
# products round to 10 bits (~1e-3), above the float32 bound, which is why it is switched off.
CUDA_FLOAT64 = Tolerance(
    FLOAT64.max_rel,
    "CUDA float64 is IEEE double with FMA and other summation orders: a few ulps per step as on the CPU; "
    + FLOAT64.reason,
)
CUDA_FLOAT32 = Tolerance(
    FLOAT32.max_rel,
    "CUDA float32 with TF32 off rounds at 1.2e-7 per operation as on the CPU (TF32 on would be ~1e-3, "
    "above this bound); " + FLOAT32.reason,
)

TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    **{("cpu", "float64", stage): FLOAT64 for stage in STAGES},
    **{("cpu", "float32", stage): FLOAT32 for stage in STAGES},
    **{("cuda", "float64", stage): CUDA_FLOAT64 for stage in STAGES},
    **{("cuda", "float32", stage): CUDA_FLOAT32 for stage in STAGES},
}
# Integer state (the optimizer's step counter) must match exactly: there is no rounding in it.


def tolerance(dtype: str, stage: str, device: str = "cpu") -> Tolerance:
    """``device``: where the torch twin runs, ``cpu`` or ``cuda`` (a ``cuda:1`` counts as ``cuda``)."""
    return TOLERANCES[(device.split(":")[0], dtype, stage)]
