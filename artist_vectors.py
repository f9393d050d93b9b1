"""Queries over trained artist vectors, in the spirit of gensim's KeyedVectors, and the quality report.

    vectors = ArtistVectors.from_run("logs/run-...")
    vectors.most_similar("coil")                              # nearest artists, the query excluded
    vectors.most_similar(positive=["coil"], negative=["elder ones"])
    vectors.query("coil - elder ones")                        # the same, from an expression
"""
import difflib
import re

import numpy as np

import logdir


class UnknownArtist(KeyError):
    """A name that is not in the vocabulary; it carries the closest names."""

    def __init__(self, name, suggestions):
        super().__init__(name)
        self.name, self.suggestions = name, suggestions

    def __str__(self):
        hint = f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if self.suggestions else ""
        return f"unknown artist {self.name!r}{hint}"


class QueryError(ValueError):
    """An expression that cannot be evaluated; its message is one line for the user."""


class ArtistVectors:
    """A matrix of artist vectors with the artists' names, genres and mean scores."""

    def __init__(self, names, vectors, genres, mean_scores, review_counts=None, clusters=None):
        self.names = list(names)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.genres = [tuple(g) for g in genres]
        self.mean_scores = np.asarray(mean_scores, dtype=np.float64)
        self.review_counts = np.ones(len(self.names), int) if review_counts is None else np.asarray(review_counts)
        self.clusters = None if clusters is None else np.asarray(clusters)
        self.key_to_index = {name: i for i, name in enumerate(self.names)}
        self._folded = {name.casefold(): i for i, name in reversed(list(enumerate(self.names)))}
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.unit_vectors = self.vectors / np.maximum(norms, 1e-12)

    @classmethod
    def from_run(cls, run_dir):
        """The vectors of a trained run: the checkpoint's embeddings, labelled by its metadata.tsv."""
        rows = logdir.read_metadata(run_dir)
        vectors = checkpoint_embeddings(run_dir)
        if len(vectors) != len(rows):
            raise logdir.RunError(f"{run_dir}: the checkpoint has {len(vectors)} vectors but the metadata "
                                  f"{len(rows)} artists")
        try:
            return cls(names=[row["artist"] for row in rows], vectors=vectors,
                       genres=[tuple(filter(None, row["genres"].strip().split(logdir.GENRE_SEPARATOR)))
                               for row in rows],
                       mean_scores=[float(row["mean_score"]) for row in rows],
                       review_counts=[int(row["reviews"]) for row in rows],
                       clusters=[int(row["cluster"]) for row in rows])
        except ValueError as error:
            raise logdir.RunError(f"{run_dir}: malformed metadata ({error})") from None

    def __len__(self):
        return len(self.names)

    def __contains__(self, name):
        return self._find(name) is not None

    def __getitem__(self, name):
        return self.vectors[self.index(name)]

    @property
    def score_buckets(self):
        return np.floor(self.mean_scores + 0.5).astype(int)

    def _find(self, name):
        i = self.key_to_index.get(name)
        return self._folded.get(name.casefold()) if i is None else i

    def index(self, name):
        """The row of `name` (exact, else ignoring case); an UnknownArtist with close names otherwise."""
        i = self._find(name)
        if i is None:
            close = difflib.get_close_matches(name.casefold(), list(self._folded), n=3, cutoff=0.6)
            raise UnknownArtist(name, [self.names[self._folded[c]] for c in close])
        return i

    def most_similar(self, positive=(), negative=(), topn=10):
        """The `topn` artists nearest (cosine) to the sum of the positive unit vectors minus the negative
        ones, the query artists excluded: [(name, similarity)], most similar first."""
        positive = [positive] if isinstance(positive, str) else list(positive)
        negative = [negative] if isinstance(negative, str) else list(negative)
        ids = [self.index(name) for name in positive + negative]
        if not positive and not negative:
            raise QueryError("nothing to look for: name at least one artist")
        signs = np.array([1.0] * len(positive) + [-1.0] * len(negative))
        target = signs @ self.unit_vectors[ids]
        if np.linalg.norm(target) < 1e-6:
            raise QueryError("the expression cancels out to the zero vector, which has no nearest artists")
        return self.similar_by_vector(target, topn=topn, exclude=ids)

    def similar_by_vector(self, vector, topn=10, exclude=()):
        """The `topn` artists nearest (cosine) to `vector`, skipping the rows in `exclude`."""
        similarity = self.unit_vectors @ (vector / np.linalg.norm(vector))
        similarity[list(exclude)] = -np.inf
        topn = min(topn, len(self) - len(set(exclude)))
        best = np.argpartition(-similarity, topn - 1)[:topn] if topn > 0 else np.empty(0, dtype=int)
        best = best[np.argsort(-similarity[best], kind="stable")]
        return [(self.names[i], float(similarity[i])) for i in best]

    def query(self, expression, topn=10):
        """most_similar for an expression such as `coil - elder ones` or `"kleenex, liliput" + !!!`."""
        positive, negative = parse_expression(expression, self)
        return self.most_similar(positive, negative, topn=topn)

    def describe(self, name):
        """The source's line for an artist: `Artist: black lips, Mean Score: 7.48, Genres: ['rock']`."""
        i = self.index(name)
        return f"Artist: {self.names[i]}, Mean Score: {self.mean_scores[i]:.2f}, Genres: {list(self.genres[i])}"

    def nearest_neighbours(self, k=10, chunk=2048):
        """For every artist, the rows of its `k` nearest artists (cosine, itself excluded), nearest first."""
        neighbours = np.empty((len(self), k), dtype=np.int64)
        for start in range(0, len(self), chunk):
            similarity = self.unit_vectors[start:start + chunk] @ self.unit_vectors.T
            rows = np.arange(similarity.shape[0])
            similarity[rows, rows + start] = -np.inf
            best = np.argpartition(-similarity, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(similarity, best, axis=1), axis=1, kind="stable")
            neighbours[start:start + chunk] = np.take_along_axis(best, order, axis=1)
        return neighbours


