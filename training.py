"""Training the vectors: the session loop of the TensorFlow word2vec tutorial, in one process.

Each step feeds a batch of (target, context) pairs and runs the optimizer; every report step prints
the average loss and the watched artists' nearest neighbours. The loop runs `concurrent_steps`
threads on one session, as the tutorial's word2vec.py does (lock-free updates). A cluster task
trains with the same loop through cluster_training.py, which says how its session and steps differ.
"""
import contextlib
import dataclasses
import os
import secrets
import threading
import time

import numpy as np

import tensorboard_files
from atomic_files import (FOLDER_MODE, TF_TEMPORARY, os_advice, pin, remove_temporaries,
                          through_pin, unpinned)
from bands2vec_graph import build_graph, tf, tf1
from checkpoint_files import UnreadableCheckpoint, readable_checkpoint
from ensemble import combined
from errors import OptionError, RunError
from interrupts import signals_as_a_flag, signals_held
from pair_sampler import PairSampler
from run_folder import check_own_folders, checkpoint_dir
from run_record import RUN_FILE, Stats

# How often a long run saves a checkpoint: a crash or `kill -9` loses at most this much training.
CHECKPOINT_SECONDS = 180


class Diverged(OptionError):
    """The loss went non-finite: the run's variables are lost, its last checkpoint (if any) not.
    The options did it (a rate or a starting scale too big), so it is the library's own error."""

    def __init__(self, step, loss, learning_rate):
        super().__init__(f"training diverged at step {step:,} (loss {loss}) at learning rate "
                         f"{learning_rate:g}; try a lower --learning-rate, "
                         f"such as {learning_rate / 4:.3g}")


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; carries the checkpointed run's vectors and stats."""

    def __init__(self, vectors, stats):
        super().__init__(stats.steps)
        self.vectors, self.stats = vectors, stats


def train_vectors(catalog, options, folder, say=print, checkpoint=None, probe=None,
                  on_checkpoint=None, runtime=None):
    """Train the embeddings, writing events and checkpoints into `folder`; returns (vectors, Stats).

    With `checkpoint`, training continues from it up to `options.steps`. Every CHECKPOINT_SECONDS
    the run is checkpointed and `on_checkpoint(stats)` called; on Ctrl-C (KeyboardInterrupt) it is
    checkpointed where it stands and `Interrupted` raised. At each report step,
    `probe(embeddings, quality)` (quality.training_probe) gives the watched artists' neighbours, for
    TensorBoard's Text tab, and, asked for before the last step, the quality figures for its Scalars
    tab. TensorFlow's errors come out as one-line RunErrors. `runtime` is how this process trains:
    OneProcess(), or a cluster task's.
    """
    runtime = runtime or OneProcess()
    sampler = PairSampler(catalog, options.contexts)
    device, partitioner = runtime.placement()
    with signals_held():
        model = build_graph(len(catalog), options.embedding_size, options.num_sampled,
                            options.learning_rate, decay_steps=options.steps,
                            context_distribution=sampler.context_distribution(),
                            init_scale=options.init_scale, seed=options.seed,
                            tables_in_xla=options.xla_tables, device=device,
                            partitioner=partitioner, ensemble=options.ensemble)
    config = runtime.session_config(tf1.ConfigProto(intra_op_parallelism_threads=options.threads,
                                                    inter_op_parallelism_threads=options.threads))
    session = writer = None
    try:
        session = runtime.open_session(model, config, checkpoint)
        # Raised inside TensorFlow's Python, Ctrl-C could leave its graph's lock held, or its
        # events' queue waiting for ever: it waits until the loop, which stops between steps.
        with signals_held():
            # The graph goes into the events file, for TensorBoard's Graphs tab.
            if runtime.writes:
                check_own_folders(folder)
            # Its file's name ends with a random suffix: TensorFlow opens it following a link, and
            # the time and host in the name are there for anyone to plant a link at beforehand.
            # It is opened through the pinned folder, as the checkpoints are: not in one put in
            # its place.
            writer = (tf1.summary.FileWriter(through_pin(folder), model.graph,
                                             filename_suffix=f".{secrets.token_hex(4)}")
                      if runtime.writes else None)
            loop = runtime.loop(session, model, catalog, options, writer, folder, say, probe,
                                on_checkpoint)
        try:
            loop.run()
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        # The checkpoint is written whole: Ctrl-C now (a second one, say) stops the run after it.
        with signals_as_a_flag() as stopping:
            loop.account()
            vectors = None
            if writer:
                save_checkpoint(session, model, writer, folder, loop.stats.steps)
                vectors = combined(session.run(model.embeddings), options.ensemble)
                writer, closing = None, writer
                closing.close()  # its last events written: a full disk fails here, if not before
            session, closing = None, session
            interrupted = interrupted or stopping.is_set()
            runtime.close(closing, finished=not interrupted)
        interrupted = interrupted or stopping.is_set()
    except tf.errors.OpError as error:
        raise runtime.failed(error, folder) from None
    except Exception as error:  # a full disk is a RuntimeError, a file size limit an IndexError
        if not _events_failed(error, folder):
            raise
        reason = tf_reason(error)
        raise RunError(f"{folder}: cannot write the events ({reason}){os_advice(reason)}") \
            from None
    finally:
        if writer is not None:  # failed: its error is the first one, not a second from closing
            with contextlib.suppress(Exception):
                writer.close()
        if session is not None:
            runtime.close(session, finished=False)
    if interrupted:
        raise Interrupted(vectors, loop.stats)
    return vectors, loop.stats


