"""Training Bands2Vec: the session loop of the TensorFlow word2vec tutorial, and the run's TensorBoard events.

The options it takes (bands2vec.TrainOptions) and what is done with the vectors are the library's; this
module is the loop that turns a catalog's pairs into vectors, and what it writes while it runs. The loop runs
`concurrent_steps` threads on one session, as the tutorial's word2vec.py does (lock-free updates), and, given
a cluster task (cluster.py), trains against the parameter servers with the other tasks.
"""
import os
import threading
import time

import numpy as np

import logdir
import tensorboard_files
from bands2vec_graph import build_graph, tf, tf1
from data_utils import PairSampler

# A long run saves a checkpoint this often, so that a crash, `kill -9` or a power cut loses at most this much
# training: each save writes the two artists x 64 tables (0.5 GB at a million artists, about 2 s here).
CHECKPOINT_SECONDS = 180
# The errors of a session whose cluster has lost a task.
LOST = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
        tf.errors.CancelledError)


class Diverged(ValueError):
    """The loss went non-finite: the run's variables are lost, its last checkpoint (if any) is not."""

    def __init__(self, step, loss, learning_rate):
        super().__init__(f"training diverged at step {step:,} (loss {loss}) at learning rate {learning_rate:g}; "
                         f"try a lower --learning-rate, such as {learning_rate / 4:.3g}")


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; the run was checkpointed with these vectors and stats."""

    def __init__(self, vectors, stats):
        super().__init__(stats["steps"])
        self.vectors, self.stats = vectors, stats


class UnreadableCheckpoint(logdir.RunError):
    """The checkpoint to continue from cannot be read: the run cannot go on from it."""


def train(catalog, options, run_dir, say=print, checkpoint=None, probe=None, on_checkpoint=None, task=None,
          fingerprint=None):
    """Train the embeddings, writing events and checkpoints into `run_dir`; returns (vectors, stats).

    With `checkpoint`, training continues from it up to `options.steps`. Every CHECKPOINT_SECONDS the run
    is checkpointed and `on_checkpoint(stats)` called; on Ctrl-C (KeyboardInterrupt) it is checkpointed
    where it stands and `Interrupted` raised. At each report step, `probe(embeddings, quality)`
    (artist_vectors.training_probe) gives the watched artists' neighbours, for TensorBoard's Text tab, and,
    asked for before the last step (whose full figures the caller has), the quality figures
    {"genre": ..., "score": ...} for its Scalars tab. TensorFlow's errors come out as one-line RunErrors.

    With `task` (a cluster.Task), this process is one trainer of a cluster, counting the run's steps
    together: the chief, which writes `run_dir` as one process does, or a worker, which writes nothing and
    returns (None, stats). `fingerprint` says the data and options, which every task must share.
    """
    sampler = PairSampler(catalog, options.contexts)
    device, partitioner = task.placement() if task else (None, None)
    model = build_graph(len(catalog), options.embedding_size, options.num_sampled,
                        options.learning_rate, decay_steps=options.steps,
                        context_distribution=sampler.context_distribution(),
                        init_scale=options.init_scale, seed=options.seed,
                        tables_in_xla=options.xla_tables, device=device, partitioner=partitioner)
    config = tf1.ConfigProto(intra_op_parallelism_threads=options.threads,
                             inter_op_parallelism_threads=options.threads)
    if task is None:
        # Not on a cluster: the rows of tables split across ps tasks come in shapes that change every step,
        # and XLA would compile anew for each (2 ps tasks: 96 s for the full data's steps, against 17 with one).
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    writes = task is None or task.job == "chief"
    session = writer = shared = None
    try:
        session, shared = _session(model, config, task, checkpoint, fingerprint)
        # The graph goes into the events file, for TensorBoard's Graphs tab.
        writer = tf1.summary.FileWriter(run_dir, model.graph) if writes else None
        loop = _Loop(session, model, catalog, options, writer, run_dir, say, probe, on_checkpoint, task)
        try:
            loop.run()
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        loop.account()
        vectors = None
        if writes:
            _save(session, model, writer, run_dir, loop.stats["steps"])
            vectors = session.run(model.embeddings)
    except LOST as error:
        if task is None:
            raise
        _ABANDONED.append(session)  # closing it would hang: the process ends without closing it
        raise task.lost(error, _checkpoint_step(run_dir) if writes else None) from None
    except tf.errors.OpError as error:
        reason = tf_reason(error)
        raise logdir.RunError(f"{run_dir or task}: training stopped: {reason}{logdir.os_advice(reason)}") from None
    finally:
        if writer is not None:
            writer.close()
        if session is not None and session not in _ABANDONED:
            if shared:  # done or failed, this trainer has stopped: the ps tasks are not to wait for it
                shared.say_done(session)
            session.close()
    if interrupted:
        raise Interrupted(vectors, loop.stats)
    return vectors, loop.stats


_ABANDONED = []  # sessions of a cluster that lost a task: TensorFlow would hang closing them


def _session(model, config, task, checkpoint, fingerprint):
    """The session, its variables initialised (or restored from `checkpoint`), and the ops shared with the
    cluster's other tasks (None for one process)."""
    if task is None:
        session = tf1.Session(graph=model.graph, config=config)
        session.run(model.init)
        if checkpoint:
            _restore(session, model, checkpoint)
        return session, None
    import cluster

    shared = cluster.Shared(task, model.graph, fingerprint)
    config = task.session_config(config)
    task.wait_for_parameter_servers()
    if task.job == "chief":
        session = tf1.Session(shared.server.target, graph=model.graph, config=config)
        session.run([shared.init, model.init])
        if checkpoint:
            _restore(session, model, checkpoint)
    else:
        with model.graph.as_default():
            ready = tf1.report_uninitialized_variables()  # every variable, the shared fingerprint's too
        manager = tf1.train.SessionManager(graph=model.graph, ready_op=ready, recovery_wait_secs=0.5)
        try:
            session = manager.wait_for_session(shared.server.target, config=config,
                                               max_wait_secs=cluster.WAIT_SECONDS)
        except tf.errors.DeadlineExceededError:
            raise cluster.ClusterError(f"{task}: the chief has not started the run in {cluster.WAIT_SECONDS} s: "
                                       f"start it, with the same --data and options") from None
        shared.check(session, fingerprint)
    return session, shared


