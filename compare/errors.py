"""The one exception that means "the user's input is wrong": the CLI prints it and exits 2."""


class InputError(Exception):
    """A problem with what the user asked for, worded as the one line the CLI prints."""
