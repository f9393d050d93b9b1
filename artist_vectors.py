"""Queries over trained artist vectors, in the spirit of gensim's KeyedVectors, and the quality report.

    vectors = ArtistVectors.load("logs/run-...")              # numpy only: no TensorFlow, no pandas
    vectors.most_similar("coil")                              # nearest artists, the query excluded
    vectors.most_similar(positive=["coil"], negative=["elder ones"])
    vectors.query("coil - elder ones")                        # the same, from an expression
    vectors.describe("burial", 0.81, shared_with=["kode9"])   # the source's line, and what they share
"""
import copy
import difflib
import functools
import os
import re
import warnings

import numpy as np

import logdir
from data_utils import ArtistTable


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
    """A matrix of artist vectors with the artists' facts (`artists`, an ArtistTable: names, genres, mean
    scores, record labels, eras...) and, for a trained run, their k-means clusters."""

    def __init__(self, vectors, artists, clusters=None):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.artists = artists
        self.clusters = None if clusters is None else np.asarray(clusters)
        self._memberships = {}  # "genres" or "labels" -> sparse artists x values matrix; vectors do not change it
        self.unit_vectors = _unit(self.vectors)

    @classmethod
    def load(cls, folder):
        """The vectors a run saved (vectors.npy, labelled by metadata.tsv), with numpy alone. A run from before
        vectors.npy, or whose copy is damaged, is read from its checkpoint with TensorFlow, with a warning."""
        fields, clusters = logdir.read_artists(folder)
        try:
            vectors = logdir.read_vectors(folder, len(fields["names"]))
        except logdir.RunError as error:
            vectors = _checkpoint_instead(folder, error, len(fields["names"]))
        return cls(vectors, ArtistTable(**fields), clusters)

    def save(self, folder):
        """metadata.tsv (the artists' facts and clusters) and vectors.npy in `folder`, each written whole."""
        logdir.write_metadata(folder, self.artists, self.clusters)
        logdir.write_vectors(folder, self.vectors)

    @classmethod
    def from_catalog(cls, catalog, vectors):
        """The vectors of a catalog's artists, in its order."""
        return cls(vectors, catalog.table)

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
        topn = max(0, min(topn, len(self) - len(set(exclude))))
        return [(self.names[i], float(similarity[i])) for i in top_k(similarity[None, :], topn)[0]]

    def query(self, expression, topn=10):
        """most_similar for an expression such as `coil - elder ones` or `"kleenex, liliput" + !!!`."""
        positive, negative = parse_expression(expression, self)
        return self.most_similar(positive, negative, topn=topn)

    def shared(self, name, others):
        """What artist `name` shares in the data with any of the artists `others`: {"labels": [...],
        "genres": [...], "era": "2005-2009" or None, "score_bucket": 7 or None}."""
        table, i, rows = self.artists, self.index(name), [self.index(other) for other in others]
        theirs = {column: {value for row in rows for value in values[row]}
                  for column, values in (("genres", table.genres), ("labels", table.labels)) if values is not None}
        eras = set() if table.eras is None else {table.eras[row] for row in rows} - {""}
        return {"labels": [label for label in table.labels[i] if label in theirs["labels"]]
                if table.labels is not None else [],
                "genres": [genre for genre in table.genres[i] if genre in theirs["genres"]],
                "era": table.eras[i] if table.eras is not None and table.eras[i] in eras else None,
                "score_bucket": int(table.score_buckets[i])
                if table.score_buckets[i] in {table.score_buckets[row] for row in rows} else None}

    def describe(self, name, similarity=None, shared_with=()):
        """The source's line for an artist, `Artist: black lips, Mean Score: 7.48, Genres: ['rock']`, with
        a similarity and what the artist shares with the artists `shared_with`, where given."""
        i = self.index(name)
        line = (f"Artist: {self.names[i]}, Mean Score: {self.artists.mean_scores[i]:.2f}, "
                f"Genres: {list(self.artists.genres[i])}")
        if similarity is not None:
            line += f", Similarity: {similarity:.3f}"
        if shared_with:
            line += f", Shares: {shares_text(self.shared(name, shared_with))}"
        return line

    def memberships(self, attribute):
        """The sparse (artists x values) indicator matrix of `genres` or `labels`; None if no artist has one."""
        from scipy import sparse

        if attribute not in self._memberships:
            values = getattr(self.artists, attribute)
            ids = {}
            rows = np.repeat(np.arange(len(values)), [len(v) for v in values])
            columns = [ids.setdefault(value, len(ids)) for artist_values in values for value in artist_values]
            self._memberships[attribute] = sparse.csr_matrix(
                (np.ones(len(columns), np.float32), (rows, columns)), shape=(len(values), len(ids))) if ids else None
        return self._memberships[attribute]

    def with_vectors(self, vectors, for_neighbours_only=False):
        """The same artists with other vectors (a training run's current ones, random ones), without clusters.
        With `for_neighbours_only`, `vectors` (a float32 array of the caller's to lose) is normalised in place
        and serves as both: a million artists' vectors are 256 MB."""
        other = copy.copy(self)
        other.vectors = np.asarray(vectors, dtype=np.float32)
        other.unit_vectors = _unit(other.vectors, out=other.vectors if for_neighbours_only else None)
        other.clusters = None
        return other

    def nearest_neighbours(self, k=10, rows=None):
        """For every artist (or those in `rows`), the rows of its `k` nearest artists (cosine, itself
        excluded), nearest first. Similarities are taken a block of rows at a time, about 2**25 values
        (128 MB) a block whatever the number of artists."""
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
    """`hyperdub (label), electronic, 2005-2009, score 7` from ArtistVectors.shared(), or `nothing`."""
    parts = ([f"{label} (label)" for label in shared["labels"]] + shared["genres"]
             + [shared["era"]] * bool(shared["era"])
             + [f"score {shared['score_bucket']}"] * (shared["score_bucket"] is not None))
    return ", ".join(parts) or "nothing"


