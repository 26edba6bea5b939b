"""The optax ``GradientTransformation`` of each optimizer name, in torch's meaning or in optax's own defaults.

``build_optimizer(name, keywords, lr)`` reads ``keywords`` as torch's keyword arguments (torch's defaults
for those not given, read from ``torch.optim``'s own signature, never from the manual rule under test) and
composes optax's transforms so that they compute torch's rule: the L2 term (``add_decayed_weights``)
first for coupled weight decay, last before the learning rate for decoupled decay (θ·(1 − γλ) is
θ − γ·λθ), momentum before the learning rate (torch's buffer holds gradients, not steps, so a schedule
changes the step as torch's does). Where no optax keyword computes torch's rule it raises
``InexpressibleError``, one line naming what optax lacks; every such line was measured (docs/frameworks.md).

``optax_defaults(name, lr)`` is the other question, ``--framework-defaults``: each library's own defaults
beyond the learning rate (``optax.adamw(lr)`` against ``torch.optim.AdamW(lr=lr)``); ``jax_ref.conventions``
names each convention that then shows, with the keywords that make the two equal.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
import torch

from manual.optim import REGISTRY

LearningRate = float | Callable[[jax.Array], jax.Array]


class InexpressibleError(ValueError):
    """torch's rule (with these keywords) that no optax transform computes: the message says what is missing."""


