"""Ragged: a list of values per artist, kept as one flat array, so a million artists' reviews are a
few arrays rather than millions of tuples."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ragged:
    """Artist i's values are values[bounds[i]:bounds[i + 1]]."""
    values: np.ndarray
    bounds: np.ndarray

    @classmethod
    def from_sorted(cls, owners, values, n_artists):
        """From two columns sorted by owner (artist id)."""
        return cls(np.asarray(values),
                   np.searchsorted(np.asarray(owners), np.arange(n_artists + 1)))

    @classmethod
    def empty(cls, n_artists):
        return cls(np.empty(0, dtype=object), np.zeros(n_artists + 1, dtype=np.int64))

    def __getitem__(self, i):
        return tuple(self.values[self.bounds[i]:self.bounds[i + 1]].tolist())

    def __len__(self):
        return len(self.bounds) - 1

    @property
    def counts(self):
        return np.diff(self.bounds)

    @property
    def owners(self):
        """The artist id of each value."""
        return np.repeat(np.arange(len(self), dtype=np.int32), self.counts)

    def sums(self):
        # Added in order from 0, as Python's sum() over the artist's tuple adds them.
        return np.bincount(self.owners, weights=self.values, minlength=len(self))

    def tuples(self):
        """Every artist's tuple; equal tuples are one object (many artists have the same genres)."""
        shared = {}
        return [shared.setdefault(values, values)
                for values in map(self.__getitem__, range(len(self)))]
