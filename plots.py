"""Static t-SNE plots of the artist vectors: the fallback to TensorBoard's projector.

t-SNE maps the vectors to 2-d once (openTSNE where it is installed, else scikit-learn); the
coordinates are cached beside the checkpoint, keyed by the vectors they came from, so re-plotting
does not re-run it.
"""
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import itertools
import os
import re
import sys
import zipfile

import numpy as np

import npy_files
import side_process
from atomic_files import atomic_write, write_bytes
from contexts import NO_GENRE
from errors import RunError
from interrupts import signals_as_a_flag

TSNE_CACHE = "tsne.npz"
# A t-SNE map spans some hundred units: a cached one past this is damage, which the plots' axes
# could not be drawn for (matplotlib overflows past float64's range), and is made again.
MAX_COORDINATE = 1e6
# t-SNE, the plots and the projector's map show at most this many artists, the most-reviewed:
# t-SNE costs grow faster than the artists, and the projector's own t-SNE samples 10,000 points too.
MAP_ARTISTS = 10_000
# scikit-learn's t-SNE: a PCA start and the automatic learning rate converge in 500 iterations on
# the full 8,630 artists (250 of them exaggerated, scikit-learn's fixed share).
TSNE_ITERATIONS = 500
# openTSNE's, from the same PCA start with FFT gradients and exact neighbours: 60 exaggerated and
# 90 plain iterations make a map as trustworthy and as separated by genre as scikit-learn's 500.
FAST_TSNE_EXAGGERATED = 60
FAST_TSNE_ITERATIONS = 150
# openTSNE's FFT gradients cost a fixed grid each iteration, its Barnes-Hut ones grow with the
# points: Barnes-Hut is 8x faster on the 300-artist demo, FFT 2.5x faster on 8,712 full-data ones.
FAST_TSNE_FFT_ABOVE = 2_000
# t-SNE's gradient opens OpenMP threads every iteration; beside OpenBLAS's spinning threads on a
# shared 2-core machine they wait on each other (300 artists: 7-22 s, against 1-2 s on one thread).
TSNE_OPENMP_THREADS = 1
PLOTS = {"clusters": "tsne_clusters.png", "genres": "tsne_genres.png",
         "labelled": "tsne_top300.png"}
# Drawn by the side process, while the run's draws the others: its 300 labels take as long.
SIDE_PLOTS = ("labelled",)
FIGURE_INCHES = {"clusters": (12, 10), "genres": (12, 10), "labelled": (16, 16)}
DPI = 100
LABELLED = 300


def _cache_key(vectors):
    return hashlib.sha1(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()


def map_rows(review_counts):
    """The rows on the map: every artist, or the MAP_ARTISTS most-reviewed (in row order)."""
    if len(review_counts) <= MAP_ARTISTS:
        return np.arange(len(review_counts))
    return np.sort(np.argsort(-np.asarray(review_counts), kind="stable")[:MAP_ARTISTS])


def cached_coordinates(folder, unit_vectors):
    """The t-SNE coordinates cached in `folder` if they were made from these vectors, else None."""
    path = os.path.join(folder, TSNE_CACHE)
    if os.path.isfile(path):
        try:
            if _cache_fits(path, len(unit_vectors)):
                with np.load(path) as cached:
                    # In float64: float16's would overflow in the plots' arithmetic.
                    coordinates = cached["coordinates"].astype(np.float64)
                    # Not numbers, or past any map's: no plot, and not JSON in the bookmarks.
                    if str(cached["key"]) == _cache_key(unit_vectors) and \
                            (np.abs(coordinates) <= MAX_COORDINATE).all():
                        return coordinates
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, MemoryError):
            pass  # a damaged cache is recomputed and replaced
    return None


def _cache_fits(path, points):
    """Whether the members of the cache at `path` declare a key and the coordinates of `points`
    points, and hold just those bytes: a member that would inflate to gigabytes is not read."""
    shapes = {"key.npy": ((), "U"), "coordinates.npy": ((points, 2), "f")}
    with zipfile.ZipFile(path) as archive:
        for name, (shape, kind) in shapes.items():
            with archive.open(name) as member:
                declared_shape, dtype, size = npy_files.declared(member)
                if (declared_shape != shape or dtype.kind != kind
                        or archive.getinfo(name).file_size != member.tell() + size):
                    return False
    return True


