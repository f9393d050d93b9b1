"""Batches of (target, context) artist pairs: each kind of context drawn at its share of the pairs,
each pair two members of one of the kind's groups."""
import numpy as np

from contexts import CONTEXTS, DEFAULT_CONTEXTS, REQUIRED_TABLES, parse_contexts
from errors import DataError


def no_pairs(catalog, kinds):
    """The error of a catalog in which no context of the `kinds` has two artists to make a pair."""
    return DataError(f"{catalog.source}: no two artists share a {' or a '.join(kinds)}, "
                     f"so there are no pairs")


def check_kinds_have_data(catalog, kinds):
    """A DataError naming the first of the `kinds` (asked for in --contexts) from an optional
    table that no review of the catalog has: its share would go to the others without a word.
    (The required genres table is refused where all NULL as it is read; one that joins none of
    the reviews trains on the other kinds, its figures `-`.)"""
    for kind in kinds:
        context, table = catalog.contexts.get(kind), CONTEXTS[kind].table
        # A table the data lacks altogether is named by catalog.context_groups.
        optional = table in catalog.tables and table not in REQUIRED_TABLES
        if optional and context is not None and not len(context.values):
            raise DataError(f"{catalog.source}: --contexts asks for {kind}, but no review has one "
                            f"(every {table}.{CONTEXTS[kind].columns[-1]} is NULL, unusable or of "
                            f"no review here); leave {kind} out of --contexts")


def membership_count(catalog, kind):
    """How many (artist, group) memberships of one kind can pair: those in groups of two or more."""
    return len(_ContextGroups(catalog.context_groups(kind)).members)


class _ContextGroups:
    """Flattened groups of artist ids, for drawing (artist, fellow group member) pairs in bulk.

    Drawing a membership uniformly gives every artist the same weight per group it belongs to,
    however large the group; the partner is another member of that group, never the artist itself.
    """

    def __init__(self, groups):
        groups = [ids for ids in groups.values() if len(ids) >= 2]
        self.members = np.concatenate(groups) if groups else np.empty(0, dtype=np.int32)
        sizes = np.array([len(ids) for ids in groups], dtype=np.int64)
        self.start = np.repeat(np.cumsum(sizes) - sizes, sizes)
        self.size = np.repeat(sizes, sizes)
        self.offset = np.arange(len(self.members)) - self.start

    def draw(self, n, rng):
        m = rng.integers(len(self.members), size=n)
        shift = 1 + (rng.random(n) * (self.size[m] - 1)).astype(np.int64)  # 1..size-1: never itself
        partner = self.start[m] + (self.offset[m] + shift) % self.size[m]
        return self.members[m], self.members[partner]


class PairSampler:
    """Batches of (target, context) artist ids, each context kind drawn at its share of pairs."""

    def __init__(self, catalog, shares=None, seed=0):
        shares = parse_contexts(DEFAULT_CONTEXTS) if shares is None else shares
        self.kinds = list(shares)
        self.groups = [_ContextGroups(catalog.context_groups(kind)) for kind in self.kinds]
        # A kind whose groups all have one artist gives no pairs: its share goes to the others.
        live = np.array([shares[kind] if len(groups.members) else 0.0
                         for kind, groups in zip(self.kinds, self.groups)])
        if not live.sum():
            raise no_pairs(catalog, self.kinds)
        self.shares = live / live.sum()
        self.vocabulary_size = len(catalog)
        self.rng = np.random.default_rng(seed)

    def context_distribution(self):
        """The probability of each artist being drawn as a context, for NCE's negative sampler.

        Every membership of a group is equally likely as a partner, so an artist's chance is its
        number of memberships over the total, mixed by the shares; a little of the uniform
        distribution is mixed in so that every artist can be drawn as a negative.
        """
        drawn = np.zeros(self.vocabulary_size)
        for share, groups in zip(self.shares, self.groups):
            if share:
                drawn += (share * np.bincount(groups.members, minlength=self.vocabulary_size)
                          / len(groups.members))
        return 0.999 * drawn + 0.001 / self.vocabulary_size

    def pairs(self, n):
        """`n` pairs as int32 arrays (inputs[n], labels[n, 1]) for the graph's placeholders."""
        inputs, labels, _ = self.pairs_with_kind(n)
        return inputs, labels

    def pairs_with_kind(self, n):
        """`pairs(n)` and, for each pair, the index in `kinds` of the context it was drawn from."""
        kind = np.minimum(np.searchsorted(np.cumsum(self.shares), self.rng.random(n), side="right"),
                          len(self.kinds) - 1)
        inputs = np.empty(n, dtype=np.int32)
        labels = np.empty(n, dtype=np.int32)
        for k, groups in enumerate(self.groups):
            mask = kind == k
            if mask.any():
                inputs[mask], labels[mask] = groups.draw(int(mask.sum()), self.rng)
        return inputs, labels[:, None], kind

    def batches(self, batch_size, n_batches):
        """`n_batches` batches drawn in one numpy call: (inputs[n, B], labels[n, B, 1])."""
        inputs, labels = self.pairs(batch_size * n_batches)
        return inputs.reshape(n_batches, batch_size), labels.reshape(n_batches, batch_size, 1)
