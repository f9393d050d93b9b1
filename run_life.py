"""A run's life: a new run or a resumed one is trained and its outputs written, under a guard that
keeps run.json's state true at every moment (docs/runs.md):

- `training`: from the start, and at each checkpoint; a run killed then is continued by `--resume`;
- `interrupted`: stopped during training; its checkpoint and files are where it stood;
- `incomplete`: trained, some outputs missing (`missing`);
- `finished`.

A new run that fails before its first checkpoint leaves no folder. On a TensorFlow cluster the chief
lives this life; a worker trains with it and a ps task serves it (cluster_training.py).
"""
import contextlib
import dataclasses
import importlib
import os
import resource
import shutil
import tempfile
import time
import warnings

import numpy as np

import run_folder
import run_record
import side_process
from artist_vectors import ArtistVectors
from catalog import Catalog
from cluster_config import Task
from contexts import format_contexts
from data_utils import DEMO_SOURCE, KAGGLE_URL, load_catalog
from errors import (Bands2VecError, ClusterError, ClusterLost, DataError, RunError,
                    RunInterrupted)
from interrupts import signals_as_a_flag
from options import MIN_ARTISTS, TrainOptions
from quality import training_probe
from run_outputs import OUTPUTS, Writing, write_output
from run_record import RunRecord

PHASES = ("load", "train", "write", "plots")  # what run.json's phases time, in order


def new_run(data, options, logs, name, overwrite, kmeans_clusters, plots, include_pseudo_artists,
            say):
    """Train a new run and write its folder; returns (the folder, its record as written), None for a
    cluster's worker or ps task. Everything that can refuse the input does so before the folder is
    made."""
    task = Task.from_environment()
    if task and task.job == "ps":
        return _serve(task, say)
    mark = time.perf_counter()
    catalog = data if isinstance(data, Catalog) else load_catalog(data, include_pseudo_artists)
    load_seconds = time.perf_counter() - mark
    _say_catalog(catalog, say)
    if len(catalog) < MIN_ARTISTS:
        raise DataError(f"{catalog.source}: {len(catalog)} artist{'s' * (len(catalog) != 1)} "
                        f"with a score; a run needs at least {MIN_ARTISTS}")
    options = _resolved(options or TrainOptions(), catalog, task)
    for kind in options.contexts:
        catalog.context_groups(kind)  # a missing table fails now, not once the run folder exists
    if task and task.job == "worker":
        return _imported("cluster_training").work(catalog, options, task, say)
    folder = run_folder.run_path(logs, name)
    with side_process.started() as side:  # its imports run beside TensorFlow's
        # TensorFlow takes seconds to load: load it before the folder, so Ctrl-C then leaves none.
        _imported("training")
        if name is None:  # named by the time again: a run started meanwhile may have taken it
            folder = run_folder.run_path(logs)
        with run_folder.writing(folder):
            run_folder.make_run_folder(folder, overwrite)
            data = (catalog.source if catalog.source == DEMO_SOURCE
                    else os.path.abspath(catalog.source))
            record = RunRecord(data=data, artists=len(catalog), options=options,
                               data_fingerprint=catalog.fingerprint,
                               include_pseudo_artists=catalog.include_pseudo_artists,
                               kmeans_clusters=kmeans_clusters)
            return _as_written(_guarded(catalog, record, options, folder, plots, new=True,
                                        say=say, task=task, load_seconds=load_seconds,
                                        side=side))


def resume_run(logs, name, steps, data, plots, concurrent_steps, say):
    """Continue a run with its own options (only `steps` may change, and how it steps) on the same
    data (`data` if it has moved): from its last checkpoint, or from the start if it stopped before
    its first; or, with all its steps trained, write the outputs it lacks; returns (the folder,
    its record as written)."""
    task = Task.from_environment()
    if task and task.job == "ps":
        return _serve(task, say)
    if task and task.job == "worker":
        raise ClusterError(f"{task}: --resume is the chief's; "
                           f"restart a worker with the command it was started with")
    folder = run_folder.find_run(logs, name)
    with run_folder.writing(folder), side_process.started() as side:
        record = run_record.read(folder)
        _check_steps(folder, record, steps)
        _check_writable(folder)
        mark = time.perf_counter()
        catalog = load_catalog(record.data if data is None else data,
                               record.include_pseudo_artists)
        load_seconds = time.perf_counter() - mark
        _say_catalog(catalog, say)
        _check_same_data(folder, record, catalog)
        options = dataclasses.replace(record.options, xla_tables=None,
                                      concurrent_steps=concurrent_steps,
                                      steps=record.options.steps if steps is None else steps)
        options = _resolved(options, catalog, task)
        if record.tf_cluster and not task and record.state in ("training", "interrupted"):
            warnings.warn(_alone(folder), stacklevel=2)
        _imported("training")
        return _as_written(_guarded(catalog, record, options, folder, plots, new=False, say=say,
                                    task=task, load_seconds=load_seconds, side=side))