def cache_coordinates(folder, unit_vectors, coordinates):
    atomic_write(os.path.join(folder, TSNE_CACHE),
                 lambda f: np.savez(f, coordinates=coordinates, key=_cache_key(unit_vectors)))


def fast_tsne_installed():
    """Whether openTSNE, the faster t-SNE (an optional dependency), is there to import."""
    return importlib.util.find_spec("openTSNE") is not None


def tsne_iterations():
    """The iterations compute_tsne runs: openTSNE's where it is installed, else scikit-learn's."""
    return FAST_TSNE_ITERATIONS if fast_tsne_installed() else TSNE_ITERATIONS


def compute_tsne(unit_vectors, seed=0, say=None):
    """t-SNE of the rows, by openTSNE where it is installed, else by scikit-learn; with `say`, a
    progress line every 30 (openTSNE) or 50 iterations."""
    from threadpoolctl import threadpool_limits

    # A point's neighbourhood is about 3 x perplexity points, fewer in a small catalog.
    perplexity = min(30.0, (len(unit_vectors) - 1) / 3)
    # A PCA start needs two dimensions to start from.
    start = "pca" if unit_vectors.shape[1] >= 2 else "random"
    with threadpool_limits(TSNE_OPENMP_THREADS, user_api="openmp"):
        if fast_tsne_installed():
            return _opentsne(unit_vectors, perplexity, start, seed, say)
        return _sklearn_tsne(unit_vectors, perplexity, start, seed, say)


def _opentsne(unit_vectors, perplexity, start, seed, say):
    """openTSNE's t-SNE. Ctrl-C or SIGTERM stops it between two iterations: raised inside its
    tree of points, the interrupt would leave the tree half made and crash the process."""
    from openTSNE import TSNE

    # Said every 30 iterations (both phases' lengths are multiples): openTSNE counts each from 0.
    reached = itertools.count(30, 30)
    with signals_as_a_flag() as stopping:

        def progress(iteration, error, embedding):
            if stopping.is_set():
                raise KeyboardInterrupt
            if say:
                say(f"  t-SNE iteration {next(reached)} of {FAST_TSNE_ITERATIONS}, "
                    f"error {error:.2f}")

        gradients = "fft" if len(unit_vectors) > FAST_TSNE_FFT_ABOVE else "bh"
        tsne = TSNE(n_components=2, perplexity=perplexity, initialization=start,
                    early_exaggeration_iter=FAST_TSNE_EXAGGERATED,
                    n_iter=FAST_TSNE_ITERATIONS - FAST_TSNE_EXAGGERATED, neighbors="exact",
                    negative_gradient_method=gradients, n_jobs=1, random_state=seed,
                    callbacks=progress, callbacks_every_iters=30)
        coordinates = tsne.fit(unit_vectors)
    if stopping.is_set():
        raise KeyboardInterrupt
    return np.asarray(coordinates, dtype=np.float32)


def _sklearn_tsne(unit_vectors, perplexity, start, seed, say):
    """scikit-learn's t-SNE, its word every 50 iterations said shorter."""
    from sklearn.manifold import TSNE

    # scikit-learn takes no perplexity under 2 (it must stay under the number of points).
    tsne = TSNE(n_components=2, perplexity=max(2.0, perplexity), init=start, learning_rate="auto",
                max_iter=TSNE_ITERATIONS, random_state=seed, verbose=2 * bool(say))
    with contextlib.redirect_stdout(_TsneProgress(say)) if say else contextlib.nullcontext():
        return tsne.fit_transform(unit_vectors).astype(np.float32)


