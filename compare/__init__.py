"""backprop-parity's checker. ``compare.run(config)`` runs a check from a ``RunConfig`` and returns its
``RunResult`` (verdict, report, run directory); the command line ``backprop-parity`` is ``compare.cli``.
``check_layer``, ``check_loss``, ``check_optimizer`` and ``check_model`` check the user's own code
(``compare.check``), ``check_function`` a hand-written torch backward (or a ``jax.custom_vjp``),
``check_jax_function`` a ``jax.custom_vjp`` against JAX's own differentiation, ``check_engine`` a home-made
autograd engine, each returning a ``Report``; ``assert_parity(report)`` is the pytest helper.

Layout: ``core`` (the engine, its two sides, stages, metrics, tolerances), ``inputs`` (configuration,
data, devices, seeds), ``output`` (report, TensorBoard, run directories), ``faults`` (the catalog of
known mistakes), ``experiments``, ``bench``, ``cli``; ``pipeline`` joins them into a run.
"""

import importlib

__version__ = "0.1.0"  # the one place: pyproject.toml reads it, `backprop-parity --version` prints it

__all__ = [
    "Diagnosis",
    "Hooks",
    "Output",
    "Report",
    "RunConfig",
    "RunResult",
    "assert_parity",
    "check_engine",
    "check_function",
    "check_jax_function",
    "check_layer",
    "check_loss",
    "check_model",
    "check_optimizer",
    "run",
]

# Imported when first used, not with the package: the command line imports ``compare.cli`` (and torch)
# inside ``main``, where a Ctrl-C during start-up is a one-line exit 130, not a traceback.
_HOMES = {
    "Hooks": "compare.pipeline",
    "Output": "compare.pipeline",
    "run": "compare.pipeline",
    "RunConfig": "compare.inputs.config",
    "RunResult": "compare.core.records",
    **{name: "compare.check" for name in __all__ if "check_" in name},
    **dict.fromkeys(("Diagnosis", "Report", "assert_parity"), "compare.check"),
}


def __dir__() -> list[str]:
    """The lazy names listed too (PEP 562), for ``dir(compare)``, completion, and the API reference's inspection."""
    return sorted({*globals(), *__all__})


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'compare' has no attribute {name!r}")