class _Loop:
    """The steps of one process: `options.concurrent_steps` threads on one session, each drawing its own
    seeded pairs. In one process the threads claim the steps one by one up to `options.steps`; on a cluster
    each task trains until the run's global step gets there. Thread 0 is the caller's, where Ctrl-C lands."""

    def __init__(self, session, model, catalog, options, writer, run_dir, say, probe, on_checkpoint, task):
        self.session, self.model, self.catalog, self.options = session, model, catalog, options
        self.writer, self.run_dir, self.say, self.probe, self.on_checkpoint = writer, run_dir, say, probe, on_checkpoint
        self.task = task
        self.first = self.claimed = self.step = int(session.run(model.global_step))
        self.stats = {"steps": self.first, "pairs": 0, "loss": float("nan"), "seconds": 0.0, "checkpoints": 0,
                      "checkpoint_seconds": 0.0}
        self.lock, self.stopping, self.failure = threading.Lock(), threading.Event(), None
        self.losses, self.reported = [], self.first
        # The same fetches every step: other fetches would make XLA compile a second program, which costs more
        # than the summary ops. Writing events is the cost worth spacing out. A cluster also fetches the
        # run's step, which the other tasks advance too.
        self.fetches = [model.optimizer, model.loss] + ([model.summary] if writer else [])
        if task:
            self.fetches.append(model.global_step)
        self.started = self.saved = time.perf_counter()

    def run(self):
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

    def _guarded(self, number):
        try:
            self._steps(number)
        except BaseException as error:  # to the caller's thread, which raises it
            self.failure = self.failure or error
            self.stopping.set()

    def _steps(self, number):
        """Thread `number`'s steps, in batches it draws `steps_per_draw` at a time. Its pairs are seeded by the
        run's seed and first step (a resumed run draws new ones) and, past the first thread of the first
        trainer, by those numbers: one thread of one process draws exactly as before there were threads."""
        options, model = self.options, self.model
        trainer = self.task.number if self.task else 0
        sampler = PairSampler(self.catalog, options.contexts)
        sampler.rng = np.random.default_rng([options.seed, self.first] + ([trainer, number] if trainer or number
                                                                           else []))
        while True:
            # One process draws no more batches than it has steps left: the draws stay those of the steps.
            draws = options.steps_per_draw if self.task else max(1, min(options.steps_per_draw,
                                                                        options.steps - self.claimed))
            inputs, labels = sampler.batches(options.batch_size, draws)
            for batch_inputs, batch_labels in zip(inputs, labels):
                step = self._claim()
                if step is None:
                    return
                fetched = self.session.run(self.fetches, {model.train_inputs: batch_inputs,
                                                          model.train_labels: batch_labels})
                loss_value = fetched[1]
                if self.task:
                    step = int(fetched[-1])
                if not np.isfinite(loss_value):
                    # Stop before anything saves the broken variables; the caller cleans up.
                    raise Diverged(step, loss_value, options.learning_rate)
                if self.writer and (step % options.summary_every == 0 or step >= options.steps):
                    self.writer.add_summary(fetched[2], step)
                self.losses.append(loss_value)
                self._after(step)
                if number == 0 and self.writer and time.perf_counter() - self.saved >= CHECKPOINT_SECONDS \
                        and step < options.steps:
                    mark = time.perf_counter()
                    _save(self.session, model, self.writer, self.run_dir, step)
                    self.account()
                    self.stats["checkpoints"] += 1
                    self.stats["checkpoint_seconds"] += time.perf_counter() - mark
                    if self.on_checkpoint:
                        self.on_checkpoint(self.stats)
                    self.saved = time.perf_counter()

    def _claim(self):
        """The number of the next step to run, or None when there are none left (or the run is stopping)."""
        with self.lock:
            if self.stopping.is_set() or (self.task and self.step >= self.options.steps) or \
                    (not self.task and self.claimed >= self.options.steps):
                return None
            self.claimed += 1
            return self.claimed

    def _after(self, step):
        """The report (progress, neighbours, quality) where `step` reaches a report step, once, or the end."""
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
        self.stats["loss"] = loss
        _progress(self.say, min(step, options.steps), options.steps, loss, self.started,
                  f"{self.task}: " if self.task and not self.writer else "")
        if self.writer:
            neighbours = _report(self.session, self.model, self.writer, step, self.probe, quality=not last)
            if step % (options.report_every * 4) == 0 or last:
                for name, nearest in neighbours:
                    self.say(f"  nearest to {name}: {', '.join(nearest)}")

    def account(self):
        """The stats of the run so far: its step (the session's counts what was applied: an interrupt can fall
        between it and ours), the pairs this process trained on, the seconds."""
        step = int(self.session.run(self.model.global_step))
        self.stats.update(steps=step, pairs=(step - self.first) * self.options.batch_size,
                          seconds=time.perf_counter() - self.started)


