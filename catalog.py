"""The catalog of artists and what the data says of each: `Catalog` (its columns and context
groups), `ArtistFacts` (the per-artist facts the context kinds derive, which a run saves as its
metadata.tsv) and `Artist`, the tutorial's record of one artist.
"""
import copy
import dataclasses
import functools
import hashlib

import numpy as np

from contexts import CONTEXTS
from errors import DataError
from ragged import Ragged


@dataclasses.dataclass(frozen=True)
class ArtistFacts:
    """What the data says of each artist, one row per artist in vocabulary order: derived once from
    a catalog by its context kinds (`Catalog.facts`), saved with a run as its metadata.tsv, and read
    by queries, the quality report, the plots and the projector. A field is None where the data
    lacks its kind's table; `more` holds the facts of kinds that have no field here."""
    names: list
    genres: list  # a tuple per artist, most reviewed first
    primary_genres: np.ndarray
    mean_scores: np.ndarray
    score_buckets: np.ndarray
    review_counts: np.ndarray
    labels: list = None  # a tuple per artist, most reviewed first
    main_labels: np.ndarray = None
    years: np.ndarray = None  # mean release year, NaN where none is known
    eras: np.ndarray = None
    more: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_facts(cls, names, facts):
        """The facts of `names` from {field: values}; fields this class lacks go into `more`."""
        own = {field.name for field in dataclasses.fields(cls)}
        return cls(names=names, **{name: value for name, value in facts.items() if name in own},
                   more={name: value for name, value in facts.items() if name not in own})

    def __len__(self):
        return len(self.names)


@dataclasses.dataclass(frozen=True)
class Artist:
    """One artist, as the tutorial's `Artist` class (name, reviews, genres and scores) with the
    facts the catalog's ArtistFacts derives from them."""
    name: str
    review_ids: tuple
    genres: tuple  # distinct genres, most reviewed first
    scores: tuple  # one score per review
    labels: tuple  # distinct record labels (real ones only), most reviewed first
    years: tuple  # release years of the reviewed records, where known
    mean_score: float
    score_bucket: int
    primary_genre: str
    main_label: str
    mean_year: float  # None where no year is known
    era: str  # such as `2005-2009`; empty where no year is known


class Catalog:
    """The artists, indexed 0..V-1, as columns: a name each, their reviews' ids and scores, and for
    each context kind read from a table its values by artist (`contexts`: genres, labels, years...).
    Its context groups are the tutorial's genre and score dictionaries. `catalog.artist(i)`,
    `catalog[name]` and iteration give `Artist` records."""

    def __init__(self, names, *, review_ids, scores, contexts, source, tables, dropped_scores=0,
                 left_out=None, include_pseudo_artists=False):
        self.names = list(names)
        self.review_ids, self.scores = review_ids, scores
        # Every kind read from a table has a column, empty where the data lacks the table.
        self.contexts = {name: contexts.get(name) or Ragged.empty(len(self.names))
                         for name, kind in CONTEXTS.items() if kind.table != "reviews"}
        self.source = source
        self.tables = frozenset(tables)  # the tables the data had
        self.dropped_scores = dropped_scores  # reviews skipped for a missing or out-of-range score
        self.left_out = dict(left_out or {})  # pseudo-artist -> its reviews, not in the vocabulary
        self.include_pseudo_artists = include_pseudo_artists
        self._groups = {}

    def replace(self, **contexts):
        """This catalog with some kinds' columns replaced (such as label=...), the same artists."""
        catalog = copy.copy(self)
        catalog.contexts = {**self.contexts, **contexts}
        catalog._groups = {}
        vars(catalog).pop("facts", None)  # derived from the columns replaced
        return catalog

    @functools.cached_property
    def facts(self):
        """The ArtistFacts: every per-artist fact, derived here once by the context kinds."""
        facts = {}
        for kind in CONTEXTS.values():
            if kind.table in self.tables:
                facts.update(kind.facts(self))
        return ArtistFacts.from_facts(self.names, facts)

    def context_groups(self, kind):
        """{group: artist ids} of one context kind; DataError if the data lacks the kind's table."""
        if kind not in self._groups:
            context = CONTEXTS[kind]
            if context.table not in self.tables:
                raise DataError(f"{self.source}: no {context.table} table, "
                                f"which the {kind} context needs")
            self._groups[kind] = _group_ids(*context.groups(self))
        return self._groups[kind]

    @property
    def genre_dict(self):
        return self.context_groups("genre")

    @property
    def score_dict(self):
        return self.context_groups("score")

    def __len__(self):
        return len(self.names)

    def artist(self, i):
        facts = self.facts
        labels, years = self.contexts["label"][i], self.contexts["year"][i]
        return Artist(self.names[i], self.review_ids[i], facts.genres[i], self.scores[i],
                      labels, years,
                      mean_score=float(facts.mean_scores[i]),
                      score_bucket=int(facts.score_buckets[i]),
                      primary_genre=facts.primary_genres[i],
                      main_label=facts.main_labels[i] if facts.main_labels is not None else "",
                      mean_year=float(facts.years[i]) if years else None,
                      era=facts.eras[i] if years else "")

    def __iter__(self):
        return map(self.artist, range(len(self)))

    def __getitem__(self, name):
        return self.artist(self.index[name])

    @functools.cached_property
    def index(self):
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def fingerprint(self):
        """A hash of all training reads of the catalog: a run and its resumption, or the tasks of a
        TensorFlow cluster, that agree on it train on the same data."""
        digest = hashlib.sha1("\x1f".join(self.names).encode("utf-8", "surrogatepass"))
        for column in (self.review_ids, self.scores, *self.contexts.values()):
            values = column.values
            digest.update(column.bounds.tobytes())
            digest.update("\x1f".join(map(str, values)).encode("utf-8", "surrogatepass")
                          if values.dtype == object else values.tobytes())
        return digest.hexdigest()

    @functools.cached_property
    def review_count(self):
        """The reviews, a joint release's once (each of its artists has it among its own)."""
        return len(np.unique(self.review_ids.values))


# Characters a name, genre or label may have: the Kaggle file's longest is 82. A run's metadata.tsv
# holds an artist's on one row, which is read back only up to metadata.MAX_ROW_CHARACTERS.
MAX_TEXT_CHARACTERS = 1_000


def field_text(text):
    """`text` as one field of metadata.tsv holds it: tabs and line breaks are spaces."""
    return " ".join(text.replace("\t", " ").splitlines())


def _group_ids(artist_ids, keys):
    """{key: artist ids}, keys sorted, from one row per membership (artist id, key columns)."""
    import pandas as pd

    columns = list(range(len(keys)))
    frame = pd.DataFrame(dict(enumerate(keys))).assign(artist=artist_ids).drop_duplicates()
    frame = frame.sort_values(columns + ["artist"], kind="stable")
    groups = frame.groupby(columns if len(columns) > 1 else columns[0], sort=True)["artist"]
    return {key: ids.to_numpy(dtype=np.int32) for key, ids in groups}
