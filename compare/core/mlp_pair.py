"""The package's own MLP and its torch twin as the two sides of a ``Lockstep``, from one spec and one
set of weights (copied into each side, never shared)."""

from dataclasses import dataclass

import numpy as np
import torch

from compare.core.engine import Lockstep, Options
from compare.core.manual_side import ManualSide
from compare.core.override import NONE, Override
from compare.core.torch_side import TorchSide
from compare.errors import InputError
from manual import schedules as manual_schedules
from manual.clip import clip_grad_norm
from manual.mlp import MLP
from manual.optim import OPTIMIZERS
from manual.spec import MLPSpec
from torch_ref import TorchTwin, build_twin


@dataclass(frozen=True)
class Pair:
    """What both sides are built from. ``manual_optimizer`` replaces the hand-written optimizer (a rule
    under test, a textbook variant); ``schedule`` is a parsed ``--lr-schedule``; ``seed`` seeds the
    manual side's dropout masks; ``device`` is where the torch twin runs; ``override`` is a fault
    (``compare.faults``) built into the manual side."""

    spec: MLPSpec
    weights: dict[str, np.ndarray]
    optimizer: str
    hyperparameters: dict
    dtype: str
    manual_optimizer: object = None
    schedule: list | None = None
    seed: int = 0
    device: torch.device | str = "cpu"
    override: Override = NONE
    torch_hyperparameters: dict | None = None  # torch's keyword arguments, when not ``hyperparameters``
    framework_defaults: bool = False  # the JAX side from optax's own defaults, not torch's rule (``jax_ref.optim``)


def manual_side(pair: Pair) -> ManualSide:
    model = MLP(pair.spec, pair.weights, np.random.default_rng(pair.seed))
    model.layers = pair.override.layers(model.layers)
    model.loss = pair.override.loss_of(model.loss)
    optimizer = pair.manual_optimizer or OPTIMIZERS[pair.optimizer](**pair.hyperparameters)
    optimizer = pair.override.optimizer_of(optimizer)
    schedule = manual_schedules.build(pair.schedule, optimizer) if pair.schedule else None
    if pair.override.schedule_first and schedule is not None:
        schedule.step()  # ``scheduler.step()`` before ``optimizer.step()`` in the loop: one step early
    clip = pair.override.clip or clip_grad_norm
    return ManualSide(model, optimizer, schedule, clip, getattr(optimizer, "comparable_state", None))


def torch_twin(pair: Pair) -> TorchTwin:
    hyperparameters = pair.hyperparameters if pair.torch_hyperparameters is None else pair.torch_hyperparameters
    return build_twin(pair.spec, pair.weights, pair.optimizer, hyperparameters, pair.dtype, pair.schedule, pair.device)


def torch_side(pair: Pair) -> TorchSide:
    return TorchSide(torch_twin(pair))


def jax_side(pair: Pair):
    """The JAX + optax twin (``compare.core.jax_side``); JAX is imported here, for a run that asks for it.
    Raises ``InputError`` where JAX is missing or optax cannot compute the rule (``jax_ref.InexpressibleError``)."""
    try:
        import jax_ref
        from compare.core.jax_side import JaxSide
    except ImportError as error:
        raise InputError(f"the jax side needs JAX and optax ({error}): pip install -e '.[jax]'") from None
    hyperparameters = pair.hyperparameters if pair.torch_hyperparameters is None else pair.torch_hyperparameters
    try:
        twin = jax_ref.build_twin(
            pair.spec, pair.weights, pair.optimizer, hyperparameters, pair.dtype, pair.schedule, pair.framework_defaults
        )
    except jax_ref.InexpressibleError as error:
        raise InputError(f"--optimizer {pair.optimizer} has no optax equivalent: {error}") from None
    return JaxSide(twin, pair.seed)


SIDE_BUILDERS = {"manual": manual_side, "torch": torch_side, "jax": jax_side}


def twins(
    spec: MLPSpec,
    weights: dict[str, np.ndarray],
    optimizer: str,
    hyperparameters: dict,
    dtype: str,
    manual_optimizer=None,
    schedule: list | None = None,
    clip: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    override: Override = NONE,
    **options,
) -> Lockstep:
    """A ``Lockstep`` of the MLP and its twin (the short form of ``Pair`` + ``Options``); ``override`` is a
    fault built into the manual side; ``options`` are further ``Options`` fields (``resync``,
    ``gradcheck``, ``background``, ``stats_every``)."""
    pair = Pair(spec, weights, optimizer, hyperparameters, dtype, manual_optimizer, schedule, seed, device, override)
    return Lockstep(manual_side(pair), torch_side(pair), Options(dtype=dtype, clip_grad_norm=clip, **options))