# Rows of at least 4 x k blocks of this many values find their k largest through the blocks' maxima.
TOP_BLOCK = 1024


def top_k(similarity, k):
    """The columns of each row's `k` largest values, largest first: the one top-k of every neighbour search."""
    if k == 0:
        return np.empty((len(similarity), 0), dtype=np.int64)
    if similarity.shape[1] >= TOP_BLOCK * k * 4:
        # A row's k largest are at least its k-th largest block maximum: one pass for the maxima and one to
        # compare, then only those candidates (tens, not a million) are sorted.
        whole = similarity.shape[1] // TOP_BLOCK * TOP_BLOCK
        maxima = similarity[:, :whole].reshape(len(similarity), -1, TOP_BLOCK).max(axis=2)
        floor = np.partition(maxima, -k, axis=1)[:, -k]
        row, column = np.nonzero(similarity >= floor[:, None])
        if len(row) <= len(similarity) * k * TOP_BLOCK // 16:  # else ties everywhere: sort every value
            order = np.lexsort((column, -similarity[row, column], row))
            first = np.searchsorted(row[order], np.arange(len(similarity)))
            return column[order][first[:, None] + np.arange(k)]
    rows = np.arange(len(similarity))[:, None]
    best = np.argpartition(similarity, -k, axis=1)[:, -k:]  # the k largest, in no order
    return best[rows, np.argsort(-similarity[rows, best], axis=1, kind="stable")]


def _unit(vectors, out=None):
    return np.divide(vectors, np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12), out=out)


