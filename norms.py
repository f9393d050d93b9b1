"""Vectors scaled to unit length whatever their scale: in float32 the squares a norm sums overflow
past about 1e19 and lose their digits below about 1e-19, where a plain norm says inf or 0 (and
numpy warns), and every cosine of such a vector would be 0."""
import numpy as np

# Vectors whose plain norm lies between these are divided by it, as ever; the others (zero, tiny,
# huge, or past float32's range in their squares) are first scaled by their largest value.
USUAL_NORMS = (1e-12, 1e18)


def unit(vectors, axis=-1, out=None):
    """`vectors` divided by their norms along `axis` (into `out` if given); zero vectors stay
    zero, and no RuntimeWarning is left."""
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    usual = (norms >= USUAL_NORMS[0]) & (norms < USUAL_NORMS[1])
    if usual.all():
        return np.divide(vectors, norms, out=out)
    rescaled = _unit_by_largest(vectors, axis)  # before `out`, which may be `vectors`, is written
    result = np.divide(vectors, np.where(usual, norms, 1), out=out)
    np.copyto(result, rescaled, where=~usual)
    return result


def _unit_by_largest(vectors, axis):
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        largest = np.abs(vectors).max(axis=axis, keepdims=True)
        scaled = vectors / np.where(largest > 0, largest, 1)
        norms = np.linalg.norm(scaled, axis=axis, keepdims=True)
        return scaled / np.where(norms > 0, norms, 1)