def _as_written(folder):
    """(`folder`, its run.json) read while this process still holds the run: once it lets go,
    another process's --overwrite may put a run of its own there."""
    return folder, run_record.read(folder)


def _alone(folder):
    """The note for a cluster's run resumed as one process: its other tasks would wait for a chief
    that never comes (a ps task for ever)."""
    return (f"{folder} was trained on a TensorFlow cluster and goes on here as one process (no "
            f"TF_CONFIG): stop the cluster's ps and worker tasks (its run.json's `tf_cluster`), "
            f"which would wait for it")


def _check_steps(folder, record, steps):
    """A RunError unless the run has steps left to train up to `steps` (None: its own), or is
    incomplete (or interrupted at or past its last step), with the files it lacks to write."""
    trained, planned = record.stats.steps, record.options.steps if steps is None else steps
    unfinished = record.state in ("incomplete", "interrupted")
    # A cluster's trainers overshoot its steps by a few: its own --resume writes the files too.
    if trained < planned or (unfinished and trained >= planned and
                             (steps is None or trained == planned)):
        return
    if trained > planned and steps is not None:
        go_on = (f"leave --steps out to go on to its {record.options.steps:,}, or "
                 if trained < record.options.steps else
                 "leave --steps out to write the files it lacks, or " if unfinished else "")
        raise RunError(f"{folder} has already trained {trained:,} steps, more than --steps "
                       f"{planned:,}; {go_on}pass --steps N above {trained:,} to train on")
    raise RunError(f"{folder} has trained all its {trained:,} steps; "
                   f"pass --steps N above {trained:,} to train on")


def _check_writable(folder):
    """A RunError unless the run's folder and its checkpoints/ can be written in: else --resume
    would train, then fail to save its first checkpoint, and the training would be lost."""
    for path in (folder, run_folder.checkpoint_dir(folder)):
        try:
            tempfile.TemporaryFile(dir=path).close()
        except FileNotFoundError:  # no checkpoints/ yet: made in the folder
            pass
        except OSError as error:
            raise RunError(f"{path}: cannot be written ({error.strerror or error}), so --resume "
                           f"could not save what it trains; check who may write there") from None


def _resolved(options, catalog, task):
    """`options` filled in for `catalog` and the cluster, and checked."""
    trainers, ps_tasks = (task.trainers, task.ps_tasks) if task else (1, 1)
    options = options.resolved(catalog, trainers, ps_tasks)
    options.check(len(catalog), ps_tasks)
    return options


def _serve(task, say):
    return _imported("cluster_training").serve(task, say)


# The address space TensorFlow's libraries and threads take to train on 2 cores (measured: 2.4 GiB
# aborted in its C++, creating a thread, with no word Python could catch; 2.6 GiB trained).
MIN_ADDRESS_SPACE = 5 * 2**29


