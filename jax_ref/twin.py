"""The whole JAX side of a run as values: parameters, buffers, the optax transform and its state, the
schedule; and the pure functions that advance them. Nothing here mutates: each function returns the
new values, and ``compare.core.jax_side.JaxSide`` keeps the latest."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_ref import model, schedules
from jax_ref.optim import build_optimizer, optax_defaults, torch_keywords
from manual.spec import MLPSpec

CLIP_EPS = 1e-6  # torch's clip_grad_norm_: coefficient max_norm / (norm + 1e-6)


@dataclass(frozen=True)
class JaxTwin:
    """``optimizer``: the name; ``updates``: optimizer steps taken (the schedule's count, torch's ``step``)."""

    spec: MLPSpec
    dtype: str
    optimizer: str
    params: model.Params
    buffers: model.Params
    tx: optax.GradientTransformation
    opt_state: Any
    lr_at: Callable[[int], float]
    updates: int = 0


def build_twin(
    spec: MLPSpec,
    weights: Mapping[str, np.ndarray],
    optimizer: str,
    hyperparameters: Mapping[str, Any],
    dtype: str,
    schedule: list | None = None,
    framework_defaults: bool = False,
) -> JaxTwin:
    """``hyperparameters``: torch's keyword arguments (``lr`` among them); ``schedule``: a parsed
    ``--lr-schedule``; ``framework_defaults``: optax's own defaults beyond the learning rate. Raises
    ``jax_ref.InexpressibleError`` for a rule optax cannot compute."""
    lr = float(torch_keywords(optimizer, hyperparameters)["lr"])
    lr_schedule = schedules.build(schedule, lr, not framework_defaults) if schedule else None
    learning_rate = lr_schedule if lr_schedule is not None else lr
    if framework_defaults:
        tx = optax_defaults(optimizer, learning_rate)
    else:
        tx = build_optimizer(optimizer, hyperparameters, lr_schedule)
    params, buffers = model.initial_values(spec, weights, dtype)

    def lr_at(count: int) -> float:
        return float(lr_schedule(count)) if lr_schedule is not None else lr

    return JaxTwin(spec, dtype, optimizer, params, buffers, tx, tx.init(params), lr_at)


def apply(twin: JaxTwin, grads: model.Params) -> JaxTwin:
    """The optimizer's step: ``optax``'s update and ``apply_updates``, as one compiled function."""
    params, opt_state = _update(twin.tx, twin.params, twin.opt_state, grads)
    return replace(twin, params=params, opt_state=opt_state, updates=twin.updates + 1)


def _update(tx: optax.GradientTransformation, params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


_update = jax.jit(_update, static_argnums=0)


def clip_grad_norm(grads: model.Params, max_norm: float) -> tuple[model.Params, jax.Array]:
    """torch's ``clip_grad_norm_`` in its meaning: the norm of the per-parameter norms, and each gradient times
    min(max_norm / (norm + 1e-6), 1) (``optax.clip_by_global_norm`` divides by the norm itself)."""
    total = jnp.linalg.norm(jnp.stack([jnp.linalg.norm(g.reshape(-1)) for g in grads.values()]))
    coefficient = jnp.minimum(max_norm / (total + CLIP_EPS), 1.0)
    return {name: g * coefficient.astype(g.dtype) for name, g in grads.items()}, total


def cast(twin: JaxTwin, dtype: str) -> JaxTwin:
    """A copy of ``twin`` whose floating arrays (parameters, buffers, optimizer state) are ``dtype``."""
    target = model.DTYPES[dtype]

    def to(value):
        return value.astype(target) if jnp.issubdtype(value.dtype, jnp.floating) else value

    return replace(
        twin,
        dtype=dtype,
        params=jax.tree.map(to, twin.params),
        buffers=jax.tree.map(to, twin.buffers),
        opt_state=jax.tree.map(to, twin.opt_state),
    )
