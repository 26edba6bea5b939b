"""Check your own code: a layer, a loss, an optimizer or a whole network against torch, step by step,
with the mistake named (``check_layer``, ``check_loss``, ``check_optimizer``, ``check_model``).

By concern: ``report`` (Report, Failure, Diagnosis, Part, assert_parity), ``mapping`` (which user array is
which torch parameter), ``access`` (where a user object keeps its arrays), ``forms``, ``optimizer_forms`` and
``model_forms`` (the courses' call forms, recognised without glue), ``guard`` (copies in, exceptions out as
findings), ``layer``, ``loss``, ``optimizer`` (+ ``stream``, the default gradients), ``model`` (the user's
network as a side of the lockstep engine) and ``network`` (``check_model``), ``diagnose`` (replaying the fault
catalog and the textbook variants), ``conventions`` (a setting or loss scale named with its fix), ``replay``
and ``model_diagnosis`` (a whole network's mistakes, every departing piece), ``threads`` (small checks run
single-threaded), ``tensors`` (user code in torch tensors), ``function`` (``check_function``: a
hand-written torch backward against autograd's), ``engine`` (``check_engine``: a home-made autograd engine).
What checking a model costs: ``compare.bench.check_speed``.
"""

from compare.check import engine, function, layer, loss, network, optimizer
from compare.check.report import Diagnosis, Failure, Report, assert_parity
from compare.check.sandbox.isolated import isolatable

# Each takes ``isolate=True`` (and ``memory_limit=``, GiB) to run in a child process: compare.check.sandbox.isolated
check_engine = isolatable(engine.check_engine)
check_function = isolatable(function.check_function)
check_layer = isolatable(layer.check_layer)
check_loss = isolatable(loss.check_loss)
check_model = isolatable(network.check_model)
check_optimizer = isolatable(optimizer.check_optimizer)

__all__ = [
    "Diagnosis",
    "Failure",
    "Report",
    "assert_parity",
    "check_engine",
    "check_function",
    "check_layer",
    "check_loss",
    "check_model",
    "check_optimizer",
]