def _imported(module):
    """`module`, which loads TensorFlow: where TensorFlow cannot load (its libraries do not fit
    a memory limit, `ulimit -v`, say), a Bands2VecError in one line, not the import's traceback."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY and limit < MIN_ADDRESS_SPACE:
        raise Bands2VecError(f"the memory limit (`ulimit -v`) is {limit // 2**20:,} MB, and "
                             f"training with TensorFlow takes about {MIN_ADDRESS_SPACE / 2**30:g} "
                             f"GB of address space: raise it")
    try:
        return importlib.import_module(module)
    except (ImportError, MemoryError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise Bands2VecError(f"TensorFlow cannot be loaded ({reason}); training needs it: check "
                             f"the memory limit (`ulimit -v`) and that requirements.txt is "
                             f"installed") from None


def _check_same_data(folder, record, catalog):
    if record.data_fingerprint is not None:
        same = record.data_fingerprint == catalog.fingerprint
    else:  # a run from before the data's fingerprint was saved: its artists, in order
        import metadata
        same = (metadata.read_columns(folder)["artist"]
                == [metadata.tsv_field(name) for name in catalog.names])
    if not same:
        raise RunError(f"{folder} was trained on other data ({record.artists:,} artists, from "
                       f"{record.data}) than {catalog.source} ({len(catalog):,} artists)")


def _guarded(catalog, record, options, folder, plots, new, say, side, task=None,
             load_seconds=0.0):
    """Train (unless all steps are trained) and write every output of the run, keeping run.json's
    state true; returns the folder."""
    from checkpoint_files import UnreadableCheckpoint
    from training import Diverged, Interrupted

    before = record.stats.steps  # a resumption that gets nowhere leaves run.json as it was
    record.options = options
    to_train = record.stats.steps < options.steps
    try:
        mark = time.perf_counter()
        # The artists, their vectors (a column a member) to come from training.
        artists = ArtistVectors(np.zeros((len(catalog), options.ensemble), np.float32),
                                catalog.facts, members=options.ensemble)
        phases = {"load": load_seconds + time.perf_counter() - mark}  # the catalog and its facts
        mark = time.perf_counter()
        checkpoint = None if new or not to_train else _checkpoint_to_resume(folder, record, say)
        to_train = record.stats.steps < options.steps  # the checkpoint may be ahead of run.json
        if to_train:
            vectors, record.stats = _train(catalog, record, folder, artists, say, task, new,
                                           checkpoint)
        else:
            say(f"{folder} has trained all its {options.steps:,} steps: writing the files it lacks")
            record.stats = dataclasses.replace(record.stats, part_from=record.stats.steps,
                                               part_seconds=0.0)  # this part trains nothing
            vectors = _saved_vectors(folder, options, len(catalog), ahead=checkpoint is not None)
    except Interrupted as stop:
        record.stats = stop.stats
        with signals_as_a_flag():  # a second Ctrl-C does not stop run.json from saying where
            _save(folder, record, "interrupted")
        message = (f"Interrupted at step {stop.stats.steps:,}: checkpoint saved in {folder}; "
                   f"continue with: {record.next}")
        try:  # the files of the vectors where training stood, to ask and to look at meanwhile
            _write(catalog, artists.with_vectors(stop.vectors), record, folder, OUTPUTS[:-1], say,
                   side)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: the checkpoint is what matters
        except Exception as error:
            error.add_note(message)
            raise
        raise RunInterrupted(message, folder) from None
    except BaseException as error:
        with signals_as_a_flag():  # a second Ctrl-C must not cut what run.json says short
            kept = _after_failure(folder, record, new, before, to_train, error)
        if isinstance(error, KeyboardInterrupt):
            raise RunInterrupted(_interrupted_message(folder, record, new, kept,
                                                      record.stats.steps != before),
                                 folder if kept else None) from None
        # Where its message names the folder (a full disk there, say), or a cluster lost the
        # training, it says the folder is gone.
        if kept is False and not os.path.lexists(folder) and (
                folder in str(error) or isinstance(error, ClusterLost)):
            error.add_note(f"{folder} is removed: it had no checkpoint, so nothing was kept")
        if kept is None:
            error.add_note(_changed_under(folder))
        # These say what to try themselves: resuming from the checkpoint as it is would not help.
        if kept and isinstance(error, Exception) and \
                not isinstance(error, (Diverged, UnreadableCheckpoint)):
            go_on = _go_on(folder, options)
            if not run_folder.has_checkpoint(folder):  # a resumption of a run cut short early
                restart = "restart the ps tasks, then " if isinstance(error, ClusterLost) else ""
                error.add_note(f"{folder} has no checkpoint yet: {restart}continue with: {go_on}, "
                               f"which trains it from step 0")
            elif not isinstance(error, ClusterLost):  # its message says what the run keeps
                error.add_note(f"{folder} keeps its checkpoint at step {record.stats.steps:,}: "
                               f"continue with: {go_on}")
        raise
    phases["train"] = time.perf_counter() - mark
    if to_train:  # trained, nothing written yet: what kill -9 leaves from here, --resume completes
        # On a full disk the writes below fail too, and say what is left: --resume finds the
        # checkpoint's step where run.json could not say it.
        with contextlib.suppress(OSError):
            _save(folder, record, "incomplete", missing=list(OUTPUTS))
    # A run trained no further keeps the files it has whole, whatever this part fails to write.
    whole = ([output for output in OUTPUTS if output not in (record.missing or ())]
             if record.state in ("incomplete", "finished") else [])
    seconds = _write(catalog, artists.with_vectors(vectors), record, folder,
                     OUTPUTS if plots else OUTPUTS[:-1], say, side, whole)
    phases.update(write=sum(seconds.values()) - seconds.get("plots", 0.0),
                  plots=seconds.get("plots", 0.0))
    # What a run cost, for the scale benchmark and the reader: seconds by phase, and peak memory,
    # this process's and its side process's added.
    record.phases = phases
    record.peak_memory_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                             + side.peak_memory_mb())
    _save(folder, record, "finished")
    return folder


def _go_on(folder, options):
    """The command that goes on with the run as asked: run.json's, with the --steps asked where
    run.json, left as it was by a resumption that got nowhere, counts others."""
    command = run_record.next_command(folder)
    with contextlib.suppress(RunError):
        if run_record.read(folder).options.steps != options.steps:
            command += f" --steps {options.steps}"
    return command


def _after_failure(folder, record, new, before, to_train, error):
    """What a run keeps when training or loading its vectors failed: a new run without a
    checkpoint is removed; a resumed one that got nowhere has had nothing written; one that
    trained on is saved as interrupted. Returns whether the folder is kept: None where it is no
    longer the run's own, and left as it is."""
    if new and not run_folder.has_checkpoint(folder):
        try:
            run_folder.check_own_folders(folder)
        except RunError:
            return None  # not this run's folder any more (moved, a link put in it): left as it is
        shutil.rmtree(folder, ignore_errors=True)  # nothing worth keeping: leave nothing
        return False
    if to_train and record.stats.steps != before:
        # The disk that failed the run may fail this too: --resume finds the checkpoint's step.
        with contextlib.suppress(OSError):
            _save(folder, record, "interrupted",
                  error=None if isinstance(error, KeyboardInterrupt) else
                  str(error).splitlines()[0] if str(error) else type(error).__name__)
    return True


