"""How a configuration field is spelled on the command line: one rule for every command."""


def flag(name: str) -> str:
    """The command-line flag that sets a field (``batch_size`` → ``--batch-size``)."""
    return "--" + name.replace("_", "-")
