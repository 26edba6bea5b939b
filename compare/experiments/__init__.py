"""The lecture made runnable: experiments on how backpropagation behaves, each trained by both twins
in lockstep with parity asserted at every step (``backprop-parity experiment NAME``).

``EXPERIMENTS`` maps each name to its :class:`~compare.experiments.base.Experiment`, in the order of
the lecture; each lives in its own module.
"""

from compare.experiments import (
    batch_size,
    chain_rule,
    graph,
    initialization,
    learning_rate,
    optimizers,
    overfitting,
    vanishing_gradients,
)
from compare.experiments.base import Experiment, Outcome, ParityError, Session

EXPERIMENTS: dict[str, Experiment] = {
    module.EXPERIMENT.name: module.EXPERIMENT
    for module in (
        graph,
        chain_rule,
        vanishing_gradients,
        learning_rate,
        batch_size,
        optimizers,
        overfitting,
        initialization,
    )
}

__all__ = ["EXPERIMENTS", "Experiment", "Outcome", "ParityError", "Session"]
