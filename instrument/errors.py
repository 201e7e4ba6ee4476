"""Errors that are the user's mistake: reported as one line on stderr with exit code 2."""

from __future__ import annotations

import reprlib
from typing import Any

EXCERPT_CHARS = 120  # what a message quotes of a value or text at most: enough to recognise it

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = EXCERPT_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


class UsageError(Exception):
    """Bad input from the user (a wrong argument, file or token): one clear line, no traceback.

    The message names what is wrong and how to fix it.
    """


def excerpt(value: Any, limit: int = EXCERPT_CHARS, quote: bool = False) -> str:
    """A short, one-line quotation of ``value`` for a message: a string's text (its repr with
    ``quote``), an exception's message, anything else as its repr, cut to ``limit`` characters.
    Never expands a huge value (a 10,000-element list, an alias-expanded tree) in full: reprlib
    stops early."""
    plain = isinstance(value, BaseException) or (isinstance(value, str) and not quote)
    text = str(value) if plain else _REPR.repr(value)
    if isinstance(value, BaseException) and not text:
        text = type(value).__name__
    long = len(text) > 2 * limit
    text = " ".join(text[: 2 * limit].split())  # one line
    return text if len(text) <= limit and not long else text[: limit - 3] + "..."
