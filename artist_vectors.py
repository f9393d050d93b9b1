"""Queries over trained artist vectors, in the manner of gensim's KeyedVectors, with numpy alone.

    artist_vectors = ArtistVectors.load("logs/run-...")              # no TensorFlow, no pandas
    artist_vectors.most_similar("coil")                              # nearest artists, except coil
    artist_vectors.most_similar(positive=["coil"], negative=["elder ones"])
    artist_vectors.query("coil - elder ones")                        # the same, from an expression
    artist_vectors.describe("burial", 0.81, shared_with=["kode9"])   # source line, what is shared
"""
import copy
import difflib
import functools
import warnings

import numpy as np

import metadata
import run_folder
import vector_files
from contexts import CONTEXTS
from errors import QueryError, RunError, UnknownArtist
from expressions import parse_expression

NEIGHBOURS = 10  # how many artists a question and the quality figures take


class ArtistVectors:
    """A matrix of artist vectors (`vectors`) with the artists' facts (`artists`, an ArtistFacts:
    names, genres, mean scores, record labels, eras...) and, for a trained run, k-means clusters."""

    def __init__(self, vectors, artists, kmeans_clusters=None):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.artists = artists
        self.kmeans_clusters = None if kmeans_clusters is None else np.asarray(kmeans_clusters)
        self._indicators = {}  # kind -> sparse artists x values matrix; other vectors share it
        self.unit_vectors = _unit(self.vectors)

    @classmethod
    def load(cls, folder):
        """The vectors a run saved (vectors.npy, labelled by metadata.tsv), with numpy alone. A
        run from before vectors.npy, or whose copy is damaged, is read from its checkpoint with
        TensorFlow, with a warning."""
        artists, kmeans_clusters = metadata.read_artists(folder)
        try:
            vectors = vector_files.read_vectors(folder, len(artists))
        except RunError as error:
            vectors = _checkpoint_instead(folder, error, len(artists))
        return cls(vectors, artists, kmeans_clusters)

    @property
    def names(self):
        return self.artists.names

    def __len__(self):
        return len(self.names)

    def __contains__(self, name):
        return self._find(name) is not None

    def __getitem__(self, name):
        return self.vectors[self.index(name)]

    # The name indexes are built on the first lookup: training and its reports never look a name up.
    @functools.cached_property
    def key_to_index(self):
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def _folded(self):
        return {name.casefold(): i for i, name in reversed(list(enumerate(self.names)))}

    def _find(self, name):
        i = self.key_to_index.get(name)
        return self._folded.get(name.casefold()) if i is None else i

    def index(self, name):
        """The row of `name` (exact, else ignoring case); UnknownArtist with close names if none."""
        i = self._find(name)
        if i is None:
            close = difflib.get_close_matches(name.casefold(), list(self._folded), n=3, cutoff=0.6)
            raise UnknownArtist(name, [self.names[self._folded[c]] for c in close])
        return i

    def most_similar(self, positive=(), negative=(), topn=NEIGHBOURS):
        """The `topn` artists nearest (cosine) to the sum of the positive unit vectors minus the
        negative ones, the query artists excluded: [(name, similarity)], most similar first."""
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        ids = [self.index(name) for name in positive + negative]
        if not positive and not negative:
            raise QueryError("nothing to look for: name at least one artist")
        signs = np.array([1.0] * len(positive) + [-1.0] * len(negative))
        target = signs @ self.unit_vectors[ids]
        if np.linalg.norm(target) < 1e-6:
            raise QueryError("the expression cancels out to the zero vector, "
                             "which has no nearest artists")
        return self.similar_by_vector(target, topn=topn, exclude=ids)

    def similar_by_vector(self, vector, topn=NEIGHBOURS, exclude=()):
        """The `topn` artists nearest (cosine) to `vector`, skipping the rows in `exclude`."""
        similarity = self.unit_vectors @ (vector / np.linalg.norm(vector))
        similarity[list(exclude)] = -np.inf
        topn = max(0, min(topn, len(self) - len(set(exclude))))
        return [(self.names[i], float(similarity[i])) for i in top_k(similarity[None, :], topn)[0]]

    def query(self, expression, topn=NEIGHBOURS):
        """most_similar for an expression like `coil - elder ones` or `"kleenex, liliput" + !!!`."""
        positive, negative = parse_expression(expression, self)
        return self.most_similar(positive, negative, topn=topn)

    def shared(self, name, others):
        """What artist `name` shares in the data with any of the artists `others`, by context kind
        in the order an answer lists them: {"labels": [...], "genres": [...], "era": "2005-2009"
        or None, "score_bucket": 7 or None}."""
        i, rows = self.index(name), [self.index(other) for other in others]
        shared = {}
        for kind in sorted(CONTEXTS.values(), key=lambda kind: kind.answer_rank):
            values = kind.common(self.artists)
            if kind.many:
                theirs = (set() if values is None
                          else {value for row in rows for value in values[row]})
                shared[kind.shared_as] = [value
                                          for value in (values[i] if values is not None else ())
                                          if value in theirs]
            else:
                mine = None if values is None else values[i]
                found = mine is not None and mine != "" and mine in {values[row] for row in rows}
                shared[kind.shared_as] = _plain(mine) if found else None
        return shared

    def describe(self, name, similarity=None, shared_with=()):
        """The source's line for an artist, with a similarity and what it shares with the artists
        `shared_with` where given: `Artist: black lips, Mean Score: 7.48, Genres: ['rock']`."""
        i = self.index(name)
        line = (f"Artist: {self.names[i]}, Mean Score: {self.artists.mean_scores[i]:.2f}, "
                f"Genres: {list(self.artists.genres[i])}")
        if similarity is not None:
            line += f", Similarity: {similarity:.3f}"
        if shared_with:
            line += f", Shares: {shares_text(self.shared(name, shared_with))}"
        return line

    def indicator(self, kind):
        """The sparse (artists x values) indicator matrix of a context kind's values
        (kind.common); None where no artist has one."""
        from scipy import sparse

        if kind not in self._indicators:
            values = CONTEXTS[kind].common(self.artists)
            if values is not None and not CONTEXTS[kind].many:
                values = [() if value == "" else (value,) for value in values.tolist()]
            ids, matrix = {}, None
            if values is not None:
                rows = np.repeat(np.arange(len(values)), [len(v) for v in values])
                columns = [ids.setdefault(value, len(ids))
                           for artist_values in values for value in artist_values]
                matrix = sparse.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)),
                                           shape=(len(values), len(ids))) if ids else None
            self._indicators[kind] = matrix
        return self._indicators[kind]

    def with_vectors(self, vectors, for_neighbours_only=False):
        """The same artists with other vectors (a training run's current ones, random ones),
        without k-means clusters. With `for_neighbours_only`, `vectors` (float32, the caller's to
        lose) is normalised in place and serves as both: a million artists' vectors are 256 MB."""
        other = copy.copy(self)
        other.vectors = np.asarray(vectors, dtype=np.float32)
        other.unit_vectors = _unit(other.vectors,
                                   out=other.vectors if for_neighbours_only else None)
        other.kmeans_clusters = None
        return other

    def nearest_neighbours(self, k=NEIGHBOURS, rows=None):
        """For every artist (or those in `rows`), the rows of its `k` nearest artists (cosine,
        itself excluded), nearest first. Similarities are taken a block of rows at a time, about
        2**25 values (128 MB) a block whatever the number of artists."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        neighbours = np.empty((len(rows), k), dtype=np.int64)
        chunk = max(1, min(2048, 2 ** 25 // len(self)))
        for start in range(0, len(rows), chunk):
            block = rows[start:start + chunk]
            similarity = self.unit_vectors[block] @ self.unit_vectors.T
            similarity[np.arange(len(block)), block] = -np.inf
            neighbours[start:start + chunk] = top_k(similarity, k)
        return neighbours


def shares_text(shared):
    """ArtistVectors.shared() as `hyperdub (label), electronic, 2005-2009, score 7` or `nothing`."""
    shown = {kind.shared_as: kind.shown for kind in CONTEXTS.values()}
    parts = [shown[key].format(value) for key, values in shared.items()
             for value in (values if isinstance(values, list) else [values] * (values is not None))]
    return ", ".join(parts) or "nothing"


def _plain(value):
    """A numpy scalar as the Python value JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


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


def _unit(vectors, out=None):
    return np.divide(vectors, np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12),
                     out=out)


def _checkpoint_instead(folder, reason, rows):
    """The checkpoint's vectors, where vectors.npy cannot be read (a run from before it, or a
    damaged copy), with a warning; a RunError naming both where neither can be read."""
    if not run_folder.has_checkpoint(folder):
        raise RunError(f"{reason}, and no checkpoint to read instead; "
                       f"train with `python run.py` first")
    try:
        vectors = vector_files.checkpoint_vectors(folder)
    except RunError as error:
        raise RunError(f"{reason}; {error}") from None
    if len(vectors) != rows:
        raise RunError(f"{reason}; the checkpoint has {len(vectors):,} vectors but the metadata "
                       f"{rows:,} artists")
    warnings.warn(f"{reason}; read the vectors from the checkpoint with TensorFlow instead, "
                  f"which takes seconds (`python run.py export` writes vectors.npy)", stacklevel=3)
    return vectors
