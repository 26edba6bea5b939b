"""Mistakes in the training loop around the optimizer: clipping (the schedule-order mistake is a flag of
``compare.core.override.Override``)."""

import numpy as np

from manual.clip import CLIP_EPS


def clip_each_tensor(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Each gradient clipped to ``max_norm`` on its own; torch scales all by one global coefficient.

    Returns the global norm, as torch does, so the mistake shows in the clipped gradients.
    """
    total_norm = float(np.linalg.norm([np.linalg.norm(g.ravel()) for g in grads.values()]))
    for g in grads.values():
        g *= min(max_norm / (float(np.linalg.norm(g.ravel())) + CLIP_EPS), 1.0)
    return total_norm
