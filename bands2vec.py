"""Bands2Vec as a library: train a run, open one, ask it questions. `python run.py` is a command line over it.

    import bands2vec
    run = bands2vec.train(data="demo")                 # or a Pitchfork database.sqlite; writes logs/<run>/
    run.vectors.most_similar("coil")                   # an ArtistVectors (artist_vectors.py)
    run = bands2vec.open_run("logs")                   # the latest run, read with numpy alone
    run = bands2vec.resume("logs", steps=3000)         # continue it from its checkpoint

A run's settings are a TrainOptions, saved in its run.json as their one source; its per-artist facts are the
catalog's ArtistTable, saved as its metadata.tsv. Opening a run never imports TensorFlow; training does.
"""
import copy
import dataclasses
import functools
import hashlib
import importlib
import json
import math
import os
import resource
import shutil
import time

import numpy as np

import logdir
import tensorboard_files
from cluster import ClusterError, ClusterLost, Task, serve
from artist_vectors import (ArtistVectors, cluster_summary, kmeans_clusters, quality_report, quality_sample_size,
                            training_probe)
from data_utils import (DEFAULT_CONTEXTS, DEMO_SOURCE, KAGGLE_URL, Catalog, DataError, context_memberships,
                        format_contexts, load_catalog, no_pairs, parse_contexts)

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
# XLA fuses a step's small ops, 1.8 ms a step instead of 4.4 on the full data; but a cluster that updates a
# table copies all of it, which past about 20,000 artists costs more than it saves, so bigger catalogs keep
# the tables' reads and writes out of XLA (1,000,000 artists, 2,048 pairs: 3.5 ms a step, against 4.3
# without XLA and 160 with the tables in it). A cluster's tables are on the parameter servers, out of it too.
XLA_MAX_ARTISTS = 20_000
# Concurrent steps (threads stepping one session) where the tables are out of XLA: measured on 2 cores,
# 1.29x the steps a second at 100,000 artists and 1.36x at 1,000,000 with two, the same quality at the same
# steps (docs/cluster.md); inside XLA two steps copy a whole table each and lose each other's updates
# (99% genre agreement fell to 90% on the full data), so there it is one.
MAX_CONCURRENT_STEPS = 2
# With the tables split across two ps tasks, steps of 2,048 pairs from two trainers wait for ever inside
# TensorFlow's runtime (measured here, on the demo and on the full data; 1,024 train), so such a cluster
# takes batches of at most this many pairs.
SPLIT_TABLES_MAX_BATCH = 1024
PHASES = ("load", "train", "write", "plots")  # what run.json's phases time, in order
CLUSTERS = 10  # k-means clusters for metadata.tsv, the projector's colours and the plots
NEIGHBOURS = 10  # how many artists a question and the quality figures take
NUM_SAMPLED = 64  # NCE's negatives a step, or one fewer than the artists of a smaller catalog
# The smallest catalog a run is made of: NCE needs a negative besides the true context, and t-SNE more points
# than its perplexity, which is at least 2.
MIN_ARTISTS = 3
# What training and the run's files need beyond the catalog, to refuse before allocating what the machine
# has not: about 1.1 GB of Python, TensorFlow and scikit-learn, the artists x dimensions tables and their
# copies (NCE's weights, a report's, a checkpoint's, the quality report's: 8 in all, 3.1 GB at a million
# artists as measured), and the batches numpy draws ahead and the step's tensors.
FIXED_MEMORY = 1.1e9
TABLE_COPIES = 8
SEEDS = 2 ** 32  # scikit-learn's k-means and t-SNE take seeds below this