def _changed_under(folder):
    return (f"{folder} changed as the run trained (moved, or a link put in it), so the run wrote "
            f"no more there and kept nothing; what is there is left as it is (its run.json may "
            f"say `training`): remove it")


def _interrupted_message(folder, record, new, kept, trained):
    """What Ctrl-C or SIGTERM outside the training loop (building the graph, opening the
    session, reading the vectors) leaves, where this process `trained` some steps or none."""
    if kept is None:
        return f"Interrupted before the first checkpoint: {_changed_under(folder)}"
    if not kept:
        return f"Interrupted before the first checkpoint: {folder} is removed, nothing was kept"
    if new or trained:  # run.json says how to go on: its `next`
        return (f"Interrupted at step {record.stats.steps:,}: {folder} keeps its checkpoint; "
                f"continue with: {run_record.next_command(folder)}")
    return f"Interrupted before training went on: {folder} is as it was"


def _train(catalog, record, folder, artists, say, task, new, checkpoint):
    """Train from `checkpoint` (or the start), saving run.json as `training` at the start of a
    new run and at each checkpoint (a resumed one keeps its state until its first); returns
    (vectors, Stats). On a cluster this is the chief."""
    from training import Interrupted, train_vectors

    options = record.options
    say(f"Training {options.steps:,} steps of {options.batch_size:,} pairs "
        f"({format_contexts(options.contexts)}), learning rate {options.learning_rate:g}"
        + (f", {options.concurrent_steps} concurrent steps" if options.concurrent_steps > 1 else "")
        + (f", as the {task} of {task.trainers} trainers and {task.ps_tasks} ps" if task else "")
        + f"; logs in {folder}")
    runtime = None
    if task:
        import cluster_training
        record.tf_cluster = task.cluster
        runtime = cluster_training.Trainer(task, catalog, options)
    if new:
        _save(folder, record, "training")
    probe = training_probe(artists, options.valid_size, seed=options.seed)

    earlier = record.stats  # the parts of the run before this one, if it was resumed
    step_pairs = options.batch_size * options.ensemble  # every member of an ensemble its own batch

    def checkpointed(stats):
        record.stats = earlier.of_run(stats, step_pairs)
        _save(folder, record, "training")

    try:
        vectors, stats = train_vectors(catalog, options, folder, say=say, checkpoint=checkpoint,
                                       probe=probe, on_checkpoint=checkpointed, runtime=runtime)
    except Interrupted as stop:
        stop.stats = earlier.of_run(stop.stats, step_pairs)
        raise
    return vectors, earlier.of_run(stats, step_pairs)