def _restore(session, model, checkpoint):
    try:
        model.saver.restore(session, checkpoint)
    except (tf.errors.OpError, ValueError) as error:
        raise UnreadableCheckpoint(f"{checkpoint}: unreadable checkpoint ({tf_reason(error)}); the run cannot "
                                   f"continue from it: train it anew with --overwrite") from None


def _save(session, model, writer, run_dir, step):
    """A checkpoint of the variables at `step` (only the latest is kept), with the events written so far."""
    try:
        model.saver.save(session, os.path.join(logdir.checkpoint_dir(run_dir), "model.ckpt"), global_step=step)
        writer.flush()
    except (tf.errors.OpError, ValueError) as error:
        reason = tf_reason(error)
        raise logdir.RunError(f"{logdir.checkpoint_dir(run_dir)}: cannot write the checkpoint ({reason})"
                              f"{logdir.os_advice(reason)}") from None


# The lines of a TensorFlow error that say where, not what: its graph's traceback, and where it came from.
_WHERE = ("Graph execution error", "Detected at node", "File ", "Node: ", "From /job:", "[[", "=====",
          "Additional GRPC", "Hint: ", ":UNKNOWN:")


def tf_reason(error):
    """The line of a TensorFlow error that says what went wrong, past the graph's traceback: where a failed
    write names its file and the system's word (`...model.ckpt-20.data...; No space left on device`)."""
    lines = [line.strip() for line in (getattr(error, "message", None) or str(error)).splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(_WHERE)), lines[0] if lines else type(error).__name__)


def _report(session, model, writer, step, probe, quality):
    """The watched artists' nearest neighbours [(name, [names])] by `probe`, also written as a text summary,
    and with `quality` the quality scalars."""
    if probe is None:
        return []
    neighbours, figures = probe(session.run(model.embeddings), quality)
    summaries = [tensorboard_files.text_summary("neighbours", tensorboard_files.neighbours_markdown(neighbours))]
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


def _checkpoint_step(run_dir):
    """The step of the run's last checkpoint, or None."""
    checkpoint = tf1.train.latest_checkpoint(logdir.checkpoint_dir(run_dir))
    return int(checkpoint.rpartition("-")[2]) if checkpoint else None
