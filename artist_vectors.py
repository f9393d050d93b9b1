"""Queries over trained artist vectors, in the manner of gensim's KeyedVectors, with numpy alone.

    artist_vectors = ArtistVectors.load("logs/run-...")              # no TensorFlow, no pandas
    artist_vectors.most_similar("coil")                              # nearest artists, except coil
    artist_vectors.most_similar(positive=["coil"], negative=["elder ones"])
    artist_vectors.query("coil - elder ones")                        # the same, from an expression
    artist_vectors.describe("burial", 0.81, shared_with=["kode9"])   # source line, what is shared
    artist_vectors.similarity("burial", "wolf_parade")               # and gensim's methods
    artist_vectors.twins("radiohead")                                # artists it cannot tell from
"""
import copy
import difflib
import functools
import os
import unicodedata

import numpy as np

import checks
import metadata
import run_record
import twins
import vector_files
from catalog import ArtistFacts
from contexts import CONTEXTS, DEFAULT_CONTEXTS, trained_kinds
from ensemble import EnsembleQueries
from errors import QueryError, RunError, UnknownArtist, shown
from expressions import parse_expression
from keyed_vectors import (KeyedVectorsQueries, checked_flag, checked_path, checked_topn, is_key,
                           key_list, ranked_rows)
from nearest import top_k
from norms import unit

NEIGHBOURS = 10  # how many artists a question and the quality figures take
# difflib finds texts close (0.6) only where their lengths are at most this many times apart.
CLOSE_LENGTHS = 3
# Names are compared for the closest by their first this many characters: difflib's time grows
# with the square of their lengths, and a name of 60,000 (a planted metadata.tsv) took minutes.
CLOSE_CHARACTERS = 100
# A cosine of float32 vectors can stray past 1 by rounding: describe() takes it so far.
SIMILARITY_SLACK = 1e-5


