"""The MLP as a pure JAX function of its parameters, from the same ``MLPSpec`` as the other twins.

Parameters and buffers are dicts keyed by torch's ``state_dict`` names (``0.weight``, ``1.running_mean``)
with torch's shapes (a Linear weight is ``(out, in)``, applied as ``x @ W.T + b``), so every tensor
compares by name with no transposition. ``forward`` returns every layer's output (``<i>.out``) and the
BatchNorm buffers after the batch: the running statistics are explicit state, returned, never mutated.
Dropout multiplies by an injected boolean mask, ``x · (mask / (1 − p))`` as torch builds its noise: JAX's
PRNG cannot draw NumPy's mask, so the draw comes from the side under test and only the scale is JAX's.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from manual.spec import MLPSpec

DTYPES = {"float64": jnp.float64, "float32": jnp.float32, "bfloat16": jnp.bfloat16}
BATCHNORM_MOMENTUM = 0.1  # torch's BatchNorm1d defaults: running = (1 − m)·running + m·batch
BATCHNORM_EPS = 1e-5
LEAKY_SLOPE = 0.01  # torch's LeakyReLU negative_slope

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,  # gradient 0 at exactly 0, as torch's
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, LEAKY_SLOPE),
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _mse(prediction: jax.Array, target: jax.Array) -> jax.Array:
    return optax.losses.squared_error(prediction, target).mean()  # no ½: torch's MSELoss


def _bce(logits: jax.Array, target: jax.Array) -> jax.Array:
    return optax.losses.sigmoid_binary_cross_entropy(logits, target).mean()


# Each with torch's reduction="mean": over the batch (cross-entropy), over every element (mse, bce).
LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "bce": _bce,
}

Params = dict[str, jax.Array]


def initial_values(spec: MLPSpec, weights: Mapping[str, np.ndarray], dtype: str) -> tuple[Params, Params]:
    """(parameters, buffers) as JAX arrays of ``dtype``, copies of ``weights`` (on the CPU ``jnp.asarray`` may
    share a NumPy array's memory, and the caller may change it in place); the batch counter stays an integer."""
    params = {name: jnp.array(np.array(weights[name]), DTYPES[dtype]) for name in spec.parameter_shapes()}
    buffers = {}
    for name in spec.buffer_shapes():
        value = np.asarray(weights[name])
        buffers[name] = jnp.array(np.array(value), jnp.int64 if value.dtype.kind == "i" else DTYPES[dtype])
    return params, buffers


def _batchnorm(
    h: jax.Array, params: Params, buffers: Params, index: int, train: bool
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """torch's BatchNorm1d: training normalises by the biased batch variance and moves the running variance
    toward the unbiased one; evaluation uses the running statistics."""
    key = f"{index}."
    if not train:
        mean, var, updated = buffers[key + "running_mean"], buffers[key + "running_var"], {}
    else:
        mean, var = h.mean(axis=0), h.var(axis=0)
        unbiased = var * (h.shape[0] / (h.shape[0] - 1))
        m = BATCHNORM_MOMENTUM
        updated = {
            key + "running_mean": (1 - m) * buffers[key + "running_mean"] + m * jax.lax.stop_gradient(mean),
            key + "running_var": (1 - m) * buffers[key + "running_var"] + m * jax.lax.stop_gradient(unbiased),
            key + "num_batches_tracked": buffers[key + "num_batches_tracked"] + 1,
        }
    normalised = (h - mean) / jnp.sqrt(var + BATCHNORM_EPS)
    return normalised * params[key + "weight"] + params[key + "bias"], updated


def forward(
    spec: MLPSpec,
    params: Params,
    buffers: Params,
    x: jax.Array,
    masks: Mapping[int, jax.Array],
    train: bool,
    probes: list[jax.Array] | None = None,
) -> tuple[list[jax.Array], Params]:
    """Every layer's output in order, and the buffers after the batch. ``probes``: zeros added to each
    output, so that the gradient with respect to them is dL/d(that output) (the grad stage compares it)."""
    outs, h, new_buffers = [], x, dict(buffers)
    for node in spec.layout():
        i = node.index
        if node.kind == "linear":
            h = h @ params[f"{i}.weight"].T
            if node.bias:
                h = h + params[f"{i}.bias"]
        elif node.kind == "batchnorm":
            h, updated = _batchnorm(h, params, buffers, i, train)
            new_buffers.update(updated)
        elif node.kind == "dropout":
            if train:
                h = h * (masks[i].astype(h.dtype) / (1 - spec.dropout))
        else:
            h = ACTIVATIONS[node.kind](h)
        if probes is not None:
            h = h + probes[i]
        outs.append(h)
    return outs, new_buffers


def loss_value(spec: MLPSpec, prediction: jax.Array, target: jax.Array) -> jax.Array:
    return LOSSES[spec.loss](prediction, target)


def train_pass(spec: MLPSpec, params: Params, buffers: Params, x: jax.Array, y: jax.Array, masks) -> tuple:
    """Forward and backward in training mode: ``(loss, outputs, new buffers, parameter gradients, output
    gradients)``. ``jax.value_and_grad`` differentiates the loss with respect to the parameters and to a zero
    probe on each layer output at once."""

    def objective(params: Params, probes: list[jax.Array]):
        outs, new_buffers = forward(spec, params, buffers, x, masks, True, probes)
        return loss_value(spec, outs[-1], y), (outs, new_buffers)

    shapes = [(x.shape[0], node.width_out) for node in spec.layout()]
    probes = [jnp.zeros(shape, x.dtype) for shape in shapes]
    (loss, (outs, new_buffers)), (grads, out_grads) = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
        params, probes
    )
    return loss, outs, new_buffers, grads, out_grads


# One compiled program per spec and shapes: the spec is hashable (a frozen dataclass), so it is static.
train_pass_jit = jax.jit(train_pass, static_argnums=0)
forward_jit = jax.jit(forward, static_argnames=("spec", "train"))
