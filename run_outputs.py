"""What a run writes once its vectors are trained, each output saying what it does as it starts: the
vectors first, then the metadata with k-means clusters (from then on the run can be asked
questions), the text exports, the projector's files, the quality report and the t-SNE plots.
"""
import os

import metadata
import run_folder
import tensorboard_files
import vector_files
from quality import kmeans_clusters, quality_report, quality_sample_size

# The outputs in the order they are written.
OUTPUTS = ("vectors", "metadata", "exports", "projector", "quality", "plots")


def write_output(output, catalog, artist_vectors, options, folder, record, say):
    """Write one of OUTPUTS."""
    run_folder.check_own_folders(folder)
    _WRITERS[output](catalog, artist_vectors, options, folder, record, say)


def _write_vectors(catalog, artist_vectors, options, folder, record, say):
    vector_files.write_vectors(folder, artist_vectors.vectors)


def _write_metadata(catalog, artist_vectors, options, folder, record, say):
    k = min(record.kmeans_clusters, len(artist_vectors))
    say(f"Clustering {len(artist_vectors):,} artists into {k} with k-means; writing metadata.tsv")
    artist_vectors.kmeans_clusters = kmeans_clusters(artist_vectors, k, options.seed)
    metadata.write_metadata(folder, catalog.facts, artist_vectors.kmeans_clusters)


def _write_exports(catalog, artist_vectors, options, folder, record, say):
    if len(artist_vectors) <= vector_files.EXPORT_MAX:
        say("Writing vectors.tsv and vectors.txt (word2vec format)")
        export(folder, artist_vectors)


def _write_projector(catalog, artist_vectors, options, folder, record, say):
    rows = _projector_rows(artist_vectors, folder)
    tensorboard_files.write_projector_config(folder, sampled=len(rows) < len(artist_vectors))


def _write_quality(catalog, artist_vectors, options, folder, record, say):
    say(f"Measuring the vectors' quality against random ones on "
        f"{min(len(artist_vectors), quality_sample_size(len(artist_vectors))):,} artists")
    record.quality = quality_report(artist_vectors, seed=options.seed)
    if record.stats.steps >= options.steps:
        tensorboard_files.write_run_summaries(folder, record)


def _write_plots(catalog, artist_vectors, options, folder, record, say):
    plot(artist_vectors, folder, options.seed, record.stats.steps, say)


_WRITERS = {"vectors": _write_vectors, "metadata": _write_metadata, "exports": _write_exports,
            "projector": _write_projector, "quality": _write_quality, "plots": _write_plots}


def export(folder, artist_vectors):
    """vectors.npy, vectors.tsv and vectors.txt (word2vec format); returns their paths."""
    vector_files.write_vectors(folder, artist_vectors.vectors)
    vector_files.write_tsv_vectors(folder, artist_vectors.vectors)
    vector_files.write_word2vec(folder, artist_vectors.names, artist_vectors.vectors)
    return [os.path.join(folder, name)
            for name in (vector_files.VECTORS_FILE, vector_files.VECTORS_TSV,
                         vector_files.WORD2VEC_FILE)]


def _projector_rows(artist_vectors, folder):
    """The artists the projector shows: all, or (past plots.MAP_ARTISTS) the map's sample, whose
    vectors and metadata are written in projector/."""
    import plots

    rows = plots.map_rows(artist_vectors.artists.review_counts)
    if len(rows) < len(artist_vectors):
        sample = os.path.join(folder, run_folder.PROJECTOR_SAMPLE_DIR)
        os.makedirs(sample, exist_ok=True)
        metadata.write_metadata(sample, artist_vectors.artists, artist_vectors.kmeans_clusters,
                                rows)
        vector_files.write_tsv_vectors(sample, artist_vectors.vectors[rows])
    return rows


def plot(artist_vectors, folder, seed, step, say):
    """The t-SNE plots, and the same map as the projector's bookmarks and as images in TensorBoard;
    returns {kind: path}."""
    import plots

    rows = plots.map_rows(artist_vectors.artists.review_counts)
    say(f"t-SNE of {len(rows):,} artists ({plots.tsne_iterations()} iterations), then the plots")
    paths = plots.write_plots(artist_vectors, folder, seed, say)
    coordinates = plots.tsne_coordinates(artist_vectors, folder, seed)
    tensorboard_files.write_bookmarks(folder, coordinates,
                                      (len(coordinates), artist_vectors.vectors.shape[1]),
                                      sampled=len(coordinates) < len(artist_vectors))
    # The images replace an earlier plot's: they are maps of these vectors only.
    tensorboard_files.write_summaries(folder, step,
                                      [tensorboard_files.image_summary(f"plots/{name}", path)
                                       for name, path in paths.items()],
                                      replacing=tensorboard_files.PLOTS_EVENTS)
    return paths
