"""The JAX + optax twin (``jax_ref``) as a side of the engine (``compare.core.side``), as the reference or
as the side under test.

Its values are immutable JAX arrays held in a ``jax_ref.JaxTwin``; each method that advances the side
replaces the twin with the one a pure function returns, so ``clone`` is the twin itself, shared. As the
reference it reports each tensor's floor (``compare.core.scales``) as the torch side does: the floor
formulas are written once, for torch's modules, so they read a torch mirror of the JAX side's layers
(``torch_ref.build_model`` from the same spec, holding the JAX side's current values) and its own outputs
and gradients. The module imports JAX: ``compare.core.mlp_pair`` imports it only for a run that asks for it.
"""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from compare.core import scales, spread
from compare.core.side import Tensors, by_layer
from compare.core.torch_side import ReferencePass, chain_floors
from jax_ref import model
from jax_ref.optim import STATE_FIELDS, STEP, state_fields
from jax_ref.twin import JaxTwin, apply, cast, clip_grad_norm
from torch_ref import build_loss, build_model, load_weights


def _numpy(value: jax.Array) -> np.ndarray:
    return np.array(value)  # a writable copy (torch.from_numpy warns on JAX's read-only buffers)


def _jax(value: Any, dtype: Any) -> jax.Array:
    """A JAX array holding a copy of ``value``. On the CPU ``jnp.asarray(a, dtype)`` of an aligned NumPy array
    of that dtype shares its memory (measured, jax 0.10.2: a torch tensor's ``.numpy()`` view, then the tensor's
    ``add_``, changed the JAX array): loading torch's state that way, torch's next in-place step rewrote the
    JAX side's "immutable" state (a float64 witness of centered RMSprop departed by 0.2 after a resync)."""
    return jnp.array(np.array(value, copy=True), dtype)


