"""Bands2Vec as a library: train a run, open one, ask it questions; run.py is its command line.

    import bands2vec
    run = bands2vec.train(data="demo")                 # or a database.sqlite; writes logs/<run>/
    run.vectors.most_similar("coil")                   # an ArtistVectors (artist_vectors.py)
    run = bands2vec.open_run("logs")                   # the latest run, read with numpy alone
    run = bands2vec.resume("logs", steps=3000)         # continue it from its checkpoint

A run's settings are a TrainOptions (options.py) and its record a RunRecord (run_record.py), saved
in its run.json; its per-artist facts are an ArtistFacts, saved as its metadata.tsv. Opening a run
never imports TensorFlow; training does. Every error for the user is a Bands2VecError (errors.py).
"""
import contextlib
import dataclasses
import functools
import os

import numpy as np

import checks
import options as training_options
import run_folder
import run_life
import run_outputs
import run_record
from artist_vectors import NEIGHBOURS, ArtistVectors
from errors import (Bands2VecError, ClusterError, DataError, OptionError,  # noqa: F401
                    QueryError, RunError, RunInterrupted, UnknownArtist, shown)
from catalog import Catalog
from interrupts import RUN_COMPLETE, signals_as_a_flag
from keyed_vectors import checked_path
from options import KMEANS_CLUSTERS, TrainOptions
from quality import (Evaluation, kmeans_clusters, kmeans_summary, neighbour_stability,
                     quality_report)

__version__ = "0.1.0"  # the one place the version is written; `python run.py --version` says it


class Run:
    """A trained run's folder: its record (`record`, run.json: options, state, figures), its vectors
    (an ArtistVectors, read with numpy alone), the artists' facts, its quality report and plots."""

    def __init__(self, folder, record=None):
        """The run at `folder`; `record`, its run.json as its writer read it, if not read here."""
        self.folder = run_record.named_folder(checked_path(folder, "Run"))
        self.record = run_record.read(self.folder) if record is None else record

    def __repr__(self):
        return (f"Run({self.folder!r}: {self.record.artists:,} artists, "
                f"{self.record.stats.steps:,} steps)")

    @functools.cached_property
    def vectors(self):
        # Read lazily: another process may have replaced the run since (or be replacing it now,
        # its files not all there yet: then that is what is said).
        try:
            vectors = ArtistVectors.load(self.folder)
        except RunError:
            self._check_unchanged()
            raise
        self._check_unchanged()
        return vectors

    @property
    def artists(self):
        """The per-artist facts (catalog.ArtistFacts)."""
        return self.vectors.artists

    @property
    def options(self):
        return self.record.options

    @property
    def quality(self):
        """The quality report of the run's vectors (quality.quality_report), as run.json has it."""
        return self.record.quality

    @property
    def plots(self):
        """{kind: path} of the static t-SNE plots the run has."""
        import plots

        paths = {kind: os.path.join(self.folder, name) for kind, name in plots.PLOTS.items()}
        return {kind: path for kind, path in paths.items() if os.path.isfile(path)}

    def evaluate(self, k=NEIGHBOURS):
        """An Evaluation (quality.py): `report`, the quality report for `k` neighbours (at most
        the other artists there are), and `clusters`, the k-means clusters' summary."""
        k = checks.whole("k", k, 1)
        return Evaluation(quality_report(self.vectors, k=k, seed=self.options.seed),
                          kmeans_summary(self.vectors))

    def against(self, other, k=NEIGHBOURS):
        """How far this run's `k` nearest neighbours agree with those of the Run `other`, which
        differs in its seed, say (quality.neighbour_stability), and which run that is."""
        k = checks.whole("k", k, 1)
        if not isinstance(other, Run):
            raise QueryError(f"Run.against takes another Run, not {type(other).__name__}")
        # Itself, a copy, or a run of the same seed, data and options: they agree in full, always.
        if np.array_equal(other.vectors.vectors, self.vectors.vectors):
            raise QueryError(f"{other.folder} has the vectors of {self.folder} (the run itself, a "
                             f"copy, or its seed again): they agree in full, which says nothing; "
                             f"compare it against a run of another seed")
        return {"run": other.folder, "seed": other.options.seed,
                "ensemble": other.options.ensemble,
                **neighbour_stability(self.vectors, other.vectors, k=k)}

    def plot(self, clusters=None, say=print):
        """The t-SNE plots (re-clustered into `clusters` with k-means where given), the projector's
        bookmarks of the same map, and the plots as images in TensorBoard; returns {kind: path}."""
        clusters = None if clusters is None else checks.whole("--clusters", clusters, 1)
        checks.function("say", say)
        artist_vectors = self.vectors
        if clusters is None and artist_vectors.kmeans_clusters is None:  # metadata.tsv has none
            clusters = self.record.kmeans_clusters
        if clusters is not None:
            k = min(clusters, len(artist_vectors))
            say(f"Clustering {len(artist_vectors):,} artists into {k:,} with k-means for the plots"
                + (f" (--clusters {clusters:,} is more than the artists)" if k < clusters else ""))
            # The run's own clusters stay as metadata.tsv has them.
            artist_vectors = artist_vectors.with_vectors(artist_vectors.vectors)
            artist_vectors.kmeans_clusters = kmeans_clusters(artist_vectors, clusters,
                                                             self.options.seed)
        with self._writing():
            paths = run_outputs.plot(artist_vectors, self.folder, self.options.seed,
                                     self.record.stats.steps, say)
            self._completed("plots")
        return paths

    def export(self):
        """vectors.npy, vectors.tsv and vectors.txt (word2vec format); returns their paths."""
        with self._writing():
            return run_outputs.export(self.folder, self.vectors)

    @contextlib.contextmanager
    def _writing(self):
        """The run's writer lock, once its run.json is still the one this Run read (else the run
        has been trained on, resumed or replaced since, and this Run's vectors are not its own)."""
        with run_folder.writing(self.folder):
            self._check_unchanged()
            yield

    def _check_unchanged(self):
        try:
            changed = run_record.read(self.folder) != self.record
        except RunError:  # its run.json gone or damaged since
            changed = True
        if changed:
            raise RunError(f"{self.folder} has changed since this Run read it (trained on, "
                           f"resumed or replaced by another process): open it again")

    def _completed(self, output):
        if self.record.missing:
            self.record.completed(self.folder, output)
            run_record.write(self.folder, self.record)