class ArtistVectors(KeyedVectorsQueries, EnsembleQueries):
    """A matrix of artist vectors (`vectors`) with the artists' facts (`artists`, an ArtistFacts:
    names, genres, mean scores, record labels, eras...), for a trained run its k-means clusters,
    the context kinds it was trained on (`contexts`; the tutorial's by default) and, for an ensemble
    of seeds, its members side by side (`members`). gensim's KeyedVectors methods come from
    KeyedVectorsQueries (keyed_vectors.py), an ensemble's certainty from EnsembleQueries
    (ensemble.py)."""

    def __init__(self, vectors, artists, kmeans_clusters=None, contexts=DEFAULT_CONTEXTS,
                 members=1):
        if not isinstance(artists, ArtistFacts):
            raise QueryError(f"artists must be the ArtistFacts of a catalog or a run "
                             f"(catalog.facts, metadata.read_artists), not {shown(artists)}")
        # An ensemble's members side by side in `vectors` (ensemble.py).
        self.members = checks.whole("members", members, 1)
        self.vectors = _matrix(vectors, len(artists), members=self.members)
        self.artists = artists
        self.kmeans_clusters = (None if kmeans_clusters is None else
                                _cluster_ids(kmeans_clusters, len(artists)))
        self.contexts = trained_kinds(contexts)
        self._indicators = {}  # kind -> sparse artists x values matrix; other vectors share it
        self._value_ids = {}  # kind -> its values' ids by artist, as value_ids() gives them
        self._twin_groups = {}  # context kinds -> twin_groups() under them
        self.unit_vectors = unit(self.vectors)

    @classmethod
    def load(cls, folder):
        """The vectors a run saved (vectors.npy, labelled by metadata.tsv), with numpy alone. A
        run from before vectors.npy, or whose copy is damaged, is read from its checkpoint with
        TensorFlow, with a warning."""
        folder = checked_path(folder, "ArtistVectors.load")
        artists, kmeans_clusters = metadata.read_artists(folder)
        vectors = vector_files.run_vectors(folder, len(artists))
        return cls(vectors, artists, None if (kmeans_clusters < 0).all() else kmeans_clusters,
                   *vector_files.vector_settings(folder, vectors.shape[1]))

    def save(self, folder):
        """vectors.npy, metadata.tsv and vectors.json (the contexts and members) in `folder`, made
        if need be, for load() to read back (the k-means clusters -1 where there are none)."""
        folder = checked_path(folder, "ArtistVectors.save")
        if os.path.lexists(os.path.join(folder, run_record.RUN_FILE)):
            raise RunError(f"ArtistVectors.save: {folder} is a run's folder; its vectors are "
                           f"the run's own (run.json describes them): save to another folder")
        clusters = self.kmeans_clusters
        try:
            os.makedirs(folder, exist_ok=True)
            metadata.write_metadata(folder, self.artists,
                                    np.full(len(self), -1) if clusters is None else clusters)
            vector_files.write_vectors(folder, self.vectors)
            vector_files.write_settings(folder, self.contexts, self.members)
        except OSError as error:
            raise RunError(f"{error.filename or folder}: {error.strerror or error}") from None

    @property
    def names(self):
        return self.artists.names

    def __len__(self):
        return len(self.names)

    def __contains__(self, key):
        return self._find(key) is not None

    def __getitem__(self, key_or_keys):
        """A key's vector, or the vectors of a list (or array) of keys, one a row."""
        if is_key(key_or_keys):
            return self.get_vector(key_or_keys)
        if key_or_keys is None or getattr(key_or_keys, "ndim", 1) == 0:  # None, or array(1)
            raise QueryError(f"the keys must be an artist's name or a list of names, "
                             f"not {shown(key_or_keys)}")
        keys = (list(key_or_keys) if isinstance(key_or_keys, np.ndarray) else
                key_list(key_or_keys, "the keys"))
        return self.vectors[[self.index(key) for key in keys]]

    # The name indexes are built on the first lookup: training and its reports never look a name up.
    @functools.cached_property
    def key_to_index(self):
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def _folded(self):
        return _first_rows([name.casefold() for name in self.names])

    @functools.cached_property
    def export_keys(self):
        """Each artist's key in vectors.txt and to_gensim(): `wolf_parade` for `wolf parade`."""
        return vector_files.word2vec_keys(self.names)

    @functools.cached_property
    def most_signs(self):
        """The most + and - characters a name or export key holds: a run of an expression's terms
        with more operators between them spells no name, in any spelling _find takes."""
        return max((key.count("+") + key.count("-") for key in [*self.names, *self.export_keys]),
                   default=0)

    @functools.cached_property
    def longest_name(self):
        """The length of the longest name or export key, case-folded (folding never shortens): no
        longer text names an artist, in any spelling _find takes."""
        return max((len(key.casefold()) for key in [*self.names, *self.export_keys]), default=0)

    @functools.cached_property
    def _export_index(self):
        return _first_rows(self.export_keys)

    @functools.cached_property
    def _folded_export(self):
        return _first_rows([key.casefold() for key in self.export_keys])

    @functools.cached_property
    def _spellings(self):
        return [spelling_key(name) for name in self.names]

    @functools.cached_property
    def _spelled(self):
        return _first_rows(self._spellings)

    @functools.cached_property
    def _spelled_starts(self):
        return _first_rows([key[:CLOSE_CHARACTERS] for key in self._spellings])

    def _find(self, key):
        """The row of a row number, else of the first spelling to know `key`: the name, the export
        key, the name ignoring case, the export key ignoring case, the name as the data spells it
        (spelling_key: `björk` is `bjrk`); None for none or another type."""
        if not isinstance(key, str):
            return int(key) if is_key(key) and 0 <= key < len(self) else None
        i = self.key_to_index.get(key)
        if i is None:
            i = self._export_index.get(key)
        if i is None:
            i = self._folded.get(key.casefold())
        if i is None:
            i = self._folded_export.get(key.casefold())
        if i is None:
            i = self._spelled.get(spelling_key(key))
        return i

    def index(self, name):
        """The row of `name` (exact, else ignoring case, as written or with `_` for spaces as in
        vectors.txt, else without the letters the data lost: `björk` finds `bjrk`) or of a row
        number; UnknownArtist with close names, by the data's spelling, if none."""
        if not is_key(name):
            raise QueryError(f"an artist is a name or a row number, not {shown(name)}")
        if isinstance(name, str) and len(name) > CLOSE_LENGTHS * self.longest_name:
            raise UnknownArtist(name, [])  # no name is close to it: not compared with each
        i = self._find(name)
        if i is None:
            if not isinstance(name, str):
                raise UnknownArtist(int(name), [])
            close = difflib.get_close_matches(spelling_key(name)[:CLOSE_CHARACTERS],
                                              list(self._spelled_starts), n=3, cutoff=0.6)
            raise UnknownArtist(name, [self.names[self._spelled_starts[c]] for c in close])
        return i

    def most_similar(self, positive=None, negative=None, topn=NEIGHBOURS, clip_start=0,
                     clip_end=None, restrict_vocab=None):
        """The `topn` artists nearest (cosine) to the positive unit vectors less the negative ones,
        the artists asked about excluded: [(name, similarity)], most similar first; with
        topn=None every artist's similarity, an array in row order. As gensim's, a term may be a
        name, a row number, a vector or a (name or vector, weight) pair, and only the rows from
        `clip_start` to `clip_end` (or the first `restrict_vocab`) are ranked."""
        topn, rows = checked_topn(topn), ranked_rows(clip_start, clip_end, restrict_vocab)
        asked, target = self.weighted_target(positive, negative)
        return self._ranked(self._similarities(target, "most_similar"), topn, asked, rows)

    def similar_by_vector(self, vector, topn=NEIGHBOURS, restrict_vocab=None, exclude=()):
        """The `topn` artists nearest (cosine) to `vector` among the first `restrict_vocab` (all
        by default), skipping those in `exclude` (names or rows); every similarity with
        topn=None."""
        similarities = self._similarities(vector, "similar_by_vector")
        return self._ranked(similarities, checked_topn(topn), self._rows(exclude, "exclude"),
                            ranked_rows(restrict_vocab=restrict_vocab))

    def _similarities(self, vector, method):
        """Every artist's cosine similarity to `vector`; a QueryError for the zero vector."""
        vector = self.checked_vector(vector, method)
        if not np.any(vector):
            raise QueryError(f"{method}: the zero vector has no nearest artists")
        return self.unit_vectors @ unit(vector).astype(np.float32)

    def _ranked(self, scores, topn, exclude, rows=slice(None)):
        """[(name, score)] of the `topn` best of `scores` (one an artist) in the range `rows`,
        skipping the rows in `exclude`, best first; with topn=None the range's scores themselves,
        as gensim gives them."""
        start, stop, _ = rows.indices(len(scores))
        scores = scores[start:max(start, stop)]
        if topn is None:
            return scores
        skipped = [row - start for row in set(exclude) if start <= row < start + len(scores)]
        scores[skipped] = -np.inf
        topn = min(topn, len(scores) - len(skipped))
        return [(self.names[start + i], float(scores[i]))
                for i in top_k(scores[None, :], topn)[0]]

    def query(self, expression, topn=NEIGHBOURS):
        """most_similar for an expression like `coil - elder ones` or `"kleenex, liliput" + !!!`."""
        if not isinstance(expression, str):
            raise QueryError(f"an expression is text such as 'coil - elder ones', "
                             f"not {shown(expression)}")
        positive, negative = parse_expression(expression, self)
        return self.most_similar(positive, negative, topn=topn)

    def shared(self, name, others):
        """What artist `name` shares in the data with any of the artists `others`, by context kind
        in the order an answer lists them: {"labels": [...], "genres": [...], "era": "2005-2009"
        or None, "score_bucket": 7 or None}."""
        i, rows = self.index(name), self._rows(others, "others")
        if not rows:
            raise QueryError("shared: others names no artist; give at least one")
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
        number = None if similarity is None else checks.real(similarity)
        if similarity is not None and (number is None or abs(number) > 1 + SIMILARITY_SLACK):
            raise QueryError(f"describe: similarity must be a finite number from -1 to 1 (a "
                             f"cosine), not {shown(similarity)}")
        shared_with, similarity = key_list(shared_with, "shared_with"), number
        line = (f"Artist: {self.names[i]}, Mean Score: {self.artists.mean_scores[i]:.2f}, "
                f"Genres: {list(self.artists.genres[i])}")
        if similarity is not None:
            line += f", Similarity: {similarity:.3f}"
        if shared_with:
            line += f", Shares: {shares_text(self.shared(name, shared_with))}"
        return line

    def value_ids(self, kind):
        """Each artist's values of a context kind (kind.common) as ids 0..n-1, with numpy alone:
        (bounds, ids), artist i's ids[bounds[i]:bounds[i + 1]]; None where no artist has one."""
        if not isinstance(kind, str) or kind not in CONTEXTS:
            raise QueryError(f"unknown context kind {shown(kind)}; the kinds are "
                             f"{', '.join(CONTEXTS)}")
        if kind not in self._value_ids:
            values = CONTEXTS[kind].common(self.artists)
            if values is not None and not CONTEXTS[kind].many:
                values = [() if value == "" else (value,) for value in values.tolist()]
            found = None
            if values is not None:
                ids = {}
                columns = np.array([ids.setdefault(value, len(ids))
                                    for artist_values in values for value in artist_values],
                                   dtype=np.int64)
                bounds = np.concatenate([[0], np.cumsum([len(v) for v in values], dtype=np.int64)])
                found = (bounds, columns) if ids else None
            self._value_ids[kind] = found
        return self._value_ids[kind]

    def indicator(self, kind):
        """The sparse (artists x values) indicator matrix of a context kind's values
        (kind.common); None where no artist has one."""
        from scipy import sparse

        found = self.value_ids(kind)  # the kind checked before it is looked up
        if kind not in self._indicators:
            matrix = None
            if found is not None:
                bounds, columns = found
                rows = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
                matrix = sparse.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)),
                                           shape=(len(bounds) - 1, columns.max() + 1))
            self._indicators[kind] = matrix
        return self._indicators[kind]

    def with_vectors(self, vectors, for_neighbours_only=False):
        """The same artists with other vectors, without k-means clusters. With `for_neighbours_only`
        (a training run's), the float32 `vectors`, the caller's to lose, are made unit in place."""
        for_neighbours_only = checked_flag(for_neighbours_only, "for_neighbours_only")
        other = copy.copy(self)
        # Training's reports pass its current tables: its loss tells a divergence first.
        other.vectors = _matrix(vectors, len(self), finite=not for_neighbours_only,
                                members=1 if for_neighbours_only else self.members)
        other.unit_vectors = unit(other.vectors,
                                   out=other.vectors if for_neighbours_only else None)
        other.kmeans_clusters = None
        return other

    def nearest_neighbours(self, k=NEIGHBOURS, rows=None):
        """For every artist (or those in `rows`), the rows of its `k` nearest artists (cosine,
        itself excluded), nearest first. Similarities are taken a block of rows at a time, about
        2**25 values (128 MB) a block whatever the number of artists."""
        if not (is_key(k) and not isinstance(k, str) and 0 <= k < len(self)):
            raise QueryError(f"k must be a whole number of neighbours from 0 to {len(self) - 1}, "
                             f"not {shown(k)}")
        rows = np.arange(len(self)) if rows is None else self._row_numbers(rows)
        neighbours = np.empty((len(rows), k), dtype=np.int64)
        chunk = max(1, min(2048, 2 ** 25 // len(self)))
        for start in range(0, len(rows), chunk):
            block = rows[start:start + chunk]
            similarity = self.unit_vectors[block] @ self.unit_vectors.T
            similarity[np.arange(len(block)), block] = -np.inf
            neighbours[start:start + chunk] = top_k(similarity, k)
        return neighbours

    def _row_numbers(self, rows):
        """`rows` as an array of row numbers, else a QueryError."""
        array = _whole_numbers(rows)
        if array is None or array.size and (array.min() < 0 or array.max() >= len(self)):
            raise QueryError(f"rows must be a list of artists' row numbers from 0 to "
                             f"{len(self) - 1}, not {shown(rows)}")
        return array

    # -----------------------------------------------------------------------------------------
    # Ties: twins, artists with exactly the same context memberships (twins.py)
    # -----------------------------------------------------------------------------------------

    def twin_groups(self, contexts=None):
        """(the twin group of each artist, each group's size) under the run's contexts, or those
        `contexts` gives (a --contexts spec or {kind: share})."""
        kinds = self.contexts if contexts is None else trained_kinds(contexts)
        if kinds not in self._twin_groups:
            self._twin_groups[kinds] = twins.twin_groups(self, kinds)
        return self._twin_groups[kinds]

    def twins(self, name, contexts=None):
        """How many other artists have exactly the context memberships of `name`, under the run's
        contexts or those `contexts` gives: the vectors cannot order them."""
        group, sizes = self.twin_groups(contexts)
        return int(sizes[group[self.index(name)]]) - 1

    def memberships(self, name):
        """{shares key: value(s)} of the run's contexts for `name`, as shared() gives them: what
        its twins share with it."""
        trained = {CONTEXTS[kind].shared_as for kind in self.contexts}
        return {key: value for key, value in self.shared(name, [name]).items() if key in trained}

    def tie_note(self, name):
        """The line an answer about `name` starts with when it has twins, else None:
        `radiohead: 697 artists have exactly its contexts (rock, score 8); the vectors cannot order
        them`, with how many a run with the label contexts would leave where this one lacks them."""
        count = self.twins(name)
        if not count:
            return None
        many = "artists have" if count > 1 else "artist has"
        note = (f"{self.names[self.index(name)]}: {count:,} {many} exactly its contexts "
                f"({shares_text(self.memberships(name))}); the vectors cannot order them")
        breaking = twins.TIE_BREAKING_CONTEXTS
        if not set(breaking) <= set(self.contexts) and self.value_ids("label") is not None:
            left = self.twins(name, ",".join(breaking))
            note += f" (--contexts {','.join(breaking)} would leave {left:,})"
        return note

    def tied_answers(self, names):
        """[(answers that are twins of each other, in the order given; their group's size)] of a
        list of answers, for groups of two answers or more."""
        group, sizes = self.twin_groups()
        names = key_list(names, "names")
        rows = np.array([self.index(name) for name in names], dtype=np.int64)
        ids, first, inverse, counts = np.unique(group[rows], return_index=True,
                                                return_inverse=True, return_counts=True)
        # The answers by group, each group's in the order given.
        members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
        return [([names[i] for i in members[j]], int(sizes[ids[j]]))
                for j in np.argsort(first) if counts[j] > 1]

    def tied_answers_notes(self, names):
        """A line for each group of answers that are twins of each other."""
        return [f"{len(tied)} of these answers have exactly the same contexts "
                f"({shares_text(self.memberships(tied[0]))}), as {size:,} artists do; the vectors "
                f"cannot order them: {', '.join(self.names[self.index(name)] for name in tied)}"
                for tied, size in self.tied_answers(names)]


def spelling_key(name):
    """A name as the data spells it, to find what a listener types: without the letters outside
    ASCII, which the Pitchfork data lost (`björk` is `bjrk`, `sigur rós` `sigur rs`), casefolded.
    A name of such letters alone keeps them. Composed first: typed as `o` and a combining mark, `ö`
    is one letter outside ASCII, as the data lost it."""
    name = unicodedata.normalize("NFC", name)
    kept = name.encode("ascii", "ignore").decode("ascii")
    return (kept if kept.strip() else name).casefold()


def shares_text(shared):
    """ArtistVectors.shared() as `hyperdub (label), electronic, 2005-2009, score 7` or `nothing`."""
    shown = {kind.shared_as: kind.shown for kind in CONTEXTS.values()}
    parts = [shown[key].format(value) for key, values in shared.items()
             for value in (values if isinstance(values, list) else [values] * (values is not None))]
    return ", ".join(parts) or "nothing"


def _plain(value):
    """A numpy scalar as the Python value JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


def _first_rows(keys):
    """{key: the first row that has it}."""
    return {key: i for i, key in reversed(list(enumerate(keys)))}


def _matrix(vectors, rows, finite=True, members=1):
    """`vectors` (real numbers) as float32, one a row of some columns for `rows` artists, the
    columns of `members` side by side, and with `finite` every value finite; else a QueryError."""
    try:
        array = np.asarray(vectors)
    except (TypeError, ValueError):  # a ragged list
        array = None
    matrix = None
    if array is not None and array.dtype.kind in "biuf":  # not text, dates or complex numbers
        with np.errstate(over="ignore"):  # values past float32's range are refused below
            matrix = array.astype(np.float32)
    if matrix is None or matrix.ndim != 2 or len(matrix) != rows or not matrix.shape[1]:
        raise QueryError(f"expected a matrix of vectors, one a row for the {rows:,} artists, "
                         f"not {shown(vectors)}")
    if matrix.shape[1] % members:
        raise QueryError(f"the vectors' {matrix.shape[1]:,} columns do not split into "
                         f"{members:,} members of equal dimensions")
    if finite and not np.isfinite(matrix).all():
        raise QueryError(f"the vectors hold {np.count_nonzero(~np.isfinite(matrix)):,} values that "
                         f"are NaN, infinite or past float32's range; each must be a number")
    return matrix


def _cluster_ids(clusters, rows):
    """The k-means clusters as whole numbers from 0, one for each of `rows` artists; else a
    QueryError."""
    array = _whole_numbers(clusters)
    if array is None or len(array) != rows or array.size and array.min() < 0:
        raise QueryError(f"kmeans_clusters must be a whole number from 0 for each of the "
                         f"{rows:,} artists, not {shown(clusters)}")
    return array


def _whole_numbers(values):
    """`values` as a list of whole numbers (int64), or None: a ragged list, a table, text..."""
    try:
        array = np.asarray(values)
    except ValueError:  # a ragged list
        return None
    if array.ndim != 1 or array.size and not np.issubdtype(array.dtype, np.integer):
        return None
    return array.astype(np.int64, copy=False)