def checkpoint_embeddings(run_dir):
    """The embeddings variable of the run's latest checkpoint, as a numpy array."""
    from bands2vec_graph import EMBEDDINGS_VARIABLE, tf

    checkpoint = tf.train.latest_checkpoint(run_dir)
    if checkpoint is None:
        raise logdir.RunError(f"{run_dir}: no checkpoint there; train with `python run.py` first")
    try:
        return tf.train.load_checkpoint(checkpoint).get_tensor(EMBEDDINGS_VARIABLE)
    except (tf.errors.OpError, ValueError, KeyError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise logdir.RunError(f"{checkpoint}: unreadable checkpoint ({message})") from None


# ---------------------------------------------------------------------------------------------
# Expressions: `a + b - c`, names quoted where they need it
# ---------------------------------------------------------------------------------------------

_OPERATOR = re.compile(r"\s+([+-])\s+")
_QUOTED_OPERATOR = re.compile(r"\s*([+-])\s*")


def parse_expression(expression, vectors):
    """(positive names, negative names) of an expression over artists.

    Terms are joined by ` + ` and ` - ` with spaces around them. A term in quotes ("..." or '...', a
    doubled quote inside standing for one) is taken as it is; unquoted, the longest run of terms that
    is one known name wins, so `scott walker + sunn o)))` is one artist where the vocabulary has it.
    """
    terms = _terms(expression)
    positive, negative = [], []
    i = 0
    while i < len(terms):
        sign, text, quoted, start, _ = terms[i]
        j = i
        if not quoted:
            # The longest run of bare terms i..j that spells a known name, else the term alone.
            for last in range(len(terms) - 1, i, -1):
                if all(not t[2] for t in terms[i:last + 1]) and expression[start:terms[last][4]] in vectors:
                    j, text = last, expression[start:terms[last][4]]
                    break
        (positive if sign == "+" else negative).append(text)
        i = j + 1
    return positive, negative


def _terms(expression):
    """[(sign, text, quoted, start, end)] of the expression's terms."""
    terms, sign = [], "+"
    position, end = len(expression) - len(expression.lstrip()), len(expression.rstrip())
    while True:
        if position >= end:
            raise QueryError(f"expected an artist name after {sign!r} in {expression!r}")
        if expression[position] in "\"'":
            text, stop = _quoted(expression, position)
            terms.append((sign, text, True, position, stop))
            if stop == end:
                return terms
            operator = _QUOTED_OPERATOR.match(expression, stop, end)
            if not operator:
                raise QueryError(f"expected + or - after {expression[position:stop]} in {expression!r}")
        else:
            operator = _OPERATOR.search(expression, position, end)
            stop = operator.start() if operator else end
            terms.append((sign, expression[position:stop], False, position, stop))
            if not operator:
                return terms
        sign, position = operator.group(1), operator.end()


def _quoted(expression, start):
    """The text of the quoted term at `start` (a doubled quote is one quote) and where it ends."""
    quote, position, parts = expression[start], start + 1, []
    while True:
        close = expression.find(quote, position)
        if close < 0:
            raise QueryError(f"unclosed {quote} in {expression!r}")
        parts.append(expression[position:close])
        if not expression.startswith(quote * 2, close):
            return "".join(parts), close + 1
        parts.append(quote)
        position = close + 2


# ---------------------------------------------------------------------------------------------
# Quality: do the nearest neighbours share a genre, a score?
# ---------------------------------------------------------------------------------------------

def neighbour_agreement(vectors, k=10):
    """How often an artist's `k` nearest neighbours share a genre with it (over artists with a genre),
    have its rounded mean score, and their mean absolute score difference to it."""
    neighbours = vectors.nearest_neighbours(k)
    genre_names = sorted({g for genres in vectors.genres for g in genres})
    has_genre = np.array([[g in genres for g in genre_names] for genres in vectors.genres], dtype=bool)
    shares = (has_genre[neighbours] & has_genre[:, None, :]).any(axis=2)
    with_genre = has_genre.any(axis=1)
    buckets = vectors.score_buckets
    return {
        "genre": float(shares[with_genre].mean()) if with_genre.any() else float("nan"),
        "score": float((buckets[neighbours] == buckets[:, None]).mean()),
        "score_difference": float(np.abs(vectors.mean_scores[neighbours] - vectors.mean_scores[:, None]).mean()),
    }


def random_like(vectors, seed=0):
    """The same artists with random Gaussian vectors: the baseline any training must beat."""
    rng = np.random.default_rng(seed)
    return ArtistVectors(vectors.names, rng.normal(size=vectors.vectors.shape), vectors.genres,
                         vectors.mean_scores, vectors.review_counts)


def kmeans_clusters(vectors, k=10, seed=0):
    """K-means cluster of every artist, on the unit vectors (so clusters follow cosine similarity)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(vectors)))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors.unit_vectors)


def primary_genres(vectors):
    return [genres[0] if genres else "none" for genres in vectors.genres]


def quality_report(vectors, k=10, seed=0):
    """The evaluate command's figures, each beside the same figure for random vectors."""
    from sklearn.metrics import normalized_mutual_info_score

    trained = neighbour_agreement(vectors, k)
    baseline = neighbour_agreement(random_like(vectors, seed), k)
    report = {name: {"trained": trained[name], "random": baseline[name]} for name in trained}
    if vectors.clusters is not None:
        report["cluster_genre_nmi"] = {
            "trained": float(normalized_mutual_info_score(primary_genres(vectors), vectors.clusters)),
            "random": float(normalized_mutual_info_score(
                primary_genres(vectors), np.random.default_rng(seed).permutation(vectors.clusters))),
        }
    report["k"] = k
    report["artists"] = len(vectors)
    return report


def cluster_summary(vectors, top=3, examples=4):
    """[(cluster, size, top genres, mean score, most-reviewed artists)], largest cluster first."""
    summary = []
    primaries = np.array(primary_genres(vectors))
    for cluster in np.unique(vectors.clusters):
        members = np.flatnonzero(vectors.clusters == cluster)
        genres, counts = np.unique(primaries[members], return_counts=True)
        top_genres = [(str(g), int(c)) for c, g in sorted(zip(counts, genres), reverse=True)[:top]]
        order = members[np.argsort(-vectors.review_counts[members], kind="stable")]
        summary.append((int(cluster), len(members), top_genres, float(vectors.mean_scores[members].mean()),
                        [vectors.names[i] for i in order[:examples]]))
    return sorted(summary, key=lambda row: -row[1])