def _checkpoint_to_resume(folder, record, say):
    """The checkpoint a resumed run goes on from; None, said, where it stopped before its first.
    One that run.json counts steps of but that cannot be found is an UnreadableCheckpoint: never
    a silent start from step 0. One ahead of run.json's count (saved as the run stopped) sets it."""
    from checkpoint_files import UnreadableCheckpoint, checkpoint_step, latest_checkpoint

    checkpoint = latest_checkpoint(folder)
    if checkpoint is None and record.stats.steps:
        index = os.path.join(run_folder.checkpoint_dir(folder), "checkpoint")
        raise UnreadableCheckpoint(f"{index}: missing, though run.json says the run was "
                                   f"checkpointed at step {record.stats.steps:,}; put it back, "
                                   f"or train the run anew with --overwrite")
    if checkpoint is None:
        say(f"{folder} stopped before its first checkpoint: training from step 0")
    elif (step := checkpoint_step(checkpoint)) < record.stats.steps:  # saved before run.json
        raise UnreadableCheckpoint(f"{checkpoint}: a checkpoint of step {step:,}, though run.json "
                                   f"says the run was checkpointed at step "
                                   f"{record.stats.steps:,}; put back the later one, or train "
                                   f"the run anew with --overwrite")
    elif step > record.stats.steps:  # saved as the run stopped, before run.json could say so
        say(f"{folder}: its checkpoint is of step {step:,}, though run.json counted "
            f"{record.stats.steps:,}: going on from step {step:,}")
        options = record.options
        record.stats = dataclasses.replace(
            record.stats, steps=step, pairs=step * options.batch_size * options.ensemble)
    return checkpoint


def _saved_vectors(folder, options, rows, ahead=False):
    """The vectors of a run whose steps are all trained: vectors.npy's, or its checkpoint's where
    that cannot be read or the checkpoint is `ahead` of run.json (vectors.npy is then older),
    checked against the run's artists and options: a checkpoint put there may be another run's."""
    import vector_files

    if not ahead:
        with contextlib.suppress(RunError):
            return vector_files.read_vectors(folder, rows)
    source = run_folder.checkpoint_dir(folder)
    vectors = vector_files.checked_vectors(vector_files.checkpoint_vectors(folder), rows, source)
    if vectors.shape[1] != options.embedding_size * options.ensemble:
        raise RunError(f"{source}: vectors of {vectors.shape[1]:,} numbers, where the run's "
                       f"options give {options.embedding_size * options.ensemble:,}: not this "
                       f"run's")
    return vectors


def _write(catalog, artist_vectors, record, folder, outputs, say, side, whole=()):
    """Write the run's `outputs` in order; returns {output: seconds}. Once all steps are trained,
    run.json says after each output what is still missing (of those not `whole` already) and how
    to complete it, and so does the error of any failure or signal."""
    seconds = {}
    trained = record.stats.steps >= record.options.steps
    writing = Writing(catalog, artist_vectors, record.options, folder, record, say, outputs,
                      side)
    try:
        with side.sharing_cores():
            for output in outputs:
                mark = time.perf_counter()
                write_output(output, writing)
                seconds[output] = time.perf_counter() - mark
                missing = _missing(seconds, whole)
                if trained and missing and output != outputs[-1]:
                    _save(folder, record, "incomplete", missing=missing)
    except BaseException as error:
        missing = _missing(seconds, whole)
        if trained and missing:  # else what it has is whole, as it was
            with signals_as_a_flag():  # a second Ctrl-C must not cut what run.json says short
                # On a full disk run.json keeps its last state, which --resume completes too.
                with contextlib.suppress(OSError):
                    _save(folder, record, "incomplete", missing=missing)
            # With its metadata it can be asked questions; before, it is trained but cannot yet.
            message = (f"{folder} is {'trained' if 'metadata' in missing else 'usable'}, "
                       f"without its {', '.join(missing)}: complete it with: {record.next}")
            if isinstance(error, KeyboardInterrupt):
                stopped = next((output for output in outputs if output not in seconds), missing[0])
                raise RunInterrupted(f"Interrupted while writing the {stopped}; {message}",
                                     folder) from None
            if isinstance(error, Exception):
                error.add_note(message)
        raise
    return seconds


def _missing(written, whole):
    return [output for output in OUTPUTS if output not in written and output not in whole]


def _save(folder, record, state, missing=None, error=None):
    run_folder.check_own_folders(folder)
    record.set_state(folder, state, missing, error)
    run_record.write(folder, record)


def _say_catalog(catalog, say):
    if catalog.source == DEMO_SOURCE:
        say(f"Using the built-in demo catalog ({len(catalog)} fictional artists). "
            f"For the real thing, download database.sqlite from {KAGGLE_URL} into data/ "
            f"or pass --data PATH.")
    else:
        say(f"Loaded {len(catalog):,} artists, {catalog.review_count:,} reviews "
            f"from {catalog.source}")
    if catalog.left_out:
        names = ", ".join(f"{name!r} ({count:,} review{'s' * (count != 1)})"
                          for name, count in sorted(catalog.left_out.items()))
        say(f"Left out compilations, not artists: {names}; --include-pseudo-artists keeps them")
    if catalog.dropped_scores:
        say(f"Skipped {catalog.dropped_scores:,} reviews whose score is missing or outside 0-10")
