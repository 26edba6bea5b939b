"""Gradient-norm clipping, as torch.nn.utils.clip_grad_norm_ computes it (norm_type 2)."""

import numpy as np

# torch hard-codes this in _clip_grads_with_norm_: clip_coef = max_norm / (total_norm + 1e-6)
CLIP_EPS = 1e-6


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    r"""Scale every gradient **in place** so that their joint 2-norm is at most about ``max_norm``; return the norm.

    With g_i the gradient tensors::

        n_i ← ‖g_i‖₂                              (each tensor's norm)
        N ← ‖(n_1, …, n_k)‖₂                      (the norm of the norms = the norm of all entries)
        c ← min(max_norm / (N + 1e-6), 1)
        g_i ← c·g_i                               (always multiplied, by exactly 1.0 when not clipping)

    In place, as torch's trailing underscore says: the caller's arrays are the ones the optimizer
    then reads, so there is no second set to keep in step. Returns N, the norm *before* clipping
    (torch returns it as a tensor). Convention: because of the 1e-6, a gradient whose norm equals
    ``max_norm`` is still scaled, by 1 − 1e-6/N; textbooks write c = max_norm/N when N > max_norm.
    Arithmetic stays in the gradients' dtype, as torch's does; all gradients share one dtype.
    A non-finite N makes every gradient NaN, as torch's default ``error_if_nonfinite=False`` does.
    """
    if not grads:
        return 0.0  # torch: tensor(0.) when there are no gradients
    norms = np.stack([np.linalg.norm(g.ravel()) for g in grads.values()])  # (k,)
    total_norm = np.linalg.norm(norms)
    clip_coef = np.minimum(max_norm / (total_norm + CLIP_EPS), 1.0)  # torch: clamp(max=1.0)
    for g in grads.values():
        g *= clip_coef
    return float(total_norm)
