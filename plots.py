"""Static t-SNE plots of the artist vectors: the fallback to TensorBoard's projector.

t-SNE (scikit-learn) maps the vectors to 2-d once; the coordinates are cached beside the checkpoint,
keyed by the vectors they came from, so re-plotting does not re-run it.
"""
import hashlib
import io
import os

import numpy as np

import logdir

TSNE_CACHE = "tsne.npz"
PLOTS = {"clusters": "tsne_clusters.png", "genres": "tsne_genres.png", "labelled": "tsne_top300.png"}
FIGURE_INCHES = {"clusters": (12, 10), "genres": (12, 10), "labelled": (16, 16)}
DPI = 100
LABELLED = 300


def fingerprint(vectors):
    return hashlib.sha1(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).hexdigest()


def tsne_coordinates(vectors, run_dir, seed=0):
    """2-d t-SNE coordinates of the unit vectors, from the cache when it was made from these vectors."""
    path = os.path.join(run_dir, TSNE_CACHE)
    key = fingerprint(vectors.unit_vectors)
    if os.path.isfile(path):
        try:
            with np.load(path) as cached:
                if str(cached["fingerprint"]) == key:
                    return cached["coordinates"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is recomputed and replaced
    coordinates = compute_tsne(vectors.unit_vectors, seed)
    logdir.atomic_write(path, lambda f: np.savez(f, coordinates=coordinates, fingerprint=key))
    return coordinates


def compute_tsne(unit_vectors, seed=0):
    from sklearn.manifold import TSNE

    # PCA start and the automatic learning rate converge in 500 iterations on 8,714 artists.
    perplexity = min(30.0, max(2.0, (len(unit_vectors) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=500,
                random_state=seed, n_jobs=2)
    return tsne.fit_transform(unit_vectors).astype(np.float32)


def write_plots(vectors, run_dir, seed=0):
    """The three PNG plots in `run_dir`; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coordinates = tsne_coordinates(vectors, run_dir, seed)
    primary = np.array([genres[0] if genres else "none" for genres in vectors.genres])
    figures = {
        "clusters": _categorical(plt, coordinates, vectors.clusters, "cluster",
                                 "K-means clustering of the artists' embeddings (t-SNE)"),
        "genres": _categorical(plt, coordinates, primary, "genre", "Artists by primary genre (t-SNE)"),
        "labelled": _labelled(plt, coordinates, vectors.names, vectors.review_counts),
    }
    paths = {}
    for name, figure in figures.items():
        paths[name] = os.path.join(run_dir, PLOTS[name])
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        plt.close(figure)
        logdir.atomic_write(paths[name], lambda f: f.write(buffer.getvalue()))
    return paths


def _axis_free(plt, kind, title):
    figure, axes = plt.subplots(figsize=FIGURE_INCHES[kind], dpi=DPI)
    axes.set_axis_off()
    axes.set_title(title, fontsize=16)
    return figure, axes


def _categorical(plt, coordinates, categories, label, title):
    figure, axes = _axis_free(plt, "clusters", title)
    values, counts = np.unique(categories, return_counts=True)
    colours = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
    for i, (value, count) in enumerate(sorted(zip(values, counts), key=lambda vc: -vc[1])):
        points = coordinates[categories == value]
        colour = "lightgrey" if value == "none" else colours(i % colours.N)
        axes.scatter(points[:, 0], points[:, 1], s=6, color=colour, alpha=0.7, linewidths=0,
                     label=f"{label} {value} ({count})" if label == "cluster" else f"{value} ({count})")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=3, frameon=False, fontsize=11)
    figure.subplots_adjust(left=0.02, right=0.78, top=0.94, bottom=0.02)
    return figure


def _labelled(plt, coordinates, names, review_counts):
    shown = np.argsort(-np.asarray(review_counts), kind="stable")[:LABELLED]
    figure, axes = _axis_free(plt, "labelled", f"The {len(shown)} most-reviewed artists (t-SNE)")
    points = coordinates[shown]
    axes.scatter(points[:, 0], points[:, 1], s=10, color="tab:blue")
    for (x, y), i in zip(points, shown):
        axes.annotate(names[i], (x, y), xytext=(3, 2), textcoords="offset points", fontsize=8)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.02)
    return figure