class JaxSide:
    """``seed``: the dropout masks this side draws when none are handed to it (it is the side under test)."""

    leaves_grads = True  # optax returns new arrays: the gradients may be compared while it steps

    def __init__(self, twin: JaxTwin, seed: int = 0) -> None:
        self.twin = twin
        self.seed = seed
        self.spec = twin.spec
        self.device = torch.device("cpu")  # the tolerance table's row: JAX runs on the CPU here
        self.mode_dependent = twin.spec.mode_dependent
        self.loss = build_loss(twin.spec)  # torch's description of the loss: its kind, its floor's formula
        self.mirror = build_model(twin.spec, getattr(torch, twin.dtype))
        self._grads: model.Params = {}

    def train_pass(self, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray] | None = None) -> ReferencePass:
        twin = self.twin
        masks = self._masks(x.shape[0], masks or {})
        jx, jy = jnp.asarray(x, model.DTYPES[twin.dtype]), jnp.asarray(y)
        loss, outs, buffers, grads, out_grads = model.train_pass_jit(
            self.spec, twin.params, twin.buffers, jx, jy, {i: jnp.asarray(m) for i, m in masks.items()}
        )
        self._load_mirror()  # the values this pass ran with, before its buffers moved
        self.twin, self._grads = replace(twin, buffers=buffers), grads
        outs_np, out_grads_np = [_numpy(o) for o in outs], [_numpy(g) for g in out_grads]
        floors, order = chain_floors(
            self.mirror,
            self.loss,
            torch.from_numpy(np.array(x)),
            y,
            [torch.from_numpy(o) for o in outs_np],
            [torch.from_numpy(g) for g in out_grads_np],
        )
        return ReferencePass(
            loss=np.float64(loss),
            grads=self.grads(),
            outputs=by_layer(outs_np),
            output_grads=by_layer(out_grads_np),
            masks=dict(masks),
            floors=floors,
            grad_order=order,
        )

    def recomputed(self, k: int, x: np.ndarray, y: np.ndarray, masks: Mapping[int, np.ndarray]) -> dict:
        """The training pass again with the parameters and ``x`` moved by at most an ulp
        (``compare.core.spread.Perturbation(k)``) and the same dropout masks, this side left as it was: each
        layer's output (forward), the loss, dL/d(output) and the parameters' gradients (grad), by (stage, name)."""
        twin, moved = self.twin, spread.Perturbation(k)
        params = {name: _jax(moved(_numpy(value)), value.dtype) for name, value in twin.params.items()}
        drawn = {i: jnp.asarray(m) for i, m in self._masks(x.shape[0], masks or {}).items()}
        jx = jnp.asarray(moved(x), model.DTYPES[twin.dtype])
        loss, outs, _, grads, out_grads = model.train_pass_jit(
            self.spec, params, twin.buffers, jx, jnp.asarray(y), drawn
        )
        tensors = {("loss", "loss"): np.float64(loss), **{("grad", n): _numpy(g) for n, g in grads.items()}}
        tensors.update({("forward", name): out for name, out in by_layer([_numpy(o) for o in outs]).items()})
        tensors.update({("grad", name): g for name, g in by_layer([_numpy(g) for g in out_grads]).items()})
        return tensors

    def _masks(self, batch: int, given: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """The dropout masks of this pass: those handed in, else drawn from ``jax.random`` (a key per step)."""
        masks = {}
        key = jax.random.fold_in(jax.random.key(self.seed), self.twin.updates)
        for node in self.spec.layout():
            if node.kind == "dropout":
                if node.index in given:
                    masks[node.index] = np.asarray(given[node.index])
                    continue
                layer_key = jax.random.fold_in(key, node.index)
                keep = 1 - self.spec.dropout
                masks[node.index] = np.asarray(jax.random.bernoulli(layer_key, keep, (batch, node.width_out)))
        return masks

    def _load_mirror(self) -> None:
        load_weights(self.mirror, self.spec, self.values())

    def clip(self, max_norm: float) -> float:
        self._grads, total = clip_grad_norm(self._grads, max_norm)
        return float(total)

    def lr(self) -> float:
        return self.twin.lr_at(self.twin.updates)

    def update(self) -> None:
        self.twin = apply(self.twin, self._grads)

    def end_step(self) -> None:
        """Nothing: the schedule is a function of the update count."""

    def state(self) -> dict[str, dict[str, Any]]:
        """optax's state under torch's keys (``jax_ref.optim.STATE_FIELDS``)."""
        fields = state_fields(self.twin.opt_state)
        found: dict[str, dict[str, Any]] = {name: {} for name in self.twin.params}
        for key, field in STATE_FIELDS[self.twin.optimizer].items():
            if field == STEP:
                for entries in found.values():
                    entries[key] = self.twin.updates
            elif field in fields and isinstance(fields[field], dict):
                for name, entries in found.items():
                    entries[key] = _numpy(fields[field][name])
            elif field in fields:
                for entries in found.values():
                    entries[key] = int(fields[field])
        return found

    def buffers(self) -> Tensors:
        return {
            name: int(value) if jnp.issubdtype(value.dtype, jnp.integer) else _numpy(value)
            for name, value in self.twin.buffers.items()
        }

    def parameters(self) -> Tensors:
        return {name: _numpy(value) for name, value in self.twin.params.items()}

    def grads(self) -> Tensors:
        return {name: _numpy(value) for name, value in self._grads.items()}

    def param_floors(self) -> dict[str, float]:
        return {}

    def keep_probability(self, index: int) -> float:
        return 1.0 - self.spec.dropout

    def values(self) -> dict[str, np.ndarray]:
        """Parameters and buffers, by name, as NumPy (what a resync copies into the other side)."""
        return {**self.parameters(), **{name: np.asarray(v) for name, v in self.buffers().items()}}

    def eval_outputs(self, x: np.ndarray) -> Tensors:
        return self.eval_pass(x)[0]

    def eval_pass(self, x: np.ndarray) -> tuple[Tensors, dict[str, float]]:
        """Every layer's output in evaluation mode, and each one's floor (from the torch mirror's layers)."""
        outs = [_numpy(o) for o in self._forward_eval(x)]
        self._load_mirror()
        inputs = [np.array(x), *outs[:-1]]
        names = [f"{i}.out" for i in range(len(outs))]
        self.mirror.eval()
        try:
            floors = {
                name: scales.forward_floor(self.mirror[i], torch.from_numpy(inputs[i])) for i, name in enumerate(names)
            }
        finally:
            self.mirror.train()
        return dict(zip(names, outs, strict=True)), floors

    def _forward_eval(self, x: np.ndarray) -> list[jax.Array]:
        jx = jnp.asarray(x, model.DTYPES[self.twin.dtype])
        return model.forward_jit(self.spec, self.twin.params, self.twin.buffers, jx, {}, False)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return _numpy(self._forward_eval(X)[-1])

    def loss_value(self, prediction: np.ndarray, y: np.ndarray) -> float:
        return float(model.loss_value(self.spec, jnp.asarray(prediction), jnp.asarray(y)))

    def clone(self) -> "JaxSide":
        """An independent copy: the twin's values are immutable, so the copy shares them."""
        side = JaxSide(self.twin, self.seed)
        side._grads = self._grads
        return side

    def kept(self) -> "JaxSide":
        """This side before a step (``compare.core.rewind``): a copy of it, its values being immutable."""
        return self.scratch()

    def restored(self, kept: "JaxSide") -> "JaxSide":
        """The copy ``kept()`` made, standing where it was taken (used once)."""
        return kept

    def scratch(self, dtype: type | None = None) -> "JaxSide":
        """A copy for adjudication and the float64 witness; ``dtype``: every floating value cast to it."""
        return self.clone() if dtype is None else self.with_dtype(dtype)

    def with_dtype(self, dtype: type) -> "JaxSide":
        return JaxSide(cast(self.twin, np.dtype(dtype).name), self.seed)

    def load(self, values: Mapping[str, np.ndarray], state: Mapping[str, Mapping[str, Any]]) -> None:
        """Another side's parameters, buffers and optimizer state (torch's keys) into this side's values."""
        twin = self.twin
        dtype = model.DTYPES[twin.dtype]
        params = {name: _jax(values[name], dtype) for name in twin.params}
        buffers = {name: _jax(values[name], value.dtype) for name, value in twin.buffers.items()}
        fields, updates = {}, twin.updates
        old = state_fields(twin.opt_state)
        for key, field in STATE_FIELDS[twin.optimizer].items():
            given = {name: state.get(name, {}).get(key) for name in params}
            if any(value is None for value in given.values()):
                continue
            if field == STEP:
                updates = int(next(iter(given.values())))
            elif field in old and isinstance(old[field], dict):
                fields[field] = {name: _jax(value, old[field][name].dtype) for name, value in given.items()}
            elif field in old:
                fields[field] = jnp.asarray(int(next(iter(given.values()))), old[field].dtype)
                updates = int(next(iter(given.values())))
        if "count" in old and "count" not in fields:  # a schedule's count: the updates taken
            fields["count"] = jnp.asarray(updates, old["count"].dtype)
        opt_state = _replace_fields(twin.opt_state, fields)
        self.twin = replace(twin, params=params, buffers=buffers, opt_state=opt_state, updates=updates)


def _replace_fields(state: Any, fields: Mapping[str, Any]) -> Any:
    """``state`` (a chain's nested NamedTuples) with each named field in ``fields`` replaced."""
    if hasattr(state, "_fields"):
        changed = {key: fields[key] for key in state._fields if key in fields}
        nested = {
            key: _replace_fields(getattr(state, key), fields)
            for key in state._fields
            if key not in fields and isinstance(getattr(state, key), tuple)
        }
        return state._replace(**changed, **nested)
    if isinstance(state, tuple):
        return tuple(_replace_fields(item, fields) for item in state)
    return state
