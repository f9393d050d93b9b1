"""How good trained vectors are: do an artist's nearest neighbours share its contexts (a genre, a
score bucket, a label...), beside random vectors; training's running reports; k-means over them.
"""
import dataclasses
import itertools

import numpy as np

import checks
from artist_vectors import NEIGHBOURS
from contexts import NO_GENRE, quality_tags
from ensemble import member_vectors
from errors import QueryError
from nearest import top_k

# Above this many artists, k-means learns from mini-batches (scikit-learn's MiniBatchKMeans): memory
# and time stay linear, where full k-means would take minutes at a million.
MINI_BATCH_KMEANS_ABOVE = 50_000
# k-means's OpenMP threads wait on each other on a shared 2-core machine: one is 5-20x faster on the
# full data, with the same clusters.
KMEANS_OPENMP_THREADS = 1
# Quality figures are exact up to QUALITY_SAMPLE artists, and on a seeded sample above, which
# shrinks to keep QUALITY_COMPARISONS (1,000 artists at a million: a 95% figure is then +-0.7%).
QUALITY_SAMPLE = 10_000
QUALITY_COMPARISONS = 10 ** 9
# Artists whose neighbours two runs, or two members, are compared on: a mean Jaccard to +-0.01.
STABILITY_SAMPLE = 400
# The map's quality is measured on this many of its points: +-1% on a figure near 90%.
MAP_QUALITY_SAMPLE = 2_000


def neighbour_agreement(artist_vectors, k=NEIGHBOURS, rows=None):
    """Over every artist, or those in `rows`: for each context kind with a quality tag, how often an
    artist's `k` nearest neighbours share a value of it (over the artists that have one; None where
    none has); and the mean absolute differences of mean score and release year to them (None
    without years). `k` is at most the other artists there are."""
    k = min(checks.whole("k", k, 1), len(artist_vectors) - 1)
    if k < 1:
        raise QueryError("measuring neighbours takes at least 2 artists, "
                         f"not {len(artist_vectors)}")
    rows = np.arange(len(artist_vectors)) if rows is None else np.asarray(rows)
    neighbours = artist_vectors.nearest_neighbours(k, rows)
    facts = artist_vectors.artists
    report = {kind: _shared_share(artist_vectors.indicator(kind), rows, neighbours)
              for kind in quality_tags()}
    means = facts.mean_scores
    report["score_difference"] = float(np.abs(means[neighbours] - means[rows, None]).mean())
    report["year_gap"] = None
    if facts.years is not None:
        gaps = np.abs(facts.years[neighbours] - facts.years[rows, None])
        report["year_gap"] = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else None
    return report


def _shared_share(indicator, rows, neighbours):
    """The share of (artist, neighbour) pairs, for the artists in `rows`, that have a value in
    common by the `indicator` matrix, over the artists with a value at all; None if none has one."""
    if indicator is None:
        return None
    artists = np.repeat(rows, neighbours.shape[1])
    shared = np.asarray(indicator[artists].multiply(indicator[neighbours.ravel()]).sum(axis=1))
    shared = shared.reshape(neighbours.shape)
    has_value = np.diff(indicator.indptr)[rows] > 0
    return float((shared[has_value] > 0).mean()) if has_value.any() else None


def training_probe(artist_vectors, watch=4, top=5, sample=200, seed=0, k=NEIGHBOURS):
    """What training reports at each report step, as a function of the table it fetched (normalised
    in place, so no second copy of a million artists' vectors is made): the `top` nearest artists of
    the `watch` most-reviewed artists, [(name, [names])], whose neighbours a reader can judge; and,
    asked for `quality`, neighbour_agreement over a fixed seeded sample of `sample` artists, cheap
    enough to take while training. `artist_vectors` holds the artists."""
    from threadpoolctl import ThreadpoolController

    watched = np.argsort(-artist_vectors.artists.review_counts, kind="stable")[:watch]
    rows = sample_rows(len(artist_vectors), sample, seed)
    blas = ThreadpoolController()
    names = artist_vectors.names

    def probe(matrix, quality):
        # One BLAS thread: idle ones spin a while after a call, taking the cores from training.
        with blas.limit(limits=1, user_api="blas"):
            current = artist_vectors.with_vectors(matrix, for_neighbours_only=True)
            nearest = current.nearest_neighbours(min(top, len(artist_vectors) - 1), watched)
            neighbours = [(names[i], [names[j] for j in row]) for i, row in zip(watched, nearest)]
            if not quality:
                return neighbours, None
            figures = neighbour_agreement(current, k, rows)
            figures["member_agreement"] = member_agreement(current, k, rows)
            return neighbours, figures
    return probe


