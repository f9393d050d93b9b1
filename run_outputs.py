"""What a run writes once its vectors are trained, each output saying what it does as it starts: the
vectors first, then the metadata with k-means clusters (from then on the run can be asked
questions), the text exports, the projector's files, the quality report and the t-SNE plots.
"""
import dataclasses
import os

import atomic_files
import metadata
import run_folder
import tensorboard_files
import vector_files
from quality import kmeans_clusters, quality_report, quality_sample_size
from run_record import OUTPUTS


@dataclasses.dataclass
class Writing:
    """What writing a run's outputs takes."""
    catalog: object
    artist_vectors: object
    options: object
    folder: str
    record: object
    say: object
    outputs: tuple  # those to write, in order
    side: object  # side_process: where k-means and the map are computed


def write_output(output, writing):
    """Write one of OUTPUTS."""
    run_folder.check_own_folders(writing.folder)
    _WRITERS[output](writing)


def _write_vectors(w):
    vector_files.write_vectors(w.folder, w.artist_vectors.vectors)


def _write_metadata(w):
    k = min(w.record.kmeans_clusters, len(w.artist_vectors))
    w.say(f"Clustering {len(w.artist_vectors):,} artists into {k} with k-means; "
          f"writing metadata.tsv")
    w.artist_vectors.kmeans_clusters = kmeans_clusters(w.artist_vectors, k, w.options.seed,
                                                       w.side)
    if "plots" in w.outputs:  # its t-SNE runs there while the other outputs are written here
        import plots
        plots.submit_map(w.side, plots.map_artists(w.artist_vectors), w.folder, w.options.seed)
    metadata.write_metadata(w.folder, w.catalog.facts, w.artist_vectors.kmeans_clusters)


def _write_exports(w):
    if len(w.artist_vectors) <= vector_files.EXPORT_MAX:
        w.say("Writing vectors.tsv and vectors.txt (word2vec format)")
        export(w.folder, w.artist_vectors)


def _write_projector(w):
    rows = _projector_rows(w.artist_vectors, w.folder)
    tensorboard_files.write_projector_config(w.folder,
                                             sampled=len(rows) < len(w.artist_vectors))


def _write_quality(w):
    w.say(f"Measuring the vectors' quality against random ones on "
          f"{min(len(w.artist_vectors), quality_sample_size(len(w.artist_vectors))):,} artists")
    w.record.quality = quality_report(w.artist_vectors, seed=w.options.seed)
    if w.record.stats.steps >= w.options.steps:
        tensorboard_files.write_run_summaries(w.folder, w.record)


def _write_plots(w):
    plot(w.artist_vectors, w.folder, w.options.seed, w.record.stats.steps, w.say, w.side)


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
        os.makedirs(sample, atomic_files.FOLDER_MODE, exist_ok=True)
        metadata.write_metadata(sample, artist_vectors.artists, artist_vectors.kmeans_clusters,
                                rows)
        vector_files.write_tsv_vectors(sample, artist_vectors.vectors[rows])
    return rows


def plot(artist_vectors, folder, seed, step, say, side=None):
    """The t-SNE plots (of the map started on `side`, else made here), and the same map as the
    projector's bookmarks and as images in TensorBoard; returns {kind: path}."""
    import plots

    tensorboard_files.replaced_events(folder, tensorboard_files.PLOTS_EVENTS)  # before any plot
    paths, coordinates = plots.write_plots(artist_vectors, folder, seed, say, side)
    tensorboard_files.write_bookmarks(folder, coordinates,
                                      (len(coordinates), artist_vectors.vectors.shape[1]),
                                      sampled=len(coordinates) < len(artist_vectors))
    # The images replace an earlier plot's: they are maps of these vectors only.
    tensorboard_files.write_summaries(folder, step,
                                      [tensorboard_files.image_summary(f"plots/{name}", path)
                                       for name, path in paths.items()],
                                      replacing=tensorboard_files.PLOTS_EVENTS)
    return paths