@dataclasses.dataclass
class TrainOptions:
    """Training settings, saved in run.json; None means chosen for the catalog by resolved() (docs/defaults.md)."""
    steps: int = None  # from the catalog: MOVE_PER_MEMBERSHIP of movement for every context membership
    batch_size: int = None  # from the catalog: PAIRS_PER_ARTIST pairs an artist over the run
    embedding_size: int = 64  # the tutorial's dimensions
    num_sampled: int = None  # NCE's negatives a step, shared by the batch: NUM_SAMPLED
    learning_rate: float = None  # artists / ARTISTS_PER_RATE up to MAX_RATE: an artist moves rate / artists a step
    contexts: dict = dataclasses.field(default_factory=lambda: parse_contexts(DEFAULT_CONTEXTS))  # {kind: share}
    init_scale: float = 0.01  # vectors start in +-0.01, as word2vec's C code: the signal is not buried in noise
    seed: int = 0  # the same seed gives the same vectors
    threads: int = 2  # TensorFlow's threads: the machine's cores
    report_every: int = None  # from the catalog: every REPORT_EVERY steps, or about REPORTS a run
    summary_every: int = 25  # the loss to TensorBoard: often enough for a curve, seldom enough to cost nothing
    steps_per_draw: int = 100  # batches numpy draws in one call, instead of a Python loop over pairs
    valid_size: int = 4  # artists whose neighbours each report shows: the most reviewed, which a reader can judge
    # How this process steps, not what it learns (on --resume they are chosen again for where it runs):
    xla_tables: bool = None  # XLA fuses the tables' reads and writes too: up to XLA_MAX_ARTISTS, in one process
    concurrent_steps: int = None  # threads stepping the session: 1 with XLA's tables, else the cores, at most 2

    def __post_init__(self):
        # A spec, such as "genre,score,label=0.3" (and run.json's from before contexts were a value): parsed once.
        if isinstance(self.contexts, str):
            self.contexts = parse_contexts(self.contexts)

    def resolved(self, catalog, trainers=1, ps_tasks=1):
        """These options with the steps, batch size, learning rate and report interval filled in for `catalog`
        (the rules above; on the full data batches of 2,048 pairs give the most quality per second, as
        measured by benchmarks/train_benchmark.py), for `trainers` tasks of a cluster training together with
        `ps_tasks` parameter servers."""
        vocabulary_size = len(catalog)
        rate = min(vocabulary_size / ARTISTS_PER_RATE, MAX_RATE)
        memberships = sum(context_memberships(catalog, kind) for kind, share in self.contexts.items() if share > 0)
        if not memberships:
            raise no_pairs(catalog, list(self.contexts))
        move = MOVE_PER_MEMBERSHIP * (1 + MOVE_GROWTH * max(0.0, math.log10(vocabulary_size / MOVE_GROWTH_ABOVE)))
        steps = max(MIN_STEPS, int(round(move * memberships / rate, -1)))  # at the default rate
        steps = steps if self.steps is None else self.steps
        smallest, largest = BATCH_SIZES
        # max(steps, 1): check() rejects --steps 0 in words, after this.
        batch_size = 2 ** round(math.log2(PAIRS_PER_ARTIST * vocabulary_size / max(steps, 1)))
        # A small catalog's batch is at most the power of two that holds it.
        batch_size = min(max(smallest, batch_size), largest, 2 ** math.ceil(math.log2(max(vocabulary_size, 2))))
        batch_size = min(batch_size, SPLIT_TABLES_MAX_BATCH) if ps_tasks > 1 else batch_size
        # Trainers of a cluster update the tables asynchronously, each from values the others have moved
        # since it read them, so a sampled negative can take several pushes at once: the full data's rate
        # diverged with two. The same movement at 2 / (trainers + 1) of the rate, over that many times more
        # steps of the one process's batches, reached its quality (2 trainers: 1.5 x the steps; docs/cluster.md).
        slower = (trainers + 1) / 2
        rate = rate / slower
        steps = int(round(steps * slower, -1)) if self.steps is None else steps
        report_every = max(REPORT_EVERY, min(steps // REPORTS, vocabulary_size // REPORT_ARTISTS)
                           // REPORT_EVERY * REPORT_EVERY)
        xla_tables = vocabulary_size <= XLA_MAX_ARTISTS and trainers == 1 if self.xla_tables is None else \
            self.xla_tables
        concurrent = 1 if xla_tables or trainers > 1 else min(os.cpu_count() or 1, MAX_CONCURRENT_STEPS)
        return dataclasses.replace(
            self, steps=steps, report_every=self.report_every or report_every,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            num_sampled=min(NUM_SAMPLED, vocabulary_size - 1) if self.num_sampled is None else self.num_sampled,
            learning_rate=rate if self.learning_rate is None else self.learning_rate, xla_tables=xla_tables,
            concurrent_steps=concurrent if self.concurrent_steps is None else self.concurrent_steps)

    def check(self, vocabulary_size):
        """A ValueError naming the first option out of range, or too big for the machine's memory: what any
        later stage (TensorFlow, k-means, t-SNE) would refuse after training is refused before it."""
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
            (self.concurrent_steps >= 1, f"--concurrent-steps must be at least 1, not {self.concurrent_steps}"),
            (0 <= self.seed < SEEDS, f"--seed must be from 0 to {SEEDS - 1:,}, not {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        # Bytes, from the tables (artists x dimensions), the step's tensors and the batches drawn ahead.
        tables = TABLE_COPIES * vocabulary_size * self.embedding_size * 4
        step = 8 * self.batch_size * (self.embedding_size + self.num_sampled) * 4
        draws = self.steps_per_draw * self.batch_size * 16
        need, available = FIXED_MEMORY + tables + step + draws, _available_memory()
        if available and need > available:
            # Name the option whose halving would save the most.
            by_batch = (step + draws) / 2
            by_dimensions = (tables + step * self.embedding_size / (self.embedding_size + self.num_sampled)) / 2
            option = (f"--batch-size {self.batch_size:,}" if by_batch >= by_dimensions else
                      f"--embedding-size {self.embedding_size:,} for {vocabulary_size:,} artists")
            raise ValueError(f"{option} needs about {need / 1e9:,.1f} GB of memory, and this machine has "
                             f"{available / 1e9:,.1f} GB available; choose a smaller one")

    def hparams(self):
        """The options a reader compares runs by, for TensorBoard's HParams tab."""
        return {"steps": self.steps, "batch_size": self.batch_size, "embedding_size": self.embedding_size,
                "num_sampled": self.num_sampled, "learning_rate": self.learning_rate,
                "genre_share": self.contexts.get("genre", 0.0), "contexts": format_contexts(self.contexts),
                "seed": self.seed}


def _available_memory():
    """Bytes of memory the machine can give now (Linux's MemAvailable), or None where it does not say."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


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
        with logdir.writing(self.folder):
            paths = _plot(vectors, self.folder, self.options.seed, self.info["stats"]["steps"], say)
            self._completed("plots")
        return paths

    def export(self):
        """vectors.npy, vectors.tsv and vectors.txt (word2vec format) of the run; returns their paths."""
        with logdir.writing(self.folder):
            _export(self.folder, self.vectors)
        return [os.path.join(self.folder, name) for name in (logdir.VECTORS_FILE, logdir.VECTORS_TSV,
                                                              logdir.WORD2VEC_FILE)]

    def _completed(self, part):
        """run.json, once `part` of an incomplete run is written."""
        if part in self.info.get("missing", []):
            missing = [name for name in self.info["missing"] if name != part]
            if missing:
                _save_info(self.folder, self.info, "incomplete", missing=missing)
            else:
                _save_info(self.folder, self.info, "finished")


def open_run(logs="logs", name=None):
    """The run `name` under `logs`, `logs` itself if it is a run folder, else the latest run there with
    vectors to ask."""
    return Run(logdir.find_run(logs, name, usable=True))


# ---------------------------------------------------------------------------------------------
# Training a run: data and options in, every file of the run folder out
# ---------------------------------------------------------------------------------------------

def train(data=None, options=None, *, logs="logs", name=None, overwrite=False, clusters=CLUSTERS, plots=True,
          include_pseudo_artists=False, say=print):
    """Train a new run and write its folder, `logs/<name>` (by default named by the time); returns the Run.

    `data` is what --data takes (a database.sqlite, a folder of it or of CSVs, "demo"), a Catalog already
    loaded, or None for the data found (data_utils.resolve_data_path); `options` a TrainOptions, None for
    the defaults. Everything that can refuse the input does so before the folder is made; whatever fails
    after, the folder is removed, or keeps what can be continued and a run.json that says how (_guarded).

    With TF_CONFIG set, this process is a task of a cluster (cluster.py) that trains one run with the others:
    the chief writes the folder as one process does and returns its Run; a worker trains, a ps task holds
    the variables, and both return None once the run is done.
    """
    task = Task.from_environment()
    if task and task.job == "ps":
        return serve(task, say)
    mark = time.perf_counter()
    catalog = data if isinstance(data, Catalog) else load_catalog(data, include_pseudo_artists)
    load_seconds = time.perf_counter() - mark
    _say_catalog(catalog, say)
    if len(catalog) < MIN_ARTISTS:
        raise DataError(f"{catalog.source}: {len(catalog)} artist{'s' * (len(catalog) != 1)} with a score; a run "
                        f"needs at least {MIN_ARTISTS}")
    options = (options or TrainOptions()).resolved(catalog, *_sizes(task))
    options.check(len(catalog))
    _check_cluster_batch(options, task)
    _check_at_least_one("--clusters", clusters)
    for kind in options.contexts:
        catalog.context_groups(kind)  # a missing table is an error now, not after the run folder exists
    if task and task.job == "worker":
        return _work(catalog, options, task, say)
    folder = logdir.run_path(logs, name)
    importlib.import_module("training")  # TensorFlow takes seconds to load: before the folder, so Ctrl-C leaves none
    with logdir.writing(folder):
        logdir.make_run_dir(folder, overwrite)
        info = {"data": catalog.source if catalog.source == DEMO_SOURCE else os.path.abspath(catalog.source),
                "catalog": catalog.fingerprint, "artists": len(catalog),
                "include_pseudo_artists": catalog.include_pseudo_artists, "clusters": clusters,
                "stats": {"steps": 0, "pairs": 0, "loss": None, "seconds": 0.0}}
        return _guarded(catalog, options, folder, info, plots, new=True, say=say, task=task,
                        load_seconds=load_seconds)


def resume(logs="logs", name=None, steps=None, data=None, plots=True, concurrent_steps=None, say=print):
    """Continue the run `name` under `logs` (the latest by default) with its own options (only `steps` may
    change, and how it steps) on the same data (`data` where it has moved): from its last checkpoint, or from
    the start if it stopped before its first; or, if it has trained all its steps, write the files it lacks.
    Returns the Run. On a cluster it is the chief that resumes (a ps task serves again)."""
    task = Task.from_environment()
    if task and task.job == "ps":
        return serve(task, say)
    if task and task.job == "worker":
        raise ClusterError(f"{task}: --resume is the chief's; restart a worker with the command it was started "
                           f"with")
    folder = logdir.find_run(logs, name)
    with logdir.writing(folder):
        info = logdir.read_run_info(folder)
        mark = time.perf_counter()
        catalog = load_catalog(data or info["data"], info.get("include_pseudo_artists", False))
        load_seconds = time.perf_counter() - mark
        _say_catalog(catalog, say)
        _check_same_data(folder, info, catalog)
        options = dataclasses.replace(TrainOptions(**info["options"]), xla_tables=None,
                                      concurrent_steps=concurrent_steps)
        options = dataclasses.replace(options, steps=options.steps if steps is None else steps)
        options = options.resolved(catalog, *_sizes(task))
        options.check(len(catalog))
        _check_cluster_batch(options, task)
        if info["stats"]["steps"] >= options.steps and info.get("state") != "incomplete":
            raise ValueError(f"{folder} has trained all its {options.steps:,} steps; pass --steps N with more "
                             f"to train on")
        return _guarded(catalog, options, folder, info, plots, new=False, say=say, task=task,
                        load_seconds=load_seconds)


def _sizes(task):
    """(trainers, ps tasks) of a cluster, or (1, 1) for one process."""
    return (task.trainers, len(task.cluster["ps"])) if task else (1, 1)


def _check_cluster_batch(options, task):
    if task and len(task.cluster["ps"]) > 1 and options.batch_size > SPLIT_TABLES_MAX_BATCH:
        raise ValueError(f"--batch-size {options.batch_size:,} with the tables split across "
                         f"{len(task.cluster['ps'])} ps tasks: TensorFlow's runtime stalls on steps of more than "
                         f"{SPLIT_TABLES_MAX_BATCH:,} pairs there; choose at most that")


def _work(catalog, options, task, say):
    """A worker of a cluster: train with the others until the run's steps are done; nothing is written."""
    from training import Interrupted, train as train_vectors

    say(f"{task}: training with the {task.trainers - 1} other trainer{'s' * (task.trainers != 2)} of the cluster "
        f"({options.steps:,} steps in all; the chief {task.cluster['chief'][0]} writes the run)")
    try:
        _, stats = train_vectors(catalog, options, None, say=say, task=task,
                                 fingerprint=_shared_fingerprint(catalog, options))
    except Interrupted as stop:
        raise RunInterrupted(f"{task}: interrupted at the run's step {stop.stats['steps']:,}; the run goes on "
                             f"without it", None) from None
    say(f"{task}: done, at the run's step {stats['steps']:,}")


def _shared_fingerprint(catalog, options):
    """What every task of a cluster must agree on: the data, and the options that shape what it learns."""
    return hashlib.sha1(json.dumps([catalog.fingerprint, options.hparams()], sort_keys=True).encode()).hexdigest()


def _check_same_data(folder, info, catalog):
    if "catalog" in info:
        same = info["catalog"] == catalog.fingerprint
    else:  # a run from before the catalog's fingerprint was saved: its artists, in order
        same = logdir.read_metadata(folder)["artist"] == [logdir.tsv_field(name) for name in catalog.names]
    if not same:
        raise logdir.RunError(f"{folder} was trained on other data ({info['artists']:,} artists, from "
                              f"{info['data']}) than {catalog.source} ({len(catalog):,} artists)")


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM; `run` is what it saved, and the message says how to continue."""

    def __init__(self, message, run):
        super().__init__(message)
        self.run = run


# The run's files after training, in the order they are written, each with what it says while it works. The
# vectors come first: from then on the run can be asked questions, whatever happens to the rest.
OUTPUTS = ("vectors", "metadata", "exports", "projector", "quality", "plots")


def _guarded(catalog, options, folder, info, plots, new, say, task=None, load_seconds=0.0):
    """Train (unless all steps are trained) and write every file of the run, keeping run.json's `state`
    true at every moment: `training` (from the start, and at each checkpoint: a run killed then is continued
    by `--resume`), `interrupted` (stopped during training: its checkpoint and files are where it stood),
    `incomplete` (trained, some files missing: `missing`), `finished`. `next` is the command that goes on.
    A new run that fails before its first checkpoint leaves no folder."""
    from training import Diverged, Interrupted, UnreadableCheckpoint

    before = copy.deepcopy(info)  # a resumption that gets nowhere leaves run.json as it was
    to_train = info["stats"]["steps"] < options.steps
    try:
        info["options"] = dataclasses.asdict(options)
        mark = time.perf_counter()
        artists = ArtistVectors.from_catalog(catalog, np.zeros((len(catalog), 1), np.float32))
        phases = {"load": load_seconds + time.perf_counter() - mark}  # reading the catalog, and its table
        mark = time.perf_counter()
        if to_train:
            vectors, info["stats"] = _train(catalog, options, folder, info, artists, say, task)
        else:
            say(f"{folder} has trained all its {options.steps:,} steps: writing the files it lacks")
            vectors = _saved_vectors(folder, len(catalog))
    except Interrupted as stop:
        info["stats"] = stop.stats
        _save_info(folder, info, "interrupted")
        message = (f"Interrupted at step {stop.stats['steps']:,}: checkpoint saved in {folder}; continue with: "
                   f"{info['next']}")
        try:  # the files of the vectors where training stood, to ask and to look at meanwhile
            _write(catalog, artists.with_vectors(stop.vectors), options, folder, info, OUTPUTS[:-1], say)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: the checkpoint is what matters
        except Exception as error:
            _add_note(error, message)
            raise
        raise RunInterrupted(message, Run(folder)) from None
    except BaseException as error:
        if new and not _has_checkpoint(folder):
            shutil.rmtree(folder, ignore_errors=True)  # nothing worth keeping: the run leaves nothing
        elif not new and info["stats"]["steps"] == before["stats"]["steps"]:
            logdir.write_run_info(folder, before)
        elif to_train:
            _save_info(folder, info, "interrupted", error=str(error).splitlines()[0] if str(error) else
                       type(error).__name__)
        # These say what to try themselves: going on from the checkpoint as it is is not it, or they say so.
        if _has_checkpoint(folder) and not isinstance(error, (Diverged, UnreadableCheckpoint, ClusterLost)):
            _add_note(error, f"{folder} keeps its checkpoint at step {info['stats']['steps']:,}: continue with: "
                             f"{_next_command(folder, ())}")
        raise
    phases["train"] = time.perf_counter() - mark
    seconds = _write(catalog, artists.with_vectors(vectors), options, folder, info,
                     OUTPUTS if plots else OUTPUTS[:-1], say)
    phases.update(write=sum(seconds.values()) - seconds.get("plots", 0.0), plots=seconds.get("plots", 0.0))
    # What a run cost, for the scale benchmark and the reader: seconds by phase, and peak memory.
    info.update(phases=phases, peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB
    _save_info(folder, info, "finished")
    return Run(folder)


def _train(catalog, options, folder, info, artists, say, task):
    """Train from the run's last checkpoint (or the start), saving run.json as `training` at the start and at
    each checkpoint; returns (vectors, stats). On a cluster this is the chief."""
    from bands2vec_graph import tf1
    from training import train as train_vectors

    say(f"Training {options.steps:,} steps of {options.batch_size:,} pairs ({format_contexts(options.contexts)}), "
        f"learning rate {options.learning_rate:g}" + (f", {options.concurrent_steps} concurrent steps"
                                                      if options.concurrent_steps > 1 else "")
        + (f", as the {task} of {task.trainers} trainers and {len(task.cluster['ps'])} ps" if task else "")
        + f"; logs in {folder}")
    if task:
        info["cluster"] = task.cluster
    _save_info(folder, info, "training")
    checkpoint = tf1.train.latest_checkpoint(logdir.checkpoint_dir(folder)) if _has_checkpoint(folder) else None
    probe = training_probe(artists, options.valid_size, seed=options.seed)

    def checkpointed(stats):
        info["stats"] = dict(stats)
        _save_info(folder, info, "training")

    return train_vectors(catalog, options, folder, say=say, checkpoint=checkpoint, probe=probe,
                         on_checkpoint=checkpointed, task=task, fingerprint=_shared_fingerprint(catalog, options))


def _saved_vectors(folder, rows):
    try:
        return logdir.read_vectors(folder, rows)
    except logdir.RunError:
        from artist_vectors import checkpoint_embeddings
        return checkpoint_embeddings(folder)


def _write(catalog, vectors, options, folder, info, outputs, say):
    """Write the run's `outputs` (OUTPUTS) in order, saying what each does; returns {output: seconds}. On any
    failure or signal after all steps are trained, run.json says what is missing and the command that
    completes it (`python run.py plot`, or `--resume`), and so does the error."""
    seconds = {}
    try:
        for output in outputs:
            mark = time.perf_counter()
            _WRITERS[output](catalog, vectors, options, folder, info, say)
            seconds[output] = time.perf_counter() - mark
    except BaseException as error:
        if info["stats"]["steps"] >= options.steps:
            missing = [output for output in OUTPUTS if output not in seconds]
            _save_info(folder, info, "incomplete", missing=missing)
            # With its metadata it can be asked questions; before, it is trained but cannot yet.
            message = (f"{folder} is {'usable' if 'metadata' in seconds else 'trained'}, without its "
                       f"{', '.join(missing)}: complete it with: {info['next']}")
            if isinstance(error, KeyboardInterrupt):
                raise RunInterrupted(f"Interrupted while writing the {missing[0]}; {message}", Run(folder)) from None
            _add_note(error, message)
        raise
    return seconds


def _write_vectors(catalog, vectors, options, folder, info, say):
    logdir.write_vectors(folder, vectors.vectors)


def _write_metadata(catalog, vectors, options, folder, info, say):
    k = min(info["clusters"], len(vectors))
    say(f"Clustering {len(vectors):,} artists into {k} with k-means; writing metadata.tsv")
    vectors.clusters = kmeans_clusters(vectors, k, options.seed)
    logdir.write_metadata(folder, catalog.table, vectors.clusters)


def _write_exports(catalog, vectors, options, folder, info, say):
    if len(vectors) <= logdir.EXPORT_MAX:
        say("Writing vectors.tsv and vectors.txt (word2vec format)")
        _export(folder, vectors)


def _write_projector(catalog, vectors, options, folder, info, say):
    rows = _projector_rows(vectors, folder)
    tensorboard_files.write_projector_config(folder, sampled=len(rows) < len(vectors))


def _write_quality(catalog, vectors, options, folder, info, say):
    say(f"Measuring the vectors' quality against random ones on "
        f"{min(len(vectors), quality_sample_size(len(vectors))):,} artists")
    info["quality"] = quality_report(vectors, seed=options.seed)
    if info["stats"]["steps"] >= options.steps:
        tensorboard_files.write_run_summaries(folder, info, options.hparams())


def _write_plots(catalog, vectors, options, folder, info, say):
    _plot(vectors, folder, options.seed, info["stats"]["steps"], say)


_WRITERS = {"vectors": _write_vectors, "metadata": _write_metadata, "exports": _write_exports,
            "projector": _write_projector, "quality": _write_quality, "plots": _write_plots}


def _save_info(folder, info, state, **fields):
    """run.json with the run's state and the command that goes on from it."""
    info.update(state=state, **fields)
    for name in ("missing", "error"):
        if name not in fields:
            info.pop(name, None)
    info["next"] = (_next_command(folder, info.get("missing", ())) if state != "finished" else
                    f"tensorboard --logdir {os.path.dirname(folder) or '.'}")
    logdir.write_run_info(folder, info)


def _next_command(folder, missing):
    """The command that completes a run missing `missing` (all of it continues training, or writes the files
    a trained run lacks; only the plots, `plot`)."""
    command = "plot " if list(missing) == ["plots"] else "--resume "
    return f"python run.py {command}--logdir {os.path.dirname(folder) or '.'} --run {os.path.basename(folder)}"


def _has_checkpoint(folder):
    return os.path.isfile(os.path.join(logdir.checkpoint_dir(folder), "checkpoint"))


def _add_note(error, note):
    if isinstance(error, Exception):
        error.add_note(note)


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

    rows = plots.map_rows(vectors.artists.review_counts)
    say(f"t-SNE of {len(rows):,} artists ({plots.TSNE_ITERATIONS} iterations), then the plots")
    paths = plots.write_plots(vectors, folder, seed, say)
    coordinates = plots.tsne_coordinates(vectors, folder, seed)
    tensorboard_files.write_bookmarks(folder, coordinates, (len(coordinates), vectors.vectors.shape[1]),
                                      sampled=len(coordinates) < len(vectors))
    tensorboard_files.write_summaries(folder, step, [tensorboard_files.image_summary(f"plots/{name}", path)
                                                     for name, path in paths.items()])
    return paths


def _check_at_least_one(option, value):
    if value < 1:
        raise ValueError(f"{option} must be at least 1, not {value}")