class _TsneProgress(io.TextIOBase):
    """scikit-learn's t-SNE prints `[t-SNE] Iteration 50: error = 62.9, ...`: those lines, said
    shorter, to the standard output from before scikit-learn's was caught, where `say` may print."""

    def __init__(self, say):
        self.say, self.stdout = say, sys.stdout

    def write(self, text):
        found = re.search(r"Iteration (\d+): error = ([\d.]+)", text)
        if found:
            with contextlib.redirect_stdout(self.stdout):
                self.say(f"  t-SNE iteration {found[1]} of {TSNE_ITERATIONS}, "
                         f"error {float(found[2]):.2f}")
        return len(text)


@dataclasses.dataclass
class MapArtists:
    """What the map shows of the artists, as plain arrays a side process is given."""
    unit_vectors: np.ndarray  # of the map_rows
    names: list
    review_counts: np.ndarray
    primary_genres: np.ndarray
    clusters: np.ndarray
    artists: int  # in all, the map's or more


def map_artists(artist_vectors):
    facts, rows = artist_vectors.artists, map_rows(artist_vectors.artists.review_counts)
    return MapArtists(unit_vectors=artist_vectors.unit_vectors[rows],
                      names=[artist_vectors.names[i] for i in rows],
                      review_counts=facts.review_counts[rows],
                      primary_genres=facts.primary_genres[rows],
                      clusters=artist_vectors.kmeans_clusters[rows], artists=len(artist_vectors))


def submit_map(side, shown, folder, seed=0):
    """Start the t-SNE map of the MapArtists `shown` (map_coordinates) on `side` (side_process),
    from the cache if it was made from these vectors."""
    side.submit(map_coordinates, shown.unit_vectors, seed,
                cached_coordinates(folder, shown.unit_vectors), says=True)


def map_coordinates(unit_vectors, seed=0, coordinates=None, say=None):
    """The map's t-SNE coordinates: `coordinates` where the cache had them, else computed; a
    RunError where they are not numbers, which no file of the run is to hold."""
    if coordinates is None:
        if say:
            say(f"t-SNE of {len(unit_vectors):,} artists ({tsne_iterations()} iterations), "
                f"then the plots")
        coordinates = compute_tsne(unit_vectors, seed, say)
    elif say:
        say(f"The t-SNE map of {len(unit_vectors):,} artists from {TSNE_CACHE}, made from these "
            f"vectors, then the plots")
    if not np.isfinite(coordinates).all():
        raise RunError("the t-SNE map came out NaN: the vectors are too much alike to map; see "
                       "that vectors.npy is the run's own")
    return coordinates


def pictures(shown, coordinates, kinds=tuple(PLOTS)):
    """The plots `kinds` of the MapArtists `shown` at `coordinates`, as PNG bytes {kind: bytes}."""
    plt = _pyplot()
    genre_colours = _palette(plt, shown.primary_genres)
    which = ("" if len(shown.names) == shown.artists
             else f", the {len(shown.names):,} most-reviewed of {shown.artists:,} artists")
    figures = {
        "clusters": lambda: _categorical(
            plt, "clusters", coordinates, shown.clusters, _palette(plt, shown.clusters),
            f"K-means clustering of the artists' embeddings (t-SNE{which})"),
        "genres": lambda: _categorical(plt, "genres", coordinates, shown.primary_genres,
                                       genre_colours, f"Artists by primary genre (t-SNE{which})"),
        "labelled": lambda: _labelled(plt, coordinates, shown.names, shown.review_counts,
                                      shown.primary_genres, genre_colours),
    }
    drawn = {}
    for kind in kinds:
        figure, buffer = figures[kind](), io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        plt.close(figure)
        drawn[kind] = buffer.getvalue()
    return drawn