def torch_keywords(name: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """torch's keyword arguments for ``name``: its class's defaults, the registry's implied keywords
    (momentum's μ = 0.9), then ``hyperparameters``."""
    entry = REGISTRY[name]
    signature = inspect.signature(getattr(torch.optim, entry.torch_class))
    defaults = {key: p.default for key, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **dict(entry.torch_kwargs), **hyperparameters}


def _l2(k: Mapping[str, Any]) -> optax.GradientTransformation:
    """torch's coupled weight decay, g ← g + λθ, first in the chain."""
    return optax.add_decayed_weights(k["weight_decay"]) if k.get("weight_decay") else optax.identity()


def _require(k: Mapping[str, Any], key: str, value: Any, missing: str) -> None:
    if k.get(key, value) != value:
        raise InexpressibleError(f"{key}={k[key]}: {missing}")


def _sgd(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    _require(k, "dampening", 0, "optax.trace has no dampening τ (torch's b ← μb + (1 − τ)g after the first step)")
    momentum = optax.trace(decay=k["momentum"], nesterov=k["nesterov"]) if k["momentum"] else optax.identity()
    return optax.chain(_l2(k), momentum, optax.scale_by_learning_rate(lr))


def _adam(k: Mapping[str, Any], lr: LearningRate, decoupled: bool) -> optax.GradientTransformation:
    _require(
        k,
        "amsgrad",
        False,
        "optax.scale_by_amsgrad keeps the max of the bias-corrected v̂ (torch: of the raw v, corrected after)",
    )
    b1, b2 = k["betas"]
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=k["eps"])
    if decoupled:
        return optax.chain(adam, optax.add_decayed_weights(k["weight_decay"]), optax.scale_by_learning_rate(lr))
    return optax.chain(_l2(k), adam, optax.scale_by_learning_rate(lr))


def _rmsprop(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    scale = optax.scale_by_stddev if k["centered"] else optax.scale_by_rms
    momentum = optax.trace(decay=k["momentum"]) if k["momentum"] else optax.identity()
    rms = scale(decay=k["alpha"], eps=k["eps"], eps_in_sqrt=False)  # torch: √v + ε, ε outside the root
    return optax.chain(_l2(k), rms, momentum, optax.scale_by_learning_rate(lr))


def _adagrad(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    _require(
        k, "eps", 0, "optax.scale_by_rss adds ε inside the square root, 1/√(s + ε) (torch: 1/(√s + ε)); give --eps 0"
    )
    decay = k["lr_decay"]
    decayed = lr if not decay else (lambda count: _at(lr, count) / (1 + count * decay))  # γ/(1 + (t − 1)·η)
    rss = optax.scale_by_rss(initial_accumulator_value=k["initial_accumulator_value"], eps=0.0)
    return optax.chain(_l2(k), rss, optax.scale_by_learning_rate(decayed))


def _adamax(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    b1, b2 = k["betas"]
    return optax.chain(_l2(k), optax.scale_by_adamax(b1=b1, b2=b2, eps=k["eps"]), optax.scale_by_learning_rate(lr))


def _radam(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    _require(
        k,
        "eps",
        0,
        "optax.scale_by_radam adds ε to √v̂ after the bias correction (torch: to √v before it); give --eps 0",
    )
    b1, b2 = k["betas"]
    radam = optax.scale_by_radam(b1=b1, b2=b2, eps=0.0)
    if k["decoupled_weight_decay"]:
        return optax.chain(radam, optax.add_decayed_weights(k["weight_decay"]), optax.scale_by_learning_rate(lr))
    return optax.chain(_l2(k), radam, optax.scale_by_learning_rate(lr))


def _adadelta(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
    delta = optax.scale_by_adadelta(rho=k["rho"], eps=k["eps"])
    return optax.chain(_l2(k), delta, optax.scale_by_learning_rate(lr))


def _none(missing: str) -> Callable[..., optax.GradientTransformation]:
    def inexpressible(k: Mapping[str, Any], lr: LearningRate) -> optax.GradientTransformation:
        raise InexpressibleError(missing)

    return inexpressible


NADAM_MISSING = (
    "torch's NAdam multiplies its momentum by the schedule μ_t = β1·(1 − ½·0.96^(t·ψ)) (momentum_decay ψ); "
    "optax.nadam has no momentum schedule"
)
RPROP_MISSING = (
    "optax.scale_by_rprop applies the previous step's update (its first step moves nothing); torch's Rprop "
    "applies this step's"
)
ASGD_MISSING = "optax has no ASGD (torch's averaged SGD, with its η and μ schedules and the average ax)"

BUILDERS: dict[str, Callable[[Mapping[str, Any], LearningRate], optax.GradientTransformation]] = {
    "sgd": _sgd,
    "momentum": _sgd,
    "nesterov": _sgd,
    "adam": lambda k, lr: _adam(k, lr, decoupled=False),
    "adamw": lambda k, lr: _adam(k, lr, decoupled=True),
    "rmsprop": _rmsprop,
    "adagrad": _adagrad,
    "adamax": _adamax,
    "nadam": _none(NADAM_MISSING),
    "radam": _radam,
    "adadelta": _adadelta,
    "asgd": _none(ASGD_MISSING),
    "rprop": _none(RPROP_MISSING),
}


def _at(lr: LearningRate, count: jax.Array) -> jax.Array:
    return lr(count) if callable(lr) else jnp.asarray(lr)


def build_optimizer(
    name: str, hyperparameters: Mapping[str, Any], schedule: LearningRate | None = None
) -> optax.GradientTransformation:
    """optax's transform computing torch's ``name`` with ``hyperparameters`` (torch's keywords; ``lr`` among
    them), the learning rate from ``schedule`` when given. Raises ``InexpressibleError``."""
    k = torch_keywords(name, hyperparameters)
    return BUILDERS[name](k, schedule if schedule is not None else k["lr"])


def optax_defaults(name: str, lr: LearningRate) -> optax.GradientTransformation:
    """optax's own optimizer for ``name``, with optax's defaults beyond the learning rate (and the momentum
    the name implies: momentum and nesterov are SGD with μ = 0.9)."""
    if name == "asgd":
        raise InexpressibleError(ASGD_MISSING)
    if name == "rprop":
        if callable(lr):
            raise InexpressibleError("optax.rprop takes a constant learning rate (its initial step size), no schedule")
        return optax.rprop(lr)
    implied = dict(REGISTRY[name].torch_kwargs)
    if name in ("sgd", "momentum", "nesterov"):
        return optax.sgd(lr, momentum=implied.get("momentum"), nesterov=implied.get("nesterov", False))
    return getattr(optax, name)(lr)


# Where each torch state key of a rule lives in optax's state (a field of one of the chain's states), or
# ``STEP``: a counter optax does not keep for this rule, the side's own update count.
STEP = "<updates>"
STATE_FIELDS: dict[str, dict[str, str]] = {
    "sgd": {"momentum_buffer": "trace"},
    "momentum": {"momentum_buffer": "trace"},
    "nesterov": {"momentum_buffer": "trace"},
    "adam": {"step": "count", "exp_avg": "mu", "exp_avg_sq": "nu"},
    "adamw": {"step": "count", "exp_avg": "mu", "exp_avg_sq": "nu"},
    "rmsprop": {"step": STEP, "square_avg": "nu", "grad_avg": "mu", "momentum_buffer": "trace"},
    "adagrad": {"step": STEP, "sum": "sum_of_squares"},
    "adamax": {"step": "count", "exp_avg": "mu", "exp_inf": "nu"},
    "nadam": {"step": "count", "exp_avg": "mu", "exp_avg_sq": "nu"},
    "radam": {"step": "count", "exp_avg": "mu", "exp_avg_sq": "nu"},
    "adadelta": {"step": STEP, "square_avg": "e_g", "acc_delta": "e_x"},
    "asgd": {},
    "rprop": {"step": STEP, "prev": "prev_updates", "step_size": "step_sizes"},
}


def state_fields(state: Any) -> dict[str, Any]:
    """Every named field of an optax state (a chain's tuple of NamedTuples, nested), first occurrence kept."""
    found: dict[str, Any] = {}
    if hasattr(state, "_fields"):
        for key in state._fields:
            value = getattr(state, key)
            if isinstance(value, tuple) and not hasattr(value, "_fields"):
                found.update({k: v for k, v in state_fields(value).items() if k not in found})
            else:
                found.setdefault(key, value)
    elif isinstance(state, tuple | list):
        for item in state:
            found.update({k: v for k, v in state_fields(item).items() if k not in found})
    return found
