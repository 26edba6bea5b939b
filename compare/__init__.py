"""backprop-parity's checker. ``compare.run(config)`` runs a check from a ``RunConfig`` and returns its
``RunResult`` (verdict, report, run directory); the command line ``backprop-parity`` is ``compare.cli``.
``check_layer``, ``check_loss``, ``check_optimizer`` and ``check_model`` check the user's own code
(``compare.check``), each returning a ``Report``; ``assert_parity(report)`` is the pytest helper.

Layout: ``core`` (the engine, its two sides, stages, metrics, tolerances), ``inputs`` (configuration,
data, devices, seeds), ``output`` (report, TensorBoard, run directories), ``faults`` (the catalog of
known mistakes), ``experiments``, ``bench``, ``cli``; ``pipeline`` joins them into a run.
"""

from compare.check import Report, assert_parity, check_layer, check_loss, check_model, check_optimizer
from compare.core.records import RunResult
from compare.inputs.config import RunConfig
from compare.pipeline import Hooks, Output, run

__all__ = [
    "Hooks",
    "Output",
    "Report",
    "RunConfig",
    "RunResult",
    "assert_parity",
    "check_layer",
    "check_loss",
    "check_model",
    "check_optimizer",
    "run",
]
