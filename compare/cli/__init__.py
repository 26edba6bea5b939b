"""The command line, ``backprop-parity``: one module per command (``COMMANDS`` in ``main``); their exit
statuses are the one table ``compare.exits`` (in the lowest layer, as a data-parallel rank exits with them
too)."""

PROG = "backprop-parity"
