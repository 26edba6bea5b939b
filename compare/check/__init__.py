"""Check your own code: a layer, a loss, an optimizer or a whole network against torch, step by step,
with the mistake named (``check_layer``, ``check_loss``, ``check_optimizer``, ``check_model``)."""

from compare.check.layer import check_layer
from compare.check.loss import check_loss
from compare.check.network import check_model
from compare.check.optimizer import check_optimizer
from compare.check.report import Diagnosis, Failure, Report, assert_parity

__all__ = [
    "Diagnosis",
    "Failure",
    "Report",
    "assert_parity",
    "check_layer",
    "check_loss",
    "check_model",
    "check_optimizer",
]
