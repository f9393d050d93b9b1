"""Bands2Vec as a library: train a run, open one, ask it questions. `python run.py` is a command line over it.

    import bands2vec
    run = bands2vec.train(data="demo")                 # or a Pitchfork database.sqlite; writes logs/<run>/
    run.vectors.most_similar("coil")                   # an ArtistVectors (artist_vectors.py)
    run = bands2vec.open_run("logs")                   # the latest run, read with numpy alone
    run = bands2vec.resume("logs", steps=3000)         # continue it from its checkpoint

A run's settings are a TrainOptions, saved in its run.json as their one source; its per-artist facts are the
catalog's ArtistTable, saved as its metadata.tsv. Opening a run never imports TensorFlow; training does.
"""
import dataclasses
import functools
import math
import os
import resource
import time

import numpy as np

import logdir
import tensorboard_files
from artist_vectors import ArtistVectors, cluster_summary, kmeans_clusters, quality_report, training_probe
from data_utils import (DEFAULT_CONTEXTS, DEMO_SOURCE, KAGGLE_URL, Catalog, context_memberships, format_contexts,
                        load_catalog, parse_contexts)

# ---------------------------------------------------------------------------------------------
# Options: what a run is trained with, and the defaults for any catalog size
# ---------------------------------------------------------------------------------------------

# The learning rate and the steps, for any catalog size. The loss is a mean over the batch, so over a run an
# artist's rows move by about rate x steps x (its share of the pairs): the steps give every context
# membership MOVE_PER_MEMBERSHIP of that (what the full Pitchfork data's defaults give and need). The rate
# grows with the artists (V / 90) up to MAX_RATE, about the full data's: a sampled negative's NCE weights
# take one push from the whole batch, rate / num_sampled at the start whatever the catalog, so the rate has
# a ceiling (V / 90 was 1,111 at 100,000 artists, NaN by step 500); bigger catalogs take more steps instead.
# Below MIN_STEPS, SGD has too few updates to settle. Past 10,000 artists the same movement is not enough
# (100,000 synthetic artists: 85.6% genre, 45.4% score; with 1.4 times the steps 98.2%, 96.5%; 1.5 times,
# 99.4%, 99.0%), so the movement grows by MOVE_GROWTH for every tenfold of artists beyond that. Half was
# more than a million artists need (99.6% genre, past 95% at 64% of the run) and took 15 min of training.
# Movement sets the steps whatever the batch size; the batch sets the pairs an artist sees, which average out
# the noise of single pairs. Batches hold PAIRS_PER_ARTIST x artists / steps pairs (what the full data's
# 2,048 give), to the nearest power of two from 1,024 to 2,048: once the steps outgrow the artists, smaller
# batches make the same steps cheaper (100,000 artists at 1,024 pairs: 97.8% genre, 93.2% score in 64 s of
# training; at 2,048, 99.4%, 99.0% in 95 s). At 512 a negative's push, shared by fewer pairs, diverged (the
# full data at the full rate: inf at step 1,156).
ARTISTS_PER_RATE = 90
MAX_RATE = 100
MOVE_PER_MEMBERSHIP = 8.5
MOVE_GROWTH = 0.4
MOVE_GROWTH_ABOVE = 10_000
MIN_STEPS = 1900
PAIRS_PER_ARTIST = 447
BATCH_SIZES = (1024, 2048)
# Reports (average loss, neighbours, quality scalars) every REPORT_EVERY steps; on a big catalog, where each
# reads the whole table, at most one every artists / REPORT_ARTISTS steps and about REPORTS a run.
REPORT_EVERY = 250
REPORT_ARTISTS = 50
REPORTS = 20
PHASES = ("load", "train", "write", "plots")  # what run.json's phases time, in order
CLUSTERS = 10  # k-means clusters for metadata.tsv, the projector's colours and the plots
NEIGHBOURS = 10  # how many artists a question and the quality figures take


