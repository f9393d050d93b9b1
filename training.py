"""Training Bands2Vec: the session loop of the TensorFlow word2vec tutorial, and the run's TensorBoard events.

The options it takes (bands2vec.TrainOptions) and what is done with the vectors are the library's; this
module is the loop that turns a catalog's pairs into vectors, and what it writes while it runs.
"""
import os
import time

import numpy as np

import logdir
import tensorboard_files
from bands2vec_graph import build_graph, tf, tf1
from data_utils import PairSampler

# A long run saves a checkpoint this often, so that a crash, `kill -9` or a power cut loses at most this much
# training: each save writes the two artists x 64 tables (0.5 GB at a million artists, about 2 s here).
CHECKPOINT_SECONDS = 180
# XLA fuses a step's small ops, 1.8 ms a step instead of 4.4 on the full data; but a cluster that updates a
# table copies all of it, which past about 20,000 artists costs more than it saves, so bigger catalogs keep
# the tables' reads and writes out of XLA (1,000,000 artists, 2,048 pairs: 3.5 ms a step, against 4.3
# without XLA and 160 with the tables in it).
XLA_MAX_ARTISTS = 20_000


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


def train(catalog, options, run_dir, say=print, checkpoint=None, probe=None, on_checkpoint=None):
    """Train the embeddings, writing events and checkpoints into `run_dir`; returns (vectors, stats).

    With `checkpoint`, training continues from it up to `options.steps`. Every CHECKPOINT_SECONDS the run
    is checkpointed and `on_checkpoint(stats)` called; on Ctrl-C (KeyboardInterrupt) it is checkpointed
    where it stands and `Interrupted` raised. At each report step, `probe(embeddings, quality)`
    (artist_vectors.training_probe) gives the watched artists' neighbours, for TensorBoard's Text tab, and,
    asked for before the last step (whose full figures the caller has), the quality figures
    {"genre": ..., "score": ...} for its Scalars tab. TensorFlow's errors come out as one-line RunErrors.
    """
    sampler = PairSampler(catalog, options.contexts)
    model = build_graph(len(catalog), options.embedding_size, options.num_sampled,
                        options.learning_rate, decay_steps=options.steps,
                        context_distribution=sampler.context_distribution(),
                        init_scale=options.init_scale, seed=options.seed,
                        tables_in_xla=len(catalog) <= XLA_MAX_ARTISTS)
    config = tf1.ConfigProto(intra_op_parallelism_threads=options.threads,
                             inter_op_parallelism_threads=options.threads)
    config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    stats = {"steps": 0, "pairs": 0, "loss": float("nan"), "seconds": 0.0}

    try:
        with tf1.Session(graph=model.graph, config=config) as session:
            # The graph goes into the events file, for TensorBoard's Graphs tab.
            writer = tf1.summary.FileWriter(run_dir, session.graph)
            session.run(model.init)
            if checkpoint:
                _restore(session, model, checkpoint)
            step = first_step = int(session.run(model.global_step))
            # A resumed run draws new pairs, reproducibly: the sampler's seed includes the first step.
            sampler.rng = np.random.default_rng([options.seed, first_step])
            started = saved = time.perf_counter()
            losses = []

            def account(step):
                stats.update(steps=step, pairs=(step - first_step) * options.batch_size,
                             seconds=time.perf_counter() - started)

            try:
                while step < options.steps:
                    inputs, labels = sampler.batches(options.batch_size,
                                                     min(options.steps_per_draw, options.steps - step))
                    for batch_inputs, batch_labels in zip(inputs, labels):
                        feed_dict = {model.train_inputs: batch_inputs, model.train_labels: batch_labels}
                        step += 1
                        # The same fetches every step: other fetches would make XLA compile a second program,
                        # which costs more than the summary ops. Writing events is the cost worth spacing out.
                        _, loss_value, summary = session.run([model.optimizer, model.loss, model.summary],
                                                             feed_dict)
                        if not np.isfinite(loss_value):
                            # Stop before anything saves the broken variables; the caller cleans up.
                            writer.close()
                            raise Diverged(step, loss_value, options.learning_rate)
                        if step % options.summary_every == 0 or step == options.steps:
                            writer.add_summary(summary, step)
                        losses.append(loss_value)
                        if step % options.report_every == 0 or step == options.steps:
                            stats["loss"] = float(np.mean(losses))
                            _progress(say, step, options.steps, stats["loss"], started)
                            losses = []
                            neighbours = _report(session, model, writer, step, probe, quality=step < options.steps)
                            if step % (options.report_every * 4) == 0 or step == options.steps:
                                for name, nearest in neighbours:
                                    say(f"  nearest to {name}: {', '.join(nearest)}")
                        if time.perf_counter() - saved >= CHECKPOINT_SECONDS and step < options.steps:
                            _save(session, model, writer, run_dir, step)
                            account(step)
                            if on_checkpoint:
                                on_checkpoint(stats)
                            saved = time.perf_counter()
            except KeyboardInterrupt:
                interrupted = True
            else:
                interrupted = False
            # The session's step counts what was applied; an interrupt can fall between it and ours.
            step = int(session.run(model.global_step))
            account(step)
            _save(session, model, writer, run_dir, step)
            writer.close()
            vectors = session.run(model.embeddings)
    except tf.errors.OpError as error:
        reason = _reason(error)
        raise logdir.RunError(f"{run_dir}: training stopped: {reason}{logdir.os_advice(reason)}") from None
    if interrupted:
        raise Interrupted(vectors, stats)
    return vectors, stats


class UnreadableCheckpoint(logdir.RunError):
    """The checkpoint to continue from cannot be read: the run cannot go on from it."""


def _restore(session, model, checkpoint):
    try:
        model.saver.restore(session, checkpoint)
    except (tf.errors.OpError, ValueError) as error:
        raise UnreadableCheckpoint(f"{checkpoint}: unreadable checkpoint ({_reason(error)}); the run cannot "
                                   f"continue from it: train it anew with --overwrite") from None


def _save(session, model, writer, run_dir, step):
    """A checkpoint of the variables at `step` (only the latest is kept), with the events written so far."""
    try:
        model.saver.save(session, os.path.join(logdir.checkpoint_dir(run_dir), "model.ckpt"), global_step=step)
        writer.flush()
    except (tf.errors.OpError, ValueError) as error:
        reason = _reason(error)
        raise logdir.RunError(f"{logdir.checkpoint_dir(run_dir)}: cannot write the checkpoint ({reason})"
                              f"{logdir.os_advice(reason)}") from None


def _reason(error):
    """The line of a TensorFlow error that says what went wrong: its first, or the one after the graph's
    traceback (`Node: 'save/SaveV2'`), where a failed write names its file and the system's word."""
    lines = [line.strip() for line in (getattr(error, "message", None) or str(error)).splitlines() if line.strip()]
    after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith("Node: ")]
    return (after or lines or [type(error).__name__])[0]


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


def _progress(say, step, steps, loss, started):
    width = 24
    done = int(width * step / steps)
    elapsed = time.perf_counter() - started
    say(f"[{'#' * done}{'.' * (width - done)}] step {step:>{len(str(steps))}}/{steps}  "
        f"average loss {loss:7.3f}  {elapsed:5.1f}s")