def sample_rows(n, size, seed=0):
    """A seeded sample of `size` of the rows 0..n-1, sorted; every row where there are no more."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def random_like(artist_vectors, seed=0):
    """The same artists with random Gaussian vectors: the baseline any training must beat."""
    random = np.random.default_rng(seed).standard_normal(artist_vectors.vectors.shape,
                                                         dtype=np.float32)
    return artist_vectors.with_vectors(random, for_neighbours_only=True)


def quality_sample_size(n_artists):
    return max(1_000, min(QUALITY_SAMPLE, QUALITY_COMPARISONS // n_artists))


def kmeans_clusters(artist_vectors, k, seed=0, side=None):
    """Each artist's k-means cluster, on the unit vectors (so clusters follow cosine similarity);
    computed by `side` (side_process) where given."""
    k = min(checks.whole("k", k, 1), len(artist_vectors))
    seed = checks.whole("seed", seed, 0)
    if side is None:
        return kmeans_labels(artist_vectors.unit_vectors, k, seed)
    side.submit(kmeans_labels, artist_vectors.unit_vectors, k, seed)
    return side.answer(say=None)


def kmeans_labels(unit_vectors, k, seed):
    """scikit-learn's k-means of the rows into `k` clusters, by mini-batches on a big catalog."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if len(unit_vectors) > MINI_BATCH_KMEANS_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init=4, random_state=seed)
    with threadpool_limits(KMEANS_OPENMP_THREADS, user_api="openmp"):
        return model.fit_predict(unit_vectors)


def normalized_mutual_information(labels, others):
    """scikit-learn's normalized_mutual_info_score (the entropies' arithmetic mean), in numpy:
    questions, and the run's writing beside its side process, need no scikit-learn."""
    _, labels = np.unique(labels, return_inverse=True)
    _, others = np.unique(others, return_inverse=True)
    if labels.max(initial=-1) == others.max(initial=-1) <= 0:
        return 1.0  # neither splits the artists: the same partition
    joint = np.bincount(labels * (others.max() + 1) + others).astype(np.float64)
    joint = joint[joint > 0] / len(labels)
    first = np.bincount(labels) / len(labels)
    second = np.bincount(others) / len(others)
    entropy_first, entropy_second = -np.sum(first * np.log(first)), -np.sum(second * np.log(second))
    information = max(0.0, float(np.sum(joint * np.log(joint))) + entropy_first + entropy_second)
    if information == 0:
        return 0.0
    return information / ((entropy_first + entropy_second) / 2)


def quality_report(artist_vectors, k=NEIGHBOURS, seed=0):
    """The evaluate command's figures, each beside the same figure for random vectors: over every
    artist, or above QUALITY_SAMPLE artists, a seeded sample of quality_sample_size() of them."""
    seed = checks.whole("seed", seed, 0)
    rows = sample_rows(len(artist_vectors), quality_sample_size(len(artist_vectors)), seed)
    trained = neighbour_agreement(artist_vectors, k, rows)
    random = random_like(artist_vectors, seed)
    baseline = neighbour_agreement(random, k, rows)
    report = {name: {"trained": trained[name], "random": baseline[name]} for name in trained}
    clusters, genres = artist_vectors.kmeans_clusters, artist_vectors.artists.primary_genres
    if clusters is not None:
        shuffled = np.random.default_rng(seed).permutation(clusters)
        report["cluster_genre_nmi"] = {
            "trained": normalized_mutual_information(genres, clusters),
            "random": normalized_mutual_information(genres, shuffled)}
    stability_rows = sample_rows(len(artist_vectors), STABILITY_SAMPLE, seed)
    report["member_agreement"] = {
        "trained": member_agreement(artist_vectors, k, stability_rows),
        "random": member_agreement(random, k, stability_rows)}
    report["k"] = min(k, len(artist_vectors) - 1)
    report["artists"] = len(artist_vectors)
    report["measured_on"] = len(rows)
    return report