def _events_failed(error, folder):
    """Whether `error` is TensorFlow's events writer's: it fails in a thread of its own (a full
    disk), then raises an error naming the file (by the pinned folder's path, or the folder's) in
    whatever writes the events next. A worker, writing nothing, has no `folder`."""
    return folder is not None and any(os.path.join(path, "events.out.tfevents") in str(error)
                                      for path in (folder, through_pin(folder)))


def _quiet_events_thread(args, told=threading.excepthook):
    """The events writer's thread ends on its error, which the training thread then raises and
    run.py tells in one line: not its traceback as well."""
    if args.thread is None or args.thread.name != "EventLoggerThread":
        told(args)


threading.excepthook = _quiet_events_thread


class Loop:
    """The steps of one process: `options.concurrent_steps` threads on one session, each drawing its
    own seeded pairs and claiming the steps one by one up to `options.steps`. Thread 0 is the
    caller's, where Ctrl-C lands."""
    trainer = 0  # which trainer of a cluster this process is: its pairs' seed
    who = ""  # what starts its lines of progress

    def __init__(self, session, model, catalog, options, writer, folder, say, probe, on_checkpoint):
        self.session, self.model, self.catalog, self.options = session, model, catalog, options
        self.writer, self.folder, self.say = writer, folder, say
        self.probe, self.on_checkpoint = probe, on_checkpoint
        self.first = self.claimed = self.step = int(session.run(model.global_step))
        self.stats = Stats(steps=self.first, loss=float("nan"))
        self.lock, self.stopping, self.failure = threading.Lock(), threading.Event(), None
        self.interrupted = threading.Event()  # by Ctrl-C or SIGTERM, while run() lasts
        self.losses, self.reported = [], self.first
        # One callable for the step: session.run would parse the same fetches and feeds every step.
        self.step_of_pairs = session.make_callable(self._fetches(),
                                                   [model.train_inputs, model.train_labels])
        self.started = self.saved = time.perf_counter()
        # The graph's scalars, described, and the pairs a second.
        self.scalars = tensorboard_files.TrainingScalars(options, self.first)

    def _fetches(self):
        """A step's fetches, the same every step: others would make XLA compile a second program,
        which costs more than the summary ops. Writing events is the cost worth spacing out."""
        model = self.model
        return [model.optimizer, model.loss] + ([model.summary] if self.writer else [])

    def run(self):
        """The steps, on this thread and concurrent_steps - 1 others. Ctrl-C or SIGTERM stops them
        between two steps, then raises KeyboardInterrupt: raised inside TensorFlow's Python (its
        events' queue), it could leave the events' writer waiting for ever."""
        with signals_as_a_flag() as self.interrupted:
            threads = [threading.Thread(target=self._guarded, args=(number,), daemon=True)
                       for number in range(1, self.options.concurrent_steps)]
            for thread in threads:
                thread.start()
            try:
                self._steps(0)
            finally:
                self.stopping.set()
                for thread in threads:
                    thread.join()
        if self.failure:
            raise self.failure
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def _guarded(self, number):
        try:
            self._steps(number)
        except BaseException as error:  # to the caller's thread, which raises it
            self.failure = self.failure or error
            self.stopping.set()

    def _steps(self, number):
        """Thread `number`'s steps, in batches it draws `steps_per_draw` at a time. Its pairs are
        seeded by the run's seed and first step (a resumed run draws new ones) and, past the first
        thread of the first trainer, by those numbers: one thread of one process
        draws as the loop did before threads."""
        options = self.options
        sampler = PairSampler(self.catalog, options.contexts)
        sampler.rng = np.random.default_rng(
            [options.seed, self.first] + ([self.trainer, number] if self.trainer or number else []))
        pairs = options.batch_size * options.ensemble  # every member its own batch
        while True:
            inputs, labels = sampler.batches(pairs, self._draws())
            for batch_inputs, batch_labels in zip(inputs, labels):
                step = self._claim()
                if step is None:
                    return
                fetched = self.step_of_pairs(batch_inputs, batch_labels)
                step, loss_value = self._step_of(step, fetched), fetched[1]
                if not np.isfinite(loss_value):
                    # Stop before anything saves the broken variables; the caller cleans up.
                    raise Diverged(step, loss_value, options.learning_rate)
                if self.writer and (step % options.summary_every == 0 or step >= options.steps):
                    for summary in self.scalars.at(step, fetched[2]):
                        self.writer.add_summary(summary, step)
                self.losses.append(loss_value)
                self._after(step)
                if number == 0 and self.writer and step < options.steps \
                        and time.perf_counter() - self.saved >= CHECKPOINT_SECONDS:
                    self._checkpoint(step)

    def _draws(self):
        """How many batches to draw next: at most the steps left, so the draws are the steps'."""
        return max(1, min(self.options.steps_per_draw, self.options.steps - self.claimed))

    def _claim(self):
        """The next step's number, or None when none are left (or the run is stopping)."""
        with self.lock:
            if self.stopping.is_set() or self.interrupted.is_set() or self._done():
                return None
            self.claimed += 1
            return self.claimed

    def _done(self):
        return self.claimed >= self.options.steps

    def _step_of(self, claimed, fetched):
        """The run's step once a claimed step has run."""
        return claimed

    def _checkpoint(self, step):
        """A checkpoint and run.json saying so, whole: Ctrl-C meanwhile stops the run after."""
        with signals_held():
            mark = time.perf_counter()
            save_checkpoint(self.session, self.model, self.writer, self.folder, step)
            self.account()
            self.stats.checkpoints += 1
            self.stats.checkpoint_seconds += time.perf_counter() - mark
            if self.on_checkpoint:
                self.on_checkpoint(dataclasses.replace(self.stats))
            self.saved = time.perf_counter()

    def _after(self, step):
        """The report (progress, neighbours, quality), once per report step, and at the end."""
        options = self.options
        with self.lock:
            self.step = max(self.step, step)
            last = step >= options.steps
            if step // options.report_every <= self.reported // options.report_every and not last:
                return
            if last and self.reported >= options.steps:
                return
            self.reported, losses, self.losses = step, self.losses, []
        loss = float(np.mean(losses)) if losses else float("nan")
        self.stats.loss = loss
        _progress(self.say, min(step, options.steps), options.steps, loss, self.started, self.who)
        if self.writer:
            neighbours = _report(self.session, self.model, self.writer, step, self.probe,
                                 quality=not last, members=options.ensemble)
            if step % (options.report_every * 4) == 0 or last:
                for name, nearest in neighbours:
                    self.say(f"  nearest to {name}: {', '.join(nearest)}")

    def account(self):
        """The stats of the run so far: its step (the session's counts what was applied: an
        interrupt can fall between it and ours), the pairs this process trained on, the seconds."""
        step = int(self.session.run(self.model.global_step))
        self.stats.steps = step
        self.stats.pairs = (step - self.first) * self.options.batch_size * self.options.ensemble
        self.stats.seconds = time.perf_counter() - self.started