def open_run(logs="logs", name=None):
    """The run `name` under `logs`, `logs` itself if it is a run folder, else the latest run
    there with vectors to ask."""
    return Run(run_folder.find_run(_logs(logs), _name(name), usable=True))


def train(data=None, options=None, *, logs="logs", name=None, overwrite=False,
          clusters=KMEANS_CLUSTERS, plots=True, include_pseudo_artists=False, say=print):
    """Train a new run, written to `logs/<name>` (by default named by the time); returns the Run.

    `data` is what --data takes (a database.sqlite, a folder of it or of CSVs, "demo"), a Catalog
    already loaded, or None for the data found (data_utils.resolve_data_path); `options` a
    TrainOptions, None for the defaults; `clusters` the k-means clusters of its metadata and plots.
    Everything that can refuse the input does so before the folder is made; whatever fails after,
    the folder is removed, or keeps what can be continued and a run.json saying how (run_life.py).

    With TF_CONFIG set, this process is a task of a TensorFlow cluster (cluster_training.py) that
    trains one run with the others: the chief writes the folder as one process does and returns its
    Run; a worker trains, a ps task holds the variables, and both return None once the run is done.
    """
    if not isinstance(options, (TrainOptions, type(None))):
        raise OptionError(f"options must be a TrainOptions, not {shown(options)}")
    # Made anew, so checked anew: a field may have been set since the options were made.
    options = options and dataclasses.replace(options)
    if _name(name) is not None:
        run_folder.check_run_name(name)  # before the data is loaded, which takes seconds
    return _run(run_life.new_run, _data(data, Catalog), options, _logs(logs), name,
                checks.flag("overwrite", overwrite), checks.whole("--clusters", clusters, 1),
                checks.flag("plots", plots),
                checks.flag("include_pseudo_artists", include_pseudo_artists),
                checks.function("say", say))


def resume(logs="logs", name=None, steps=None, data=None, plots=True, concurrent_steps=None,
           say=print):
    """Continue the run `name` under `logs` (the latest by default) with its own options (only
    `steps` may change, and how it steps) on the same data (`data` where it has moved): from its
    last checkpoint, or from the start if it stopped before its first; or, if it has trained all its
    steps, write the files it lacks. Returns the Run. On a TensorFlow cluster it is the chief that
    resumes (a ps task serves again)."""
    return _run(run_life.resume_run, _logs(logs), _name(name),
                training_options.checked("steps", steps), _data(data),
                checks.flag("plots", plots),
                training_options.checked("concurrent_steps", concurrent_steps),
                checks.function("say", say))


# Where a run's arguments enter: checked, so that a wrong one is an OptionError in one line.

def _logs(logs):
    return checks.path("--logdir", logs, "a directory for the logs, such as logs")


def _name(name):
    """None, or a name as text (run_folder says which names a run may have)."""
    if name is not None and not isinstance(name, str):
        raise OptionError(f"--run must be a run's name (text), not {shown(name)}")
    return name


def _data(data, *objects):
    """`data` as a path (data_utils checks its value), or None, or one of the `objects` (such as a
    Catalog) taken as it is."""
    if data is None or isinstance(data, objects):
        return data
    return checks.path("--data", data)


def _run(life, *args):
    """The Run that `life` leaves, also where it was interrupted."""
    try:
        written = life(*args)  # (the folder, its record), or None: no run (a cluster's worker)
    except RunInterrupted as stop:
        stop.run = Run(stop.run) if stop.run else None
        raise
    with signals_as_a_flag():  # the run is complete: a stop now has nothing left to stop
        RUN_COMPLETE.append(True)
        return Run(*written) if written else None
