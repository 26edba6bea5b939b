"""backprop-parity's checker. ``compare.run(config)`` runs a check from a ``RunConfig`` and returns its
``RunResult`` (verdict, report, run directory); the command line ``backprop-parity`` is ``compare.cli``.

Layout: ``core`` (the engine, its two sides, stages, metrics, tolerances), ``inputs`` (configuration,
data, devices, seeds), ``output`` (report, TensorBoard, run directories), ``faults`` (the catalog of
known mistakes), ``experiments``, ``bench``, ``cli``; ``pipeline`` joins them into a run.
"""

from compare.core.records import RunResult
from compare.inputs.config import RunConfig
from compare.pipeline import Hooks, Output, run

__all__ = ["Hooks", "Output", "RunConfig", "RunResult", "run"]
