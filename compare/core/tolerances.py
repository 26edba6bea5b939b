"""Every tolerance the checker uses, keyed by device, dtype and stage, each with its reason.

A tensor passes when ``max_rel = max|manual − torch| / max|torch| ≤ max_rel`` of its entry
(torch is the reference; see ``compare.core.metrics``). The values come from the dtype's machine
epsilon and were never tuned until a run went green.
"""

from dataclasses import dataclass

import numpy as np

from compare.core.stages import STAGES  # the stages, in the order the engine runs them: one entry each below

EPS32 = float(np.finfo(np.float32).eps)  # 1.2e-7
EPS16 = float(np.finfo(np.float16).eps)  # 9.8e-4 (10 mantissa bits)
EPS_BF16 = 2.0**-7  # 7.8e-3: bfloat16 keeps 7 mantissa bits (NumPy has no bfloat16; torch.finfo agrees)


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

# float16 and bfloat16: only code written in torch (``compare.check_function``, a user's torch tensors) runs
# in them. Both sides round at every operation as float32 does, but 2^13 (float16) and 2^16 (bfloat16) times
# coarser, and a reduction of n terms (a LayerNorm over 256 features, a matmul's inner dimension) adds up
# to about sqrt(n) ulps of noise on its result; torch's own composition and a fused hand-written op round
# at different places, so their difference is that noise, not zero. sqrt(eps) is, as for float32, half of
# the dtype's digits: 3.1e-2 (float16) covers sqrt(256) = 16 ulps of 9.8e-4 with 2x headroom and is still
# far below an O(1) formula error (a missing factor, a wrong sign). bfloat16's sqrt(eps) = 8.8e-2 is 11 ulps
# of 7.8e-3: a formula error smaller than that hides in bfloat16's rounding, which is why
# ``check_function`` also re-runs both sides in float64 (a witness at FLOAT64) on the same inputs.
FLOAT16 = Tolerance(
    float(np.sqrt(EPS16)),  # 3.1e-2
    "float16 rounds at 9.8e-4 per operation (10 mantissa bits), and a reduction over n terms adds about "
    "sqrt(n) ulps; sqrt(eps) = 3.1e-2 is half of float16's digits, above 16 ulps (a reduction over 256 "
    "terms) with 2x headroom and far below an O(1) formula error; a float64 re-run of both sides proves the formula",
)
BFLOAT16 = Tolerance(
    float(np.sqrt(EPS_BF16)),  # 8.8e-2
    "bfloat16 rounds at 7.8e-3 per operation (7 mantissa bits), and a reduction over n terms adds about "
    "sqrt(n) ulps; sqrt(eps) = 8.8e-2 is half of bfloat16's digits (11 ulps), far below an O(1) formula "
    "error; smaller formula errors hide in its rounding, so a float64 re-run of both sides proves the formula",
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
    # CUDA's half-precision kernels accumulate in float32 (as the CPU's do) in other orders: the CPU's bound.
    **{(device, "float16", stage): FLOAT16 for stage in STAGES for device in ("cpu", "cuda")},
    **{(device, "bfloat16", stage): BFLOAT16 for stage in STAGES for device in ("cpu", "cuda")},
}
# Integer state (the optimizer's step counter) must match exactly: there is no rounding in it.


def tolerance(dtype: str, stage: str, device: str = "cpu") -> Tolerance:
    """``device``: where the torch twin runs, ``cpu`` or ``cuda`` (a ``cuda:1`` counts as ``cuda``)."""
    return TOLERANCES[(device.split(":")[0], dtype, stage)]


# The measured rounding spread (``compare.core.spread``): a check that fails is re-judged against the
# reference computed again with every floating input and parameter moved by at most one ulp. SPREAD_SAMPLES
# recomputations: per element the smallest distance to the reference is kept, so one recomputation whose
# branch flipped (a ReLU within an ulp of its kink, an argmax tie) cannot inflate the spread; two is the
# fewest for which that holds, and each costs one more forward and backward of the reference, on the
# failure path only.
SPREAD_SAMPLES = 2
# SPREAD_FACTOR: the check passes when max|manual − torch| ≤ SPREAD_FACTOR · S, S the measured spread. The
# manual side rounds as torch does but with its own formula (a fused BatchNorm backward against torch's
# composition, NumPy's summation order against torch's), so its distance to torch is a few times S, not S;
# being a ratio of two rounding noises, it does not depend on the dtype. Measured by
# `python -m compare.bench.spread` (a lecture network whose Linear bias before BatchNorm has an exact-0
# gradient, checked against its own nn.Module twin: 60 seeds x batches 8/32/128 x 3 steps, 540 re-judged
# comparisons per dtype): max|Δ| / S had median 1.6 (float64) and 1.5 (float32), 90th percentile 3.5 in
# both, largest 9.3 and 13. 32 stands 2.5x above the largest (a power law through the 90th percentile and
# the largest puts a ratio above 32 at about 4e-5 per re-judged comparison), while a wrong formula, off by a
# fraction of the terms, is 1/ε times S: 1e6 (float32) to 1e15 (float64) of it.
SPREAD_FACTOR = 32.0
