"""How a fault enters the manual side: as data, given to the side when it is built.

An ``Override`` names what it replaces (every layer of one class, the loss, the optimizer's rule, the
clipping function, or the order of scheduler and optimizer); ``compare.core.mlp_pair.manual_side`` applies
it while it builds the side, so nothing is rewired after the engine exists. The faults themselves, and the
catalog of them, live above the engine in ``compare.faults``.
"""

from collections.abc import Callable
from dataclasses import dataclass

from manual.layers import Node


def recast(obj: object, cls: type) -> object:
    """A copy of ``obj`` as the faulty subclass ``cls``, sharing its arrays (parameters, buffers, rng)."""
    new = cls.__new__(cls)
    new.__dict__.update(obj.__dict__)
    return new


@dataclass(frozen=True)
class Override:
    layer_base: type | None = None  # every layer of exactly this class ...
    make_layer: Callable[[Node], Node] | None = None  # ... is replaced by make_layer(layer)
    loss: type | None = None  # the loss, recast to this faulty subclass
    optimizer: type | None = None  # the optimizer's rule: this class, built from the same hyperparameters
    clip: Callable | None = None  # replaces manual.clip.clip_grad_norm
    schedule_first: bool = False  # the manual scheduler steps before the optimizer (one step early)

    def layers(self, layers: list[Node]) -> list[Node]:
        if self.layer_base is None:
            return layers
        return [self.make_layer(layer) if type(layer) is self.layer_base else layer for layer in layers]

    def loss_of(self, loss: object) -> object:
        return loss if self.loss is None else recast(loss, self.loss)

    def optimizer_of(self, optimizer: object) -> object:
        return optimizer if self.optimizer is None else self.optimizer(**optimizer.hyperparameters())


NONE = Override()
SCHEDULE_FIRST = Override(schedule_first=True)


def layer_as(base: type, cls: type) -> Override:
    return Override(layer_base=base, make_layer=lambda layer: recast(layer, cls))


def layer_made(base: type, make: Callable[[Node], Node]) -> Override:
    return Override(layer_base=base, make_layer=make)


def loss_as(cls: type) -> Override:
    return Override(loss=cls)


def optimizer_as(cls: type) -> Override:
    return Override(optimizer=cls)


def clip_with(function: Callable) -> Override:
    return Override(clip=function)