@dataclasses.dataclass(frozen=True)
class ClusterSummary:
    """One k-means cluster, as evaluate lists it."""
    cluster: int
    size: int  # its artists
    genres: dict  # {primary genre: its artists there}, the `top` most common first
    mean_score: float  # the mean of its artists' mean scores
    examples: list  # its most-reviewed artists


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What Run.evaluate() returns: the quality report and a summary of the k-means clusters."""
    report: dict  # quality_report(): {figure: {"trained": x, "random": y}}, k, artists, measured_on
    clusters: list  # [ClusterSummary], the largest first

    def as_dict(self):
        """The report with the clusters under "clusters": what `evaluate --json` prints."""
        return {**self.report, "clusters": [dataclasses.asdict(c) for c in self.clusters]}


def kmeans_summary(artist_vectors, top=3, examples=4):
    """[ClusterSummary] of the run's k-means clusters, the largest first; none where the vectors
    have none (a metadata.tsv whose clusters are all -1)."""
    summary, facts, clusters = [], artist_vectors.artists, artist_vectors.kmeans_clusters
    if clusters is None:
        return []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        genres, counts = np.unique(facts.primary_genres[members], return_counts=True)
        top_genres = {str(g): int(c) for c, g in sorted(zip(counts, genres), reverse=True)[:top]}
        order = members[np.argsort(-facts.review_counts[members], kind="stable")]
        summary.append(ClusterSummary(int(cluster), len(members), top_genres,
                                      float(facts.mean_scores[members].mean()),
                                      [artist_vectors.names[i] for i in order[:examples]]))
    return sorted(summary, key=lambda row: -row.size)


# ---------------------------------------------------------------------------------------------
# Stability: how far the neighbours of two runs, or of an ensemble's members, agree
# ---------------------------------------------------------------------------------------------

def member_agreement(artist_vectors, k=NEIGHBOURS, rows=None):
    """For an ensemble, the mean Jaccard of the top-`k` sets of every two of its members over the
    artists in `rows`: how far single models of different seeds agree. None for one model."""
    members = artist_vectors.members
    if members == 1:
        return None
    rows = np.arange(len(artist_vectors)) if rows is None else np.asarray(rows)
    k = min(k, len(artist_vectors) - 1)
    neighbours = [artist_vectors.with_vectors(unit, for_neighbours_only=True)
                  .nearest_neighbours(k, rows)
                  for unit in member_vectors(artist_vectors.vectors, members)]
    kept = [_kept(first, second) for first, second in itertools.combinations(neighbours, 2)]
    return float(np.mean([np.mean(both / (2 * k - both)) for both in kept]))


def neighbour_stability(first, second, k=NEIGHBOURS, sample=STABILITY_SAMPLE, seed=0):
    """How far two runs' vectors agree on the neighbours, over a seeded sample of `sample` of the
    artists both have (the same whatever the runs' seeds): the mean Jaccard of their top-`k` sets,
    and how many of the `k` the second run keeps on average."""
    in_second = np.array([second.key_to_index.get(name, -1) for name in first.names])
    common = np.flatnonzero(in_second >= 0)
    if not len(common):
        raise QueryError("the two runs have no artist in common to compare")
    rows = common[sample_rows(len(common), sample, seed)]
    k = min(k, len(first) - 1, len(second) - 1)
    mine = first.nearest_neighbours(k, rows)
    # The second run's neighbours as the first's rows; one it lacks matches nothing.
    to_first = np.full(len(second), -1, dtype=np.int64)
    to_first[in_second[common]] = common
    theirs = to_first[second.nearest_neighbours(k, in_second[rows])]
    theirs = np.where(theirs >= 0, theirs, -1 - np.arange(theirs.size).reshape(theirs.shape))
    kept = _kept(mine, theirs)
    return {"jaccard": float(np.mean(kept / (2 * k - kept))), "kept": float(kept.mean()),
            "k": k, "artists": len(rows)}


def _kept(first, second):
    """For each row of two (rows x k) neighbour arrays, each row's values distinct, how many of the
    first's the second has: the values found twice in the two side by side, sorted (memory of 2k a
    row, where comparing every pair would take k x k)."""
    both = np.sort(np.concatenate([first, second], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def map_quality(unit_vectors, coordinates, genres, k=NEIGHBOURS, sample=MAP_QUALITY_SAMPLE,
                seed=0):
    """How well a 2-d map (the t-SNE plots') keeps the vectors' neighbourhoods, over a seeded
    sample of its points: trustworthiness (1 when a point's k nearest on the map are its k nearest
    by cosine, lower as they rank further; scikit-learn's definition) and the share of a point's k
    nearest on the map that have its primary genre (over the points with one)."""
    n, k = len(coordinates), min(k, len(coordinates) - 1)
    rows = sample_rows(n, sample, seed)
    penalty = 0
    on_map = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), 256):  # 256 rows of n ranks at a time bound the memory
        block = rows[start:start + 256]
        distance = ((coordinates[block, None, :] - coordinates[None, :, :]) ** 2).sum(axis=2)
        distance[np.arange(len(block)), block] = np.inf
        on_map[start:start + 256] = near = top_k(-distance, k)
        similarity = unit_vectors[block] @ unit_vectors.T
        similarity[np.arange(len(block)), block] = -np.inf
        mapped = np.take_along_axis(similarity, near, axis=1)
        ranks = (similarity[:, None, :] > mapped[:, :, None]).sum(axis=2) + 1
        penalty += np.maximum(ranks - k, 0).sum()
    trustworthiness = 1 - 2 * penalty / (len(rows) * k * (2 * n - 3 * k - 1))
    genres = np.asarray(genres)
    named = genres[rows] != NO_GENRE
    same_genre = genres[on_map[named]] == genres[rows[named], None]
    return {"trustworthiness": float(trustworthiness),
            "genre": float(same_genre.mean()) if named.any() else None}
