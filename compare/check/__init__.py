"""Check your own code against torch, step by step, with the mistake named.

The entry points, one module each, named after the function: ``check_layer``, ``check_loss``,
``check_optimizer``, ``check_model`` (a whole network, trained in lockstep by ``compare.core.engine``, the
user's network a side of it through ``model_side``), ``check_function`` (a hand-written torch backward
against autograd's; ``check_jax_function`` the same for a ``jax.custom_vjp``) and ``check_engine``
(a home-made autograd engine; its suite and catalog in
``autograd/``). ``gradient_stream`` is the default gradients ``check_optimizer`` steps on; ``report`` is what
every check returns (Report, Failure, Diagnosis, Part, assert_parity).
By role: ``forms/`` reads the user's code (call forms, names and layouts), ``sandbox/`` runs it (copies in,
time limits, threads, what it raised), ``diagnosis/`` names the mistake (known mistakes, conventions, replay).
What checking a model costs: ``compare.bench.check_speed``.
"""

from compare.check.autograd.network import engine_model
from compare.check.check_engine import check_engine
from compare.check.check_function import check_function
from compare.check.check_jax_function import check_jax_function
from compare.check.check_layer import check_layer
from compare.check.check_loss import check_loss
from compare.check.check_model import check_model
from compare.check.check_optimizer import check_optimizer
from compare.check.report import Diagnosis, Failure, Report, assert_parity

# Each check_* takes ``isolate=True`` (and ``memory_limit=``, GiB) to run in a child process
# (compare.check.sandbox.isolated).

__all__ = [
    "Diagnosis",
    "Failure",
    "Report",
    "assert_parity",
    "check_engine",
    "check_function",
    "check_jax_function",
    "check_layer",
    "check_loss",
    "check_model",
    "check_optimizer",
    "engine_model",
]
