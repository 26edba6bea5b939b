"""The command line, ``backprop-parity``: one module per command (``COMMANDS`` in ``main``), one table of
exit statuses (``exits``). Importing this package imports nothing else, so ``compare.cli.exits`` can be
used anywhere."""

PROG = "backprop-parity"
