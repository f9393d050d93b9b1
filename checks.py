"""Checks of the values a user gives the library, where they enter: each returns the value, or
raises an OptionError in the user's words, naming the option as the user gave it (`--steps` for a
training option, as the command line names it; `k` for a method's argument)."""
import math
import numbers
import os

from errors import OptionError, shown, shown_count

# Counts go into numpy's and TensorFlow's 64-bit integers.
LARGEST_WHOLE = 2 ** 63 - 1


def whole(option, value, least=None, most=LARGEST_WHOLE):
    """`value` if it is a whole number (not True or False) from `least` to `most`, as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionError(f"{option} must be a whole number, not {shown(value)}")
    value = int(value)
    if least is not None and most != LARGEST_WHOLE and not least <= value <= most:
        raise OptionError(f"{option} must be from {least:,} to {most:,}, not {shown(value)}")
    if least is not None and value < least:
        raise OptionError(f"{option} must be at least {least:,}, not {shown(value)}")
    if value > most:
        raise OptionError(f"{option} must be at most {most:,}, not {shown_count(value)}")
    return value


def positive(option, value, least=None, most=None):
    """`value` if it is a finite number above 0 (and from `least` to `most` where given), as a
    float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"{option} must be a number, not {shown(value)}")
    number = real(value)
    if number is None or number <= 0:
        need = ("above 0" if not value > 0 else "a finite number" if number is None else
                "a number a float holds (it reads as 0.0)")  # 10**400, or 1 / 10**400
        raise OptionError(f"{option} must be {need}, not {shown(value)}")
    if least is not None and not least <= number <= most:
        raise OptionError(f"{option} must be from {least:g} to {most:g}, not {number:g}")
    return number


def real(value):
    """`value` as a float where it is a finite real number (not True or False), else None: an
    int too big for a float is not finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def flag(option, value):
    """`value` if it is True or False."""
    if not isinstance(value, bool):
        raise OptionError(f"{option} must be True or False, not {shown(value)}")
    return value


def path(option, value, what=None):
    """`value` as a str if it is a path (a str or an os.PathLike of one); with `what`, what it
    names, not an empty one either."""
    try:
        text = os.fspath(value) if isinstance(value, os.PathLike) else value
    except TypeError:  # a __fspath__ that gives neither text nor bytes
        text = None
    if not isinstance(text, str):
        raise OptionError(f"{option} must be a path (text), not {shown(value)}")
    if "\0" in text:
        raise OptionError(f"{option} must be a path without NUL characters, not {shown(text)}")
    if not is_utf8(text):
        raise OptionError(f"{option} {shown(text)} is not UTF-8 text (Python's escape of a name "
                          f"in another encoding), which Bands2Vec cannot use; "
                          f"rename it, or choose another")
    if what and not text.strip():
        raise OptionError(f"{option} is empty: name {what}")
    return text


def function(option, value):
    """`value` if it can be called."""
    if not callable(value):
        raise OptionError(f"{option} must be a function, not {shown(value)}")
    return value


def is_utf8(text):
    """Whether `text` is UTF-8 text: a file name of other bytes comes from os.listdir (and from
    the command line) as lone surrogates ('\\udcff'), which TensorFlow's and SQLite's paths cannot
    hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