class OneProcess:
    """How one process trains: its own session, XLA over the whole step, and it writes the run."""
    writes = True
    loop = Loop

    def placement(self):
        return None, None

    def session_config(self, config):
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
        return config

    def open_session(self, model, config, checkpoint):
        with signals_held():
            session = tf1.Session(graph=model.graph, config=config)
            session.run(model.init)
            if checkpoint:
                # Read through descriptors checked as regular files: not a file swapped in since.
                with readable_checkpoint(checkpoint) as prefix:
                    restore(session, model, checkpoint, prefix)
        return session

    def failed(self, error, folder):
        reason = tf_reason(error)
        return RunError(f"{folder}: training stopped: {reason}{os_advice(reason)}")

    def close(self, session, finished):
        session.close()


def restore(session, model, checkpoint, prefix=None):
    """The variables of the checkpoint at `checkpoint`, read by `prefix` where that is given."""
    try:
        model.saver.restore(session, prefix or checkpoint)
    except (tf.errors.OpError, ValueError) as error:
        unfit = _unfit_variable(model, prefix or checkpoint)
        if unfit:  # a good checkpoint, and a graph built from options that are not the run's
            run_file = os.path.join(os.path.dirname(os.path.dirname(checkpoint)), RUN_FILE)
            raise UnreadableCheckpoint(f"{run_file}: its options do not fit the run's checkpoint "
                                       f"({unfit}); the file is damaged or another run's: "
                                       f"put back the run's own") from None
        reason = tf_reason(error).replace(prefix or checkpoint, checkpoint)  # the run's own path
        raise UnreadableCheckpoint(f"{checkpoint}: unreadable checkpoint ({reason}); "
                                   f"the run cannot continue from it: "
                                   f"train it anew with --overwrite") from None


