"""The project's exceptions: each message is one line the user can act on; run.py prints it as is.

Every error the library raises for the user's input, data, runs or cluster is a Bands2VecError.
"""

import math
import reprlib
import sys

SHOWN_CHARACTERS = 60  # how much of a wrong argument or name an error message quotes

# reprlib's repr names a container's first few items only, so quoting a list of a million numbers
# costs as little as quoting one; it cuts other long reprs in their middle, and shown() cuts them
# at their end instead.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlong = _SHORT_REPR.maxother = _SHORT_REPR.maxstring = sys.maxsize


def shown(value):
    """A wrong argument as an error message quotes it: its repr on one line (numpy's repr of an
    array has several), cut short; whatever the value, even one whose repr fails."""
    if isinstance(value, str):  # the part that can be shown, whatever the text's length
        value = value[:SHOWN_CHARACTERS]
    try:
        text = _SHORT_REPR.repr(value)
    except Exception:  # a repr that raises, or an int past Python's 4,300 digits
        text = _unshowable(value)
    if type(value) is not str:  # a str's repr escapes its line breaks; its spaces are its own
        text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."


def _unshowable(value):
    if isinstance(value, int):
        return f"<a whole number of about {int(value.bit_length() * math.log10(2)):,} digits>"
    return f"<a {type(value).__name__} that cannot be shown>"


def shown_count(value):
    """A number as an error message quotes it: with thousands' commas where it is short enough."""
    try:
        text = f"{value:,}"
    except (TypeError, ValueError):
        return shown(value)
    return text if len(text) <= SHOWN_CHARACTERS else shown(value)


class Bands2VecError(Exception):
    """An error of Bands2Vec's, in one line for the user."""


class DataError(Bands2VecError):
    """Input data that cannot be used."""


class RunError(Bands2VecError):
    """A log folder or run folder that cannot be used."""


class OptionError(Bands2VecError, ValueError):
    """A training option out of range, named as the command line names it."""


class UnknownArtist(Bands2VecError, KeyError):
    """A name that is not in the vocabulary; it carries the closest names."""

    def __init__(self, name, suggestions):
        super().__init__(name)
        self.name, self.suggestions = name, suggestions

    def __str__(self):
        hint = (f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?"
                if self.suggestions else "")
        return f"unknown artist {shown(self.name)}{hint}"


class QueryError(Bands2VecError, ValueError):
    """An expression or question that cannot be answered."""


class ClusterError(Bands2VecError, ValueError):
    """TF_CONFIG that cannot be used, or tasks that cannot train together."""


class ClusterLost(ClusterError):
    """A task of the cluster has gone (a parameter server died, or never answered). TensorFlow then
    hangs closing the session, so the process must end without it (run.py does, with os._exit)."""


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM; `run` is what it saved; the message says how to go on."""

    def __init__(self, message, run):
        super().__init__(message)
        self.run = run
