"""Errors raised at the package's boundaries."""


class InputError(ValueError):
    """Bad input from a user: a file, message, config value or flag.

    The message must say what was wrong and what to do about it; the CLI prints it
    as-is and exits non-zero, and nodes log it and skip the offending message.
    """
