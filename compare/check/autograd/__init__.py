"""A home-made autograd engine's conformance suite (``check_engine``'s cases and mistakes, not the lockstep
engine of ``compare.core.engine``): ``suite`` (the cases, each written once for torch and for the engine),
``catalog`` (the classic engine mistakes, as data, each with its fix), ``network`` (an engine-written network
as ``check_model``'s function). The entry point, ``check_engine``, is ``compare.check.check_engine``."""
