"""Errors that are the user's mistake: reported as one line on stderr with exit code 2."""


class UsageError(Exception):
    """Bad input from the user (a wrong argument, file or token): one clear line, no traceback.

    The message names what is wrong and how to fix it.
    """