def _checkpoint_instead(folder, reason, rows):
    """The checkpoint's vectors, where vectors.npy cannot be read (a run from before it, or a damaged copy),
    with a warning; a RunError naming both where neither can be read."""
    if not os.path.isfile(os.path.join(logdir.checkpoint_dir(folder), "checkpoint")):
        raise logdir.RunError(f"{reason}, and no checkpoint to read instead; train with `python run.py` first")
    try:
        vectors = checkpoint_embeddings(folder)
    except logdir.RunError as error:
        raise logdir.RunError(f"{reason}; {error}") from None
    if len(vectors) != rows:
        raise logdir.RunError(f"{reason}; the checkpoint has {len(vectors):,} vectors but the metadata {rows:,} "
                              f"artists")
    warnings.warn(f"{reason}; read the vectors from the checkpoint with TensorFlow instead, which takes seconds "
                  f"(`python run.py export` writes vectors.npy)", stacklevel=3)
    return vectors


def checkpoint_embeddings(run_dir):
    """The embeddings variable of the run's latest checkpoint, as a numpy array."""
    from bands2vec_graph import EMBEDDINGS_VARIABLE, tf

    checkpoint = tf.train.latest_checkpoint(logdir.checkpoint_dir(run_dir))
    if checkpoint is None:
        raise logdir.RunError(f"{run_dir}: no checkpoint there; train with `python run.py` first")
    try:
        return tf.train.load_checkpoint(checkpoint).get_tensor(EMBEDDINGS_VARIABLE)
    except Exception as error:  # the reader's errors for a damaged file are of several kinds; all mean this
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

def neighbour_agreement(vectors, k=10, rows=None):
    """How often an artist's `k` nearest neighbours share a genre with it (over artists with a genre),
    have its rounded mean score, share a record label (over artists with one), and the mean absolute
    differences of mean score and release year to them; over every artist, or those in `rows`. None where
    the data has no labels or years. `k` is at most the other artists there are."""
    rows = np.arange(len(vectors)) if rows is None else np.asarray(rows)
    neighbours = vectors.nearest_neighbours(min(k, len(vectors) - 1), rows)
    table = vectors.artists
    buckets, means = table.score_buckets, table.mean_scores
    report = {
        "genre": _shared_share(vectors.memberships("genres"), rows, neighbours),
        "score": float((buckets[neighbours] == buckets[rows, None]).mean()),
        "score_difference": float(np.abs(means[neighbours] - means[rows, None]).mean()),
        "label": None if table.labels is None else _shared_share(vectors.memberships("labels"), rows, neighbours),
        "year_gap": None,
    }
    if table.years is not None:
        gaps = np.abs(table.years[neighbours] - table.years[rows, None])
        report["year_gap"] = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else None
    return report


def _shared_share(member, rows, neighbours):
    """The share of (artist, neighbour) pairs, for the artists in `rows`, that have a value (genre, label)
    in common by the indicator matrix `member`, over the artists with a value at all; None if none has one."""
    if member is None:
        return None
    artists = np.repeat(rows, neighbours.shape[1])
    shared = np.asarray(member[artists].multiply(member[neighbours.ravel()]).sum(axis=1)).reshape(neighbours.shape)
    has_value = np.diff(member.indptr)[rows] > 0
    return float((shared[has_value] > 0).mean()) if has_value.any() else None


def training_probe(vectors, watch=4, top=5, sample=200, seed=0, k=10):
    """What training reports at each report step, as a function of the table it fetched (normalised in place,
    so no second copy of a million artists' vectors is made): the `top` nearest artists of the `watch`
    most-reviewed artists, [(name, [names])], the ones whose neighbours a reader can judge; and, asked for
    `quality`, neighbour_agreement over a fixed seeded sample of `sample` artists, cheap enough to take
    while training. `vectors` holds the artists."""
    from threadpoolctl import ThreadpoolController

    watched = np.argsort(-vectors.artists.review_counts, kind="stable")[:watch]
    rows = sample_rows(len(vectors), sample, seed)
    blas = ThreadpoolController()

    def probe(matrix, quality):
        # One BLAS thread: idle BLAS threads spin for a while after a call, taking the cores from training.
        with blas.limit(limits=1, user_api="blas"):
            current = vectors.with_vectors(matrix, for_neighbours_only=True)
            nearest = current.nearest_neighbours(min(top, len(vectors) - 1), watched)
            neighbours = [(vectors.names[i], [vectors.names[j] for j in row]) for i, row in zip(watched, nearest)]
            return neighbours, neighbour_agreement(current, k, rows) if quality else None
    return probe