def _unfit_variable(model, checkpoint):
    """How a variable of the graph differs from the checkpoint's (missing there, or of another
    shape), or None where all fit or the checkpoint cannot say."""
    try:
        saved = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError):
        return None
    for variable in model.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES):
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in saved:
            return f"it holds no {name}"
        if list(saved[name]) != shape:
            return f"its {name} is {list(saved[name])}, not {shape}"
    return None


def save_checkpoint(session, model, writer, folder, step):
    """A checkpoint of the variables at `step` (only the latest is kept), with the events so far.
    TensorFlow writes it by path: a path through the pinned checkpoints/ (its checkpoint state
    file's paths relative, save_relative_paths) lands in it even if it is renamed after the check,
    or a link is put at its name."""
    check_own_folders(folder)
    try:
        os.makedirs(checkpoint_dir(folder), FOLDER_MODE, exist_ok=True)
        pin(checkpoint_dir(folder))
        # No .meta: the graph is built anew from the code, and a .meta that failed to write (a
        # full disk) would fail the save after the checkpoint state already named its step.
        model.saver.save(session, through_pin(os.path.join(checkpoint_dir(folder), "model.ckpt")),
                         global_step=step, write_meta_graph=False)
        writer.flush()
    except (tf.errors.OpError, ValueError, OSError) as error:
        remove_temporaries(checkpoint_dir(folder), TF_TEMPORARY)
        reason = tf_reason(error)
        raise RunError(f"{checkpoint_dir(folder)}: cannot write the checkpoint ({reason})"
                       f"{os_advice(reason)}") from None


# The lines of a TensorFlow error that say where, not what: its graph's traceback and its origin.
_WHERE = ("Graph execution error", "Detected at node", "File ", "Node: ", "From /job:", "[[",
          "=====", "Additional GRPC", "Hint: ", ":UNKNOWN:")


def tf_reason(error):
    """The line of a TensorFlow error that says what went wrong, past the graph's traceback: for a
    failed write, its file and the system's word (`model.ckpt-20...; No space left on device`)."""
    text = unpinned(getattr(error, "message", None) or str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(_WHERE)),
                lines[0] if lines else type(error).__name__)


def _report(session, model, writer, step, probe, quality, members):
    """The watched artists' nearest neighbours [(name, [names])] by `probe` (of the vectors as the
    run stores them), also written as a text summary, and with `quality` the quality scalars."""
    if probe is None:
        return []
    neighbours, figures = probe(combined(session.run(model.embeddings), members), quality)
    markdown = tensorboard_files.neighbours_markdown(neighbours)
    summaries = [tensorboard_files.text_summary("neighbours", markdown)]
    if figures:
        summaries.append(tensorboard_files.quality_summary(figures))
    for summary in summaries:
        writer.add_summary(summary.SerializeToString(), step)
    return neighbours


def _progress(say, step, steps, loss, started, who=""):
    width = 24
    done = int(width * step / steps)
    elapsed = time.perf_counter() - started
    say(f"{who}[{'#' * done}{'.' * (width - done)}] step {step:>{len(str(steps))}}/{steps}  "
        f"average loss {loss:7.3f}  {elapsed:5.1f}s")
