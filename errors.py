"""The project's exceptions: each message is one line the user can act on; run.py prints it as is.

Every error the library raises for the user's input, data, runs or cluster is a Bands2VecError.
"""

SHOWN_CHARACTERS = 60  # how much of a wrong argument or name an error message quotes


def shown(value):
    """A wrong argument as an error message quotes it: its repr on one line (numpy's repr of an
    array has several), cut short."""
    text = repr(value) if isinstance(value, str) else " ".join(repr(value).split())
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."


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
