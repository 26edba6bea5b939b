"""The fault catalog (``catalog``): known mistakes, each an ``Override`` of the manual side (``override``)
built from the faulty pieces in ``layers``, ``losses``, ``optimizers`` and ``loop``."""

from compare.core.override import NONE, Override
from compare.faults.catalog import CATALOG, Fault, check
from compare.faults.files import FILES

__all__ = ["CATALOG", "FILES", "NONE", "Fault", "Override", "check"]
