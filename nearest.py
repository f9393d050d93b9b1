"""The k largest similarities of each row: the one top-k of every neighbour search (queries, the
quality figures, an ensemble's members)."""
import numpy as np

# Rows of at least 4 x k blocks of this many values find their k largest through the blocks' maxima.
TOP_BLOCK = 1024


def top_k(similarity, k):
    """The columns of each row's `k` largest values, largest first: the one top-k of every neighbour
    search."""
    if k == 0:
        return np.empty((len(similarity), 0), dtype=np.int64)
    if similarity.shape[1] >= TOP_BLOCK * k * 4:
        # A row's k largest are at least its k-th largest block maximum: one pass for the maxima
        # and one to compare, then only those candidates (tens, not a million) are sorted.
        whole = similarity.shape[1] // TOP_BLOCK * TOP_BLOCK
        maxima = similarity[:, :whole].reshape(len(similarity), -1, TOP_BLOCK).max(axis=2)
        floor = np.partition(maxima, -k, axis=1)[:, -k]
        row, column = np.nonzero(similarity >= floor[:, None])
        if len(row) <= len(similarity) * k * TOP_BLOCK // 16:  # else ties everywhere: sort all
            order = np.lexsort((column, -similarity[row, column], row))
            first = np.searchsorted(row[order], np.arange(len(similarity)))
            return column[order][first[:, None] + np.arange(k)]
    rows = np.arange(len(similarity))[:, None]
    best = np.argpartition(similarity, -k, axis=1)[:, -k:]  # the k largest, in no order
    return best[rows, np.argsort(-similarity[rows, best], axis=1, kind="stable")]