def write_plots(artist_vectors, folder, seed=0, say=None, side=None):
    """The three PNG plots in `folder`, of the map started on `side` (submit_map), else made here;
    returns their paths and the map's coordinates."""
    shown = map_artists(artist_vectors)
    if side is None or not side.pending:
        side = side or side_process.InProcess()
        submit_map(side, shown, folder, seed)
    _pyplot()  # imported while the side process computes the map
    coordinates = side.answer(say)
    cache_coordinates(folder, shown.unit_vectors, coordinates)
    side.submit(pictures, shown, coordinates, SIDE_PLOTS)
    drawn = pictures(shown, coordinates, [kind for kind in PLOTS if kind not in SIDE_PLOTS])
    drawn.update(side.answer(say))
    paths = {kind: os.path.join(folder, PLOTS[kind]) for kind in PLOTS}
    for kind in PLOTS:
        write_bytes(paths[kind], drawn[kind])
    return paths, coordinates


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # PNG files only, whatever display there is
    import matplotlib.pyplot as plt
    return plt


def _axis_free(plt, kind, title):
    figure, axes = plt.subplots(figsize=FIGURE_INCHES[kind], dpi=DPI)
    axes.set_axis_off()
    axes.set_title(title, fontsize=16)
    return figure, axes


def _palette(plt, categories):
    """A colour per category, the most common first; grey is kept for artists without a genre."""
    values, counts = np.unique(categories, return_counts=True)
    ordered = [value for _, value in sorted(zip(-counts, values), key=lambda cv: cv[0])]
    named = [value for value in ordered if value != NO_GENRE]
    if len(named) <= 9:
        # tab10 without its grey.
        colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
    else:
        colours = plt.get_cmap("tab20").colors
    palette = {value: colours[i % len(colours)] for i, value in enumerate(named)}
    palette.update({value: "lightgrey" for value in ordered if value == NO_GENRE})
    return {value: palette[value] for value in ordered}


def _categorical(plt, kind, coordinates, categories, palette, title):
    figure, axes = _axis_free(plt, kind, title)
    for value, colour in palette.items():
        points = coordinates[categories == value]
        name = f"cluster {value}" if kind == "clusters" else value
        axes.scatter(points[:, 0], points[:, 1], s=6, color=colour, alpha=0.7, linewidths=0,
                     label=f"{name} ({len(points)})")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, frameon=False,
                fontsize=11)
    figure.subplots_adjust(left=0.02, right=0.78, top=0.94, bottom=0.02)
    return figure


def _labelled(plt, coordinates, names, review_counts, primary, palette):
    from matplotlib.collections import LineCollection

    shown = np.argsort(-np.asarray(review_counts), kind="stable")[:LABELLED]
    figure, axes = _axis_free(plt, "labelled",
                              f"The {len(shown)} most-reviewed artists (t-SNE), by primary genre")
    points = coordinates[shown]
    for genre, colour in palette.items():
        mask = primary[shown] == genre
        if mask.any():
            axes.scatter(points[mask, 0], points[mask, 1], s=14, label=genre, color=colour)
    positions = np.array(_label_positions(points, [names[i] for i in shown]))
    moved = positions[:, 1] != points[:, 1]  # moved off its point to clear another label
    axes.add_collection(LineCollection(np.stack([points[moved], positions[moved]], axis=1),
                                       colors="lightgrey", linewidths=0.5, zorder=0))
    for (label_x, label_y), i in zip(positions, shown):
        axes.annotate(names[i], (label_x, label_y), xytext=(3, 0), textcoords="offset points",
                      fontsize=8, va="center")
    axes.legend(loc="lower right", markerscale=1.5, frameon=False, fontsize=10)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.02)
    return figure


def _label_positions(points, labels):
    """Where to write each label: at its point, or moved down until it overlaps no earlier label."""
    # Points all at one place (a damaged cache) still get a line's height, which `y` can step by.
    span = np.maximum(np.ptp(points, axis=0), 1e-6 * (1 + np.abs(points).max()))
    # For 8-point text on a 16-inch, 100-dpi figure.
    char_width, line_height = span[0] * 0.0045, span[1] * 0.011
    placed, positions = [], [None] * len(points)
    for i in np.argsort(-points[:, 1], kind="stable"):
        x, y = points[i]
        width = char_width * (len(labels[i]) + 1)
        while any(x < px + pw and px < x + width and abs(y - py) < line_height
                  for px, py, pw in placed):
            y -= line_height
        placed.append((x, y, width))
        positions[i] = (x, y)
    return positions