def sample_rows(n, size, seed=0):
    """A seeded sample of `size` of the rows 0..n-1, sorted; every row where there are no more than `size`."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def random_like(vectors, seed=0):
    """The same artists with random Gaussian vectors: the baseline any training must beat."""
    random = np.random.default_rng(seed).standard_normal(vectors.vectors.shape, dtype=np.float32)
    return vectors.with_vectors(random, for_neighbours_only=True)


# Above this many artists, k-means learns from mini-batches (scikit-learn's MiniBatchKMeans): memory and
# time stay linear, where full k-means would take minutes at a million.
MINI_BATCH_KMEANS_ABOVE = 50_000
# Quality figures are exact up to QUALITY_SAMPLE artists, and on a seeded sample of that many above. Each
# sampled artist is compared with every artist, so past QUALITY_COMPARISONS / QUALITY_SAMPLE artists the
# sample shrinks to keep that many comparisons (1,000 artists at a million: a 95% figure is then +-0.7%).
QUALITY_SAMPLE = 10_000
QUALITY_COMPARISONS = 10 ** 9


def quality_sample_size(n_artists):
    return max(1_000, min(QUALITY_SAMPLE, QUALITY_COMPARISONS // n_artists))


def kmeans_clusters(vectors, k=10, seed=0):
    """K-means cluster of every artist, on the unit vectors (so clusters follow cosine similarity)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    k = max(1, min(k, len(vectors)))
    if len(vectors) > MINI_BATCH_KMEANS_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init=4, random_state=seed)
    return model.fit_predict(vectors.unit_vectors)


def quality_report(vectors, k=10, seed=0):
    """The evaluate command's figures, each beside the same figure for random vectors: over every artist,
    or above QUALITY_SAMPLE artists over a seeded sample of quality_sample_size() of them."""
    from sklearn.metrics import normalized_mutual_info_score

    rows = sample_rows(len(vectors), quality_sample_size(len(vectors)), seed)
    trained = neighbour_agreement(vectors, k, rows)
    baseline = neighbour_agreement(random_like(vectors, seed), k, rows)
    report = {name: {"trained": trained[name], "random": baseline[name]} for name in trained}
    if vectors.clusters is not None:
        report["cluster_genre_nmi"] = {
            "trained": float(normalized_mutual_info_score(vectors.artists.primary_genres, vectors.clusters)),
            "random": float(normalized_mutual_info_score(
                vectors.artists.primary_genres, np.random.default_rng(seed).permutation(vectors.clusters))),
        }
    report["k"] = min(k, len(vectors) - 1)
    report["artists"] = len(vectors)
    report["measured_on"] = len(rows)
    return report


def cluster_summary(vectors, top=3, examples=4):
    """[(cluster, size, top genres, mean score, most-reviewed artists)], largest cluster first."""
    summary, table = [], vectors.artists
    for cluster in np.unique(vectors.clusters):
        members = np.flatnonzero(vectors.clusters == cluster)
        genres, counts = np.unique(table.primary_genres[members], return_counts=True)
        top_genres = [(str(g), int(c)) for c, g in sorted(zip(counts, genres), reverse=True)[:top]]
        order = members[np.argsort(-table.review_counts[members], kind="stable")]
        summary.append((int(cluster), len(members), top_genres, float(table.mean_scores[members].mean()),
                        [vectors.names[i] for i in order[:examples]]))
    return sorted(summary, key=lambda row: -row[1])

