"""Twins: artists with exactly the same context memberships under a run's contexts. Training draws
the same pairs for twins, so the vectors cannot order them; an answer says so (`radiohead: 697
artists have exactly its contexts (rock, score 8); the vectors cannot order them`).

Memberships are read from the run's metadata (ArtistVectors.value_ids): genres, score bucket,
labels (split by genre, as their groups are) and the era of the mean release year, which stands in
for the eras of each release that the year groups use. Numpy alone.
"""
import numpy as np

from contexts import CONTEXTS

# A fixed seed for the values' random 64-bit weights: the same artists get the same groups.
KEY_SEED = 22
# The contexts whose groups split most twins (a median of 1 on the full data): what a note suggests.
TIE_BREAKING_CONTEXTS = ("genre", "score", "label")


def twin_groups(artist_vectors, kinds):
    """(the group of each artist, each group's size): artists of one group have exactly the same
    memberships in the context `kinds`."""
    keys = np.stack([key for kind in kinds for key in _membership_keys(artist_vectors, kind)]
                    or [np.zeros(len(artist_vectors), np.uint64)], axis=1)
    _, group, sizes = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return group.reshape(-1), sizes


def _membership_keys(artist_vectors, kind):
    """Key columns of each artist's memberships of one kind: its values' set, and where the kind's
    groups are split by another kind's values (`within`), that kind's set for artists with some."""
    found = artist_vectors.value_ids(kind)
    keys = [set_keys(found, len(artist_vectors))]
    within = CONTEXTS[kind].within
    if within is not None:
        has_values = (np.zeros(len(artist_vectors), bool) if found is None
                      else np.diff(found[0]) > 0)
        keys.append(np.where(has_values, set_keys(artist_vectors.value_ids(within),
                                                  len(artist_vectors)), np.uint64(0)))
    return keys


def set_keys(value_ids, rows):
    """A 64-bit key of each artist's set of value ids (ArtistVectors.value_ids; None: no values):
    the sum of the values' random weights, wrapping, so the same set has the same key whatever its
    order and two sets share a key with a chance of 2**-64. The empty set's key is 0."""
    if value_ids is None:
        return np.zeros(rows, np.uint64)
    bounds, ids = value_ids
    weights = np.random.default_rng(KEY_SEED).integers(
        np.iinfo(np.uint64).max, size=ids.max() + 1, dtype=np.uint64, endpoint=True)
    sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(weights[ids], dtype=np.uint64)])
    return sums[bounds[1:]] - sums[bounds[:-1]]
