"""The command line, ``backprop-parity``: one module per command (``COMMANDS`` in ``main``); their exit
statuses are the one table ``compare.exits`` (in the lowest layer, as a data-parallel rank exits with them
too). ``demo`` builds a realistic log directory through these commands, for the tests and the screenshots."""

PROG = "backprop-parity"
