"""What a .npy file (or a member of an .npz) declares it holds, read from its header before its
data: a file whose header promises more than it holds, or more than a run can have, is refused
before numpy asks memory for it (a 77 KB file can declare a terabyte)."""
import math

import numpy as np

from atomic_files import open_regular

# The header readers of the .npy versions np.save writes for numbers (3.0 is for non-Latin-1
# field names only, which no array of numbers has).
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}


def declared(f):
    """(shape, dtype, bytes of data) the .npy at `f`'s position declares, leaving `f` just after
    its header; a ValueError if it is no .npy of a version np.save writes for numbers."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError:
        raise ValueError("it does not start as a .npy file does") from None
    if version not in HEADER_READERS:
        raise ValueError(f"a .npy of version {version[0]}.{version[1]}, which np.save writes for "
                         f"no array of numbers")
    try:
        shape, _, dtype = HEADER_READERS[version](f)
    except Exception:  # numpy parses the header as Python: damage raises any error, in its words
        raise ValueError("its header is not one np.save writes") from None
    if any(length >= 2**63 for length in shape):  # no array's; said in full, a message's too long
        raise ValueError("its header declares a length past any array's")
    return shape, dtype, math.prod(shape) * dtype.itemsize


def declared_rows(path):
    """The rows of the matrix the .npy at `path` declares, or None where it is no .npy of a
    matrix that can be read."""
    try:
        with open_regular(path) as f:
            shape = declared(f)[0]
    except (OSError, ValueError, EOFError):
        return None
    return shape[0] if len(shape) == 2 else None
