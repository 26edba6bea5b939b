"""The ``optax.schedules`` schedule of each ``--lr-schedule`` part, in torch's meaning (``torch_ref.schedules``).

The schedule is a function of the update count (0 at the first step), as torch's epoch counter:

* ``step:S:G`` → ``exponential_decay(lr, S, G, staircase=True)``: lr·G^⌊t/S⌋ (StepLR);
* ``exp:G`` → ``exponential_decay(lr, 1, G)``: lr·G^t (ExponentialLR);
* ``cosine:T`` → ``cosine_decay_schedule(lr, T, alpha=0)``: lr·(1 + cos(πt/T))/2 (CosineAnnealingLR up to
  t = T; past T torch's rises again, optax's stays at 0);
* ``warmup:W`` → ``linear_schedule(lr/(W + 1), lr, W)``: lr·(t + 1)/(W + 1) (LinearLR from 1/(W + 1));
* a sequence → ``join_schedules`` at the warm-up's end (SequentialLR: the next part restarts its count).

optax calls a schedule with its own step count, an int32, and JAX's type promotion computes ``count / T`` in
float32: the learning rate comes out rounded to float32 (7e-9 relative for ``step:5:0.5``, 2e-7 for
``exp:0.95``, measured against torch's double). ``build`` casts the count to float64 first, so the rate is
torch's; ``--framework-defaults`` keeps optax's own behaviour.
"""

from collections.abc import Callable, Sequence

import jax.numpy as jnp
import optax


def schedule(kind: str, args: Sequence[float], lr: float) -> optax.Schedule:
    if kind == "step":
        return optax.schedules.exponential_decay(lr, int(args[0]), args[1], staircase=True)
    if kind == "exp":
        return optax.schedules.exponential_decay(lr, 1, args[0])
    if kind == "cosine":
        return optax.schedules.cosine_decay_schedule(lr, int(args[0]), alpha=0.0)
    if kind == "warmup":
        warmup = int(args[0])
        return optax.schedules.linear_schedule(lr / (warmup + 1), lr, warmup)
    raise ValueError(f"unknown schedule kind {kind!r}")


def build(parsed: Sequence[tuple[str, Sequence[float]]], lr: float, float64_count: bool = True) -> Callable:
    """The schedule of ``parsed`` (``manual.schedules.parse_schedule``'s output) starting from ``lr``;
    ``float64_count``: evaluated at the count cast to float64 (torch's double learning rate)."""
    parts = [schedule(kind, args, lr) for kind, args in parsed]
    joined = parts[0]
    if len(parts) > 1:
        joined = optax.schedules.join_schedules(parts, [int(args[0]) for _, args in parsed[:-1]])
    if not float64_count:
        return joined
    return lambda count: joined(jnp.asarray(count, jnp.float64))