@dataclasses.dataclass
class TrainOptions:
    """Training settings, saved in run.json; None means chosen for the catalog by resolved() (docs/defaults.md)."""
    steps: int = None  # from the catalog: MOVE_PER_MEMBERSHIP of movement for every context membership
    batch_size: int = None  # from the catalog: PAIRS_PER_ARTIST pairs an artist over the run
    embedding_size: int = 64  # the tutorial's dimensions
    num_sampled: int = 64  # NCE's negatives a step, shared by the batch
    learning_rate: float = None  # artists / ARTISTS_PER_RATE up to MAX_RATE: an artist moves rate / artists a step
    contexts: dict = dataclasses.field(default_factory=lambda: parse_contexts(DEFAULT_CONTEXTS))  # {kind: share}
    init_scale: float = 0.01  # vectors start in +-0.01, as word2vec's C code: the signal is not buried in noise
    seed: int = 0  # the same seed gives the same vectors
    threads: int = 2  # TensorFlow's threads: the machine's cores
    report_every: int = None  # from the catalog: every REPORT_EVERY steps, or about REPORTS a run
    summary_every: int = 25  # the loss to TensorBoard: often enough for a curve, seldom enough to cost nothing
    steps_per_draw: int = 100  # batches numpy draws in one call, instead of a Python loop over pairs
    valid_size: int = 4  # artists whose neighbours each report shows: the most reviewed, which a reader can judge

    def __post_init__(self):
        # A spec, such as "genre,score,label=0.3" (and run.json's from before contexts were a value): parsed once.
        if isinstance(self.contexts, str):
            self.contexts = parse_contexts(self.contexts)

    def resolved(self, catalog):
        """These options with the steps, batch size, learning rate and report interval filled in for `catalog`
        (the rules above; on the full data batches of 2,048 pairs give the most quality per second, as
        measured by benchmarks/train_benchmark.py)."""
        vocabulary_size = len(catalog)
        rate = min(vocabulary_size / ARTISTS_PER_RATE, MAX_RATE)
        memberships = sum(context_memberships(catalog, kind) for kind, share in self.contexts.items() if share > 0)
        move = MOVE_PER_MEMBERSHIP * (1 + MOVE_GROWTH * max(0.0, math.log10(vocabulary_size / MOVE_GROWTH_ABOVE)))
        steps = max(MIN_STEPS, int(round(move * memberships / rate, -1)))  # at the default rate
        steps = steps if self.steps is None else self.steps
        smallest, largest = BATCH_SIZES
        # max(steps, 1): check() rejects --steps 0 in words, after this.
        batch_size = 2 ** round(math.log2(PAIRS_PER_ARTIST * vocabulary_size / max(steps, 1)))
        # A small catalog's batch is at most the power of two that holds it.
        batch_size = min(max(smallest, batch_size), largest, 2 ** math.ceil(math.log2(max(vocabulary_size, 2))))
        report_every = max(REPORT_EVERY, min(steps // REPORTS, vocabulary_size // REPORT_ARTISTS)
                           // REPORT_EVERY * REPORT_EVERY)
        return dataclasses.replace(
            self, steps=steps, report_every=self.report_every or report_every,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            learning_rate=rate if self.learning_rate is None else self.learning_rate)

    def check(self, vocabulary_size):
        """A ValueError naming the first option out of range."""
        checks = [
            (self.steps >= 1, f"--steps must be at least 1, not {self.steps}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}"),
            (self.embedding_size >= 1, f"--embedding-size must be at least 1, not {self.embedding_size}"),
            (1 <= self.num_sampled < vocabulary_size,
             f"--num-sampled must be from 1 to {vocabulary_size - 1} (fewer than the {vocabulary_size} artists), "
             f"not {self.num_sampled}"),
            (np.isfinite(self.learning_rate) and self.learning_rate > 0,
             f"--learning-rate must be above 0, not {self.learning_rate}"),
            (self.threads >= 1, f"--threads must be at least 1, not {self.threads}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def hparams(self):
        """The options a reader compares runs by, for TensorBoard's HParams tab."""
        return {"steps": self.steps, "batch_size": self.batch_size, "embedding_size": self.embedding_size,
                "num_sampled": self.num_sampled, "learning_rate": self.learning_rate,
                "genre_share": self.contexts.get("genre", 0.0), "contexts": format_contexts(self.contexts),
                "seed": self.seed}


# ---------------------------------------------------------------------------------------------
# A run: its folder, read lazily
# ---------------------------------------------------------------------------------------------

class Run:
    """A trained run's folder: its options and figures (`info`, run.json), its vectors (an ArtistVectors,
    read with numpy alone), the artists' facts, its quality report and its plots."""

    def __init__(self, folder):
        self.folder = folder
        self.info = logdir.read_run_info(folder)

    def __repr__(self):
        return f"Run({self.folder!r}: {self.info['artists']:,} artists, {self.info['stats']['steps']:,} steps)"

    @functools.cached_property
    def vectors(self):
        return ArtistVectors.load(self.folder)

    @property
    def artists(self):
        """The per-artist facts (data_utils.ArtistTable)."""
        return self.vectors.artists

    @property
    def options(self):
        return TrainOptions(**self.info["options"])

    @property
    def quality(self):
        """The quality report of the run's vectors (artist_vectors.quality_report), as run.json has it."""
        return self.info["quality"]

    @property
    def plots(self):
        """{kind: path} of the static t-SNE plots the run has."""
        import plots

        paths = {kind: os.path.join(self.folder, name) for kind, name in plots.PLOTS.items()}
        return {kind: path for kind, path in paths.items() if os.path.isfile(path)}

    def evaluate(self, k=NEIGHBOURS):
        """The quality report for `k` neighbours, and the clusters' summary."""
        return quality_report(self.vectors, k=k, seed=self.options.seed), cluster_summary(self.vectors)

    def plot(self, clusters=None, say=print):
        """The t-SNE plots (re-clustered into `clusters` where given), the projector's bookmarks of the same
        map, and the plots as images in TensorBoard; returns {kind: path}."""
        vectors = self.vectors
        if clusters is not None:
            _check_at_least_one("--clusters", clusters)
            vectors = vectors.with_vectors(vectors.vectors)  # the run's own clusters stay as metadata.tsv has them
            vectors.clusters = kmeans_clusters(vectors, clusters, self.options.seed)
        return _plot(vectors, self.folder, self.options.seed, self.info["stats"]["steps"], say)

    def export(self):
        """vectors.npy, vectors.tsv and vectors.txt (word2vec format) of the run; returns their paths."""
        _export(self.folder, self.vectors)
        return [os.path.join(self.folder, name) for name in (logdir.VECTORS_FILE, logdir.VECTORS_TSV,
                                                              logdir.WORD2VEC_FILE)]


def open_run(logs="logs", name=None):
    """The run `name` under `logs`, `logs` itself if it is a run folder, else the latest run there."""
    return Run(logdir.find_run(logs, name))


# ---------------------------------------------------------------------------------------------
# Training a run: data and options in, every file of the run folder out
# ---------------------------------------------------------------------------------------------

def train(data=None, options=None, *, logs="logs", name=None, overwrite=False, clusters=CLUSTERS, plots=True,
          include_pseudo_artists=False, say=print):
    """Train a new run and write its folder, `logs/<name>` (by default named by the time); returns the Run.

    `data` is what --data takes (a database.sqlite, a folder of it or of CSVs, "demo"), a Catalog already
    loaded, or None for the data found (data_utils.resolve_data_path); `options` a TrainOptions, None for
    the defaults. Everything that can refuse the input does so before the folder is made.
    """
    catalog = data if isinstance(data, Catalog) else load_catalog(data, include_pseudo_artists)
    options = (options or TrainOptions()).resolved(catalog)
    options.check(len(catalog))
    _check_at_least_one("--clusters", clusters)
    for kind in options.contexts:
        catalog.context_groups(kind)  # a missing table is an error now, not after the run folder exists
    folder = logdir.new_run_dir(logs, name, overwrite)
    return _train_and_write(catalog, options, folder, clusters, plots, None, say)


def resume(logs="logs", name=None, steps=None, data=None, plots=True, say=print):
    """Continue the run `name` under `logs` (the latest by default) from its last checkpoint, with its own
    options (only `steps` may change) on the same data (`data` where it has moved); returns the Run."""
    from bands2vec_graph import tf1

    folder = logdir.find_run(logs, name)
    info = logdir.read_run_info(folder)
    catalog = load_catalog(data or info["data"], info.get("include_pseudo_artists", False))
    names = logdir.read_metadata(folder)["artist"]
    if names != [logdir.tsv_field(name) for name in catalog.names]:
        raise logdir.RunError(f"{folder} was trained on other data ({len(names):,} artists, from {info['data']}) "
                              f"than {catalog.source} ({len(catalog):,} artists)")
    options = TrainOptions(**info["options"])
    options = dataclasses.replace(options, steps=options.steps if steps is None else steps)
    options.check(len(catalog))
    checkpoint = tf1.train.latest_checkpoint(logdir.checkpoint_dir(folder))
    if checkpoint is None:
        raise logdir.RunError(f"{folder}: no checkpoint to resume from")
    if info["stats"]["steps"] >= options.steps:
        raise ValueError(f"{folder} has trained all its {options.steps:,} steps; pass --steps N with more "
                         f"to train on")
    return _train_and_write(catalog, options, folder, info.get("clusters", CLUSTERS), plots, checkpoint, say)


class RunInterrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; the run was saved where it stood (`run`), and can be resumed."""

    def __init__(self, run):
        super().__init__(f"Interrupted at step {run.info['stats']['steps']:,}: checkpoint and projector files "
                         f"saved in {run.folder}; continue with: python run.py --resume --logdir "
                         f"{os.path.dirname(run.folder) or '.'} --run {os.path.basename(run.folder)}")
        self.run = run


def _train_and_write(catalog, options, folder, clusters, plots, checkpoint, say):
    from training import Interrupted, train as train_vectors

    _say_catalog(catalog, say)
    say(f"Training {options.steps:,} steps of {options.batch_size:,} pairs ({format_contexts(options.contexts)}), "
        f"learning rate {options.learning_rate:g}; logs in {folder}")
    phases, mark = {}, time.perf_counter()
    # The artists' facts; training's vectors take the place of this one-column stand-in.
    artists = ArtistVectors.from_catalog(catalog, np.zeros((len(catalog), 1), np.float32))
    probe = training_probe(artists, options.valid_size, seed=options.seed)
    phases["load"], mark = time.perf_counter() - mark, time.perf_counter()
    try:
        vectors, stats = train_vectors(catalog, options, folder, say=say, checkpoint=checkpoint, probe=probe)
    except Interrupted as stop:
        _write_outputs(catalog, artists.with_vectors(stop.vectors), stop.stats, options, clusters, folder)
        raise RunInterrupted(Run(folder)) from None
    except BaseException:
        if checkpoint is None:
            import shutil
            shutil.rmtree(folder, ignore_errors=True)  # a new run that did not finish leaves nothing
        raise
    phases["train"], mark = time.perf_counter() - mark, time.perf_counter()
    vectors, info = _write_outputs(catalog, artists.with_vectors(vectors), stats, options, clusters, folder)
    tensorboard_files.write_run_summaries(folder, info, options.hparams())
    phases["write"], mark = time.perf_counter() - mark, time.perf_counter()
    if plots:
        _plot(vectors, folder, options.seed, stats["steps"], say)
    phases["plots"] = time.perf_counter() - mark
    # What a run cost, for the scale benchmark and the reader: seconds by phase, and peak memory.
    info.update(phases=phases, peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB
    logdir.write_run_info(folder, info)
    return Run(folder)


def _say_catalog(catalog, say):
    if catalog.source == DEMO_SOURCE:
        say(f"Using the built-in demo catalog ({len(catalog)} fictional artists). For the real thing, download "
            f"database.sqlite from {KAGGLE_URL} into data/ or pass --data PATH.")
    else:
        say(f"Loaded {len(catalog):,} artists, {catalog.review_count:,} reviews from {catalog.source}")
    if catalog.left_out:
        names = ", ".join(f"{name!r} ({count:,} review{'s' * (count != 1)})"
                          for name, count in sorted(catalog.left_out.items()))
        say(f"Left out compilations, not artists: {names}; --include-pseudo-artists keeps them")
    if catalog.dropped_scores:
        say(f"Skipped {catalog.dropped_scores:,} reviews whose score is missing or outside 0-10")


def _write_outputs(catalog, vectors, stats, options, clusters, folder):
    """vectors.npy, metadata.tsv (with k-means clusters), the vector exports, the projector's files and
    run.json; returns the vectors, clustered, and run.json's contents."""
    logdir.write_vectors(folder, vectors.vectors)
    vectors.clusters = kmeans_clusters(vectors, clusters, options.seed)
    logdir.write_metadata(folder, catalog.table, vectors.clusters)
    if len(catalog) <= logdir.EXPORT_MAX:
        _export(folder, vectors)
    rows = _projector_rows(vectors, folder)
    tensorboard_files.write_projector_config(folder, sampled=len(rows) < len(catalog))
    info = {
        "data": catalog.source if catalog.source == DEMO_SOURCE else os.path.abspath(catalog.source),
        "artists": len(catalog), "options": dataclasses.asdict(options),
        "include_pseudo_artists": catalog.include_pseudo_artists,
        "clusters": clusters, "stats": stats, "quality": quality_report(vectors, seed=options.seed),
        "finished": stats["steps"] == options.steps,
    }
    logdir.write_run_info(folder, info)
    return vectors, info


def _export(folder, vectors):
    logdir.write_vectors(folder, vectors.vectors)
    logdir.write_tsv_vectors(folder, vectors.vectors)
    logdir.write_word2vec(folder, vectors.names, vectors.vectors)


def _projector_rows(vectors, folder):
    """The artists the projector shows: all, or (past plots.MAP_ARTISTS) the map's sample, whose vectors
    and metadata are written in projector/."""
    import plots

    rows = plots.map_rows(vectors.artists.review_counts)
    if len(rows) < len(vectors):
        sample = os.path.join(folder, logdir.PROJECTOR_SAMPLE_DIR)
        os.makedirs(sample, exist_ok=True)
        logdir.write_metadata(sample, vectors.artists, vectors.clusters, rows)
        logdir.write_tsv_vectors(sample, vectors.vectors[rows])
    return rows


def _plot(vectors, folder, seed, step, say):
    """The t-SNE plots, and the same map as the projector's bookmarks and as images in TensorBoard."""
    import plots

    started = time.perf_counter()
    paths = plots.write_plots(vectors, folder, seed)
    coordinates = plots.tsne_coordinates(vectors, folder, seed)
    tensorboard_files.write_bookmarks(folder, coordinates, (len(coordinates), vectors.vectors.shape[1]),
                                      sampled=len(coordinates) < len(vectors))
    tensorboard_files.write_summaries(folder, step, [tensorboard_files.image_summary(f"plots/{name}", path)
                                                     for name, path in paths.items()])
    say(f"t-SNE plots written in {time.perf_counter() - started:.1f}s")
    return paths


def _check_at_least_one(option, value):
    if value < 1:
        raise ValueError(f"{option} must be at least 1, not {value}")
