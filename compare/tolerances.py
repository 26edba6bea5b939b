"""Every tolerance the checker uses, keyed by dtype and stage, each with its reason.

A tensor passes when ``max_rel = max|manual − torch| / max|torch| ≤ max_rel`` of its entry
(torch is the reference; see ``compare.metrics``). The values come from the dtype's machine
epsilon and were never tuned until a run went green.
"""

from dataclasses import dataclass

import numpy as np

STAGES = ("forward", "loss", "grad", "state", "param", "eval")

EPS64 = float(np.finfo(np.float64).eps)  # 2.2e-16
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

TOLERANCES: dict[tuple[str, str], Tolerance] = {
    **{("float64", stage): FLOAT64 for stage in STAGES},
    **{("float32", stage): FLOAT32 for stage in STAGES},
}
# Integer state (the optimizer's step counter) must match exactly: there is no rounding in it.


def tolerance(dtype: str, stage: str) -> Tolerance:
    return TOLERANCES[(dtype, stage)]
