"""gensim's KeyedVectors query methods for ArtistVectors, with gensim's argument names, defaults
and results, in numpy alone: similarity, distance(s), rank, closer_than, doesnt_match,
most_similar_cosmul, get_vector... and to_gensim(), a real gensim KeyedVectors where gensim is
installed. Also the checks that turn a wrong argument into a QueryError saying what was expected.

A key is what gensim takes: an artist's name (`wolf parade`), its key in vectors.txt
(`wolf_parade`) or its row number; where gensim takes vectors, a vector of vector_size numbers.
"""
import math
import numbers
import os

import numpy as np

import checks
import vector_files
from errors import Bands2VecError, OptionError, QueryError, RunError, shown
from norms import unit

# gensim's most_similar_cosmul adds this to its denominator, so that a zero product divides nothing.
COSMUL_EPSILON = 1e-6


class KeyedVectorsQueries:
    """gensim's query methods, for a class with `vectors`, `unit_vectors`, `names`, `export_keys`,
    `index(key)` (a key's row, or an error) and `_ranked(similarity, topn, exclude)`."""

    @property
    def vector_size(self):
        return self.vectors.shape[1]

    @property
    def index_to_key(self):
        return self.names

    def get_index(self, key, default=None):
        """The row of `key`; `default` where it is unknown and a default is given."""
        return default if default is not None and key not in self else self.index(key)

    def get_vector(self, key, norm=False):
        """The vector of `key`, of unit length with `norm`; read-only, as gensim's."""
        vectors = self.unit_vectors if checked_flag(norm, "norm") else self.vectors
        vector = vectors[self.index(key)]
        vector.setflags(write=False)
        return vector

    def similar_by_key(self, key, topn=10, restrict_vocab=None):
        """most_similar(key): the artists nearest `key`, `key` excluded."""
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    similar_by_word = similar_by_key  # gensim 3's name, which gensim 4 keeps

    def similarity(self, w1, w2):
        """The cosine similarity of two keys' vectors (rounding can take float32's past 1)."""
        cosine = self._direction(w1, "similarity") @ self._direction(w2, "similarity")
        return float(np.clip(cosine, -1, 1))

    def distance(self, w1, w2):
        """The cosine distance of two keys' vectors: 1 - similarity."""
        return 1 - self.similarity(w1, w2)

    def n_similarity(self, ws1, ws2):
        """The cosine similarity of the mean vectors of two lists of keys."""
        means = []
        for keys, what in ((ws1, "ws1"), (ws2, "ws2")):
            rows = self._rows(keys, what)
            if not rows:
                raise QueryError(f"n_similarity: {what} names no artist; give at least one")
            mean = self.vectors[rows].mean(axis=0, dtype=np.float64)
            if not mean.any():
                raise QueryError(f"n_similarity: the mean of {what} is the zero vector, which has "
                                 f"no direction to compare")
            means.append(unit(mean))
        return float(np.clip(means[0] @ means[1], -1, 1))

    def distances(self, word_or_vector, other_words=()):
        """Cosine distances from a key or a vector to the keys `other_words`, or to every artist
        (itself included) where there are none: an array."""
        if is_key(word_or_vector):
            direction = self._direction(word_or_vector, "distances")
        else:
            vector = self.checked_vector(word_or_vector, "distances")
            if not vector.any():
                raise QueryError("distances: the zero vector has no direction to compare")
            direction = unit(vector).astype(np.float32)
        rows = self._rows(other_words, "other_words")
        others = self.unit_vectors[rows] if rows else self.unit_vectors
        return 1 - others @ direction

    def closer_than(self, key1, key2):
        """The artists closer (cosine) to `key1` than `key2` is, in row order, `key1` left out."""
        return self._closer(key1, key2, "closer_than")

    def rank(self, key1, key2):
        """Where `key2` comes among the artists nearest `key1`: 1 for the nearest."""
        return len(self._closer(key1, key2, "rank")) + 1

    def _closer(self, key1, key2, method):
        # An artist whose vector is all zeros has no place among another's nearest, nor they
        # among its.
        direction = self._direction(key1, method)
        distances = 1 - self.unit_vectors @ direction
        first, second = self.index(key1), self.index(key2)
        self._direction(key2, method)
        return [self.names[row] for row in np.flatnonzero(distances < distances[second])
                if row != first]

    def doesnt_match(self, words):
        """The artist of `words` farthest from their mean (of unit vectors), as gensim picks it."""
        rows = self._rows(words, "words")
        if not rows:
            raise QueryError("doesnt_match: no artists given; give at least one")
        units = np.array([self._direction(row, "doesnt_match") for row in rows])
        centrality = units @ unit(units.mean(axis=0))
        # gensim sorts (similarity, key) pairs and takes the last: the least similar, then the
        # smallest key.
        least = min(range(len(rows)), key=lambda i: (centrality[i], self.names[rows[i]]))
        return self.names[rows[least]]

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The artists nearest by Levy and Goldberg's multiplicative objective (3CosMul): the
        product of the shifted cosines (1 + cos) / 2 to the positive terms over that to the
        negative ones. The keys asked about are excluded; a vector is taken as it is given, as
        gensim does. [(name, score)], best first; every artist's score with topn=None. Only the
        first `restrict_vocab` rows are ranked, where given (gensim ignores it here)."""
        topn, rows = checked_topn(topn), ranked_rows(restrict_vocab=restrict_vocab)
        positive, negative = key_list(positive, "positive"), key_list(negative, "negative")
        if not positive:
            raise QueryError("most_similar_cosmul: no positive artist given; give at least one")
        asked = [self.index(term) for term in positive + negative if is_key(term)]
        if all(map(is_key, positive + negative)) and (
                sorted(map(self.index, positive)) == sorted(map(self.index, negative))):
            raise QueryError("most_similar_cosmul: the question cancels out (the same artists "
                             "positive and negative), so every artist would score the same")

        def shifted(terms):
            return [(1 + self.unit_vectors @ self._cosmul_term(term)) / 2 for term in terms]

        with np.errstate(over="ignore", invalid="ignore"):  # a product past float64's is refused
            scores = (np.prod(shifted(positive), axis=0)
                      / (np.prod(shifted(negative), axis=0) + COSMUL_EPSILON))
        if not np.isfinite(scores).all():
            raise QueryError("most_similar_cosmul: the shifted cosines multiply past float64's "
                             "range; give vectors of smaller norms")
        return self._ranked(scores, topn, asked, rows)

    def _cosmul_term(self, term):
        if is_key(term):
            return self._direction(term, "most_similar_cosmul")
        vector = self.checked_vector(term, "most_similar_cosmul")
        if not vector.any():  # every artist's score would be the same
            raise QueryError("most_similar_cosmul: the zero vector has no nearest artists")
        return vector  # in float64: a product of big shifted cosines would pass float32's range

    def _direction(self, key, method):
        """The unit vector of `key`; a QueryError where its vector is all zeros, to which every
        artist would be as near (as most_similar refuses it)."""
        row = self.index(key)
        if not self.vectors[row].any():
            raise QueryError(f"{method}: the vector of {shown(self.names[row])} is all zeros, "
                             f"which has no direction to compare")
        return self.unit_vectors[row]

    def weighted_target(self, positive, negative):
        """The rows of the keys asked about and the unit vector most_similar looks near: as
        gensim's, the sum of each key's unit vector or each vector as given, times 1 (positive),
        -1 (negative) or the weight of a (key or vector, weight) pair."""
        terms = weighted_terms(positive, negative)
        if not terms:
            raise QueryError("nothing to look for: name at least one artist")
        rows, vectors = [], []
        for term, _ in terms:
            if is_key(term):
                rows.append(self.index(term))
                vectors.append(self.unit_vectors[rows[-1]].astype(np.float64))
            else:
                vectors.append(self.checked_vector(term, "most_similar"))
        weights, vectors = np.array([weight for _, weight in terms]), np.array(vectors)
        with np.errstate(over="ignore", invalid="ignore"):  # a sum past float64's is refused below
            target = weights @ vectors
            scale = np.abs(weights) @ np.abs(vectors).max(axis=1)
        if not np.isfinite(target).all():
            raise QueryError("most_similar: the weighted terms add up past float64's range; "
                             "give smaller weights")
        # Cancelled where what is left is a rounding error's size next to what was added.
        if not np.abs(target).max() > 1e-6 * scale:
            zero = ("cancels out to the zero vector" if scale else
                    "is the zero vector (what it names is all zeros)")
            raise QueryError(f"the question {zero}, which has no nearest artists")
        return rows, unit(target)  # its direction, whatever the weights' scale

    def checked_vector(self, vector, method):
        """`vector` as an array of vector_size finite numbers, else a QueryError."""
        try:
            array = np.asarray(vector)
            # Complex numbers or text are no vector's, though numpy would make numbers of them.
            array = None if array.dtype.kind in "cUS" else array.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            array = None
        if array is None or array.shape != (self.vector_size,):
            raise QueryError(f"{method}: expected an artist's name or row number, or a vector of "
                             f"{self.vector_size} numbers, not {shown(vector)}")
        if not (np.abs(array) <= np.finfo(np.float32).max).all():  # NaN fails it too
            raise QueryError(f"{method}: the vector holds NaN or infinite numbers, or numbers past "
                             f"float32's range")
        return array

    def _rows(self, keys, what):
        return [self.index(key) for key in key_list(keys, what)]

    def save_word2vec_format(self, fname, *, binary=False, write_header=True):
        """The vectors in word2vec's format at `fname` (its folder made if need be): text, or
        binary with `binary`; the keys are export_keys (`wolf_parade`), as in vectors.txt."""
        path = checked_path(fname, "save_word2vec_format")
        if path.endswith(os.sep) or os.path.isdir(path):
            raise RunError(f"{path}: a folder, where save_word2vec_format writes a file: name it")
        binary, write_header = checked_flag(binary, "binary"), checked_flag(write_header,
                                                                            "write_header")
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            vector_files.write_word2vec_file(path, self.export_keys, self.vectors, binary,
                                             write_header)
        except OSError as error:
            raise RunError(f"{error.filename or path}: {error.strerror or error}") from None

    def to_gensim(self):
        """A gensim.models.KeyedVectors of the same vectors under the export keys (`wolf_parade`,
        as in vectors.txt, so that it saves in word2vec's format); gensim must be installed."""
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise Bands2VecError("to_gensim() needs gensim, which is not installed: "
                                 "pip install gensim") from None
        model = KeyedVectors(self.vector_size, dtype=np.float32)
        model.add_vectors(self.export_keys, self.vectors)
        return model


def is_key(value):
    """Whether `value` is an artist's key: a name or a row number (not True or False)."""
    return isinstance(value, str) or (isinstance(value, numbers.Integral)
                                      and not isinstance(value, (bool, np.bool_)))


def key_list(value, what):
    """gensim's lists of keys: one key or vector alone, a list of them, or None for none."""
    if value is None:
        return []
    if is_key(value) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    if not isinstance(value, (bytes, bytearray, dict, numbers.Number)):
        try:
            return list(value)
        except TypeError:
            pass
    raise QueryError(f"{what} must be an artist's name or a list of names, not {shown(value)}")


def weighted_terms(positive, negative):
    """[(key or vector, weight)] of most_similar's positive= and negative=: weight 1 and -1, or
    the weight of a (key or vector, weight) pair as given (gensim does not negate it)."""
    terms = []
    for items, sign, what in ((positive, 1.0, "positive"), (negative, -1.0, "negative")):
        for item in key_list(items, what):
            if is_key(item) or isinstance(item, np.ndarray):
                terms.append((item, sign))
            elif (isinstance(item, (tuple, list)) and len(item) == 2
                  and (weight := _weight(item[1])) is not None):
                terms.append((item[0], weight))
            else:
                raise QueryError(f"{what}: expected artist names, vectors or (name, weight) "
                                 f"pairs, not {shown(item)}")
    return terms


def _weight(value):
    """`value` as a finite float weight, else None (a number past float64's range, too)."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        return None
    try:
        weight = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return weight if math.isfinite(weight) else None


def checked_topn(topn):
    """`topn` if it is a whole number from 0, or None (gensim's "every similarity")."""
    if topn is None or (isinstance(topn, numbers.Integral)
                        and not isinstance(topn, (bool, np.bool_)) and topn >= 0):
        return None if topn is None else int(topn)  # numpy's small ints would overflow in sums
    raise QueryError(f"topn must be a whole number of artists (0 or more), or None for every "
                     f"artist's similarity; not {shown(topn)}")


def ranked_rows(clip_start=0, clip_end=None, restrict_vocab=None):
    """gensim's rows a query ranks, as a slice: the first `restrict_vocab` where given, else from
    `clip_start` to `clip_end` (0 or None: the last); each a whole number of rows, else a
    QueryError."""
    for value, what in ((clip_start, "clip_start"), (clip_end, "clip_end"),
                        (restrict_vocab, "restrict_vocab")):
        if value is not None and not (isinstance(value, numbers.Integral) and value >= 0
                                      and not isinstance(value, (bool, np.bool_))):
            raise QueryError(f"{what} must be a whole number of rows (0 or more), or None; "
                             f"not {shown(value)}")
    if restrict_vocab:
        return slice(0, restrict_vocab)
    return slice(clip_start or 0, clip_end or None)


def checked_flag(value, what):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise QueryError(f"{what} must be True or False, not {shown(value)}")


def checked_path(value, what):
    """`value` as a path (checks.path's rule, and not empty), else a RunError: in checks.path's
    words where it is text (with a NUL, or not UTF-8)."""
    try:
        text = checks.path(what, value)
    except OptionError as error:
        if isinstance(value, str):
            raise RunError(str(error)) from None
        text = ""
    if not text:
        raise RunError(f"{what}: expected a path, not {shown(value)}")
    return text
