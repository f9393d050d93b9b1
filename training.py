"""Training Bands2Vec: the session loop of the TensorFlow word2vec tutorial, and the run's TensorBoard events.

The options it takes (bands2vec.TrainOptions) and what is done with the vectors are the library's; this
module is the loop that turns a catalog's pairs into vectors, and what it writes while it runs.
"""
import os
import time

import numpy as np

import logdir
import tensorboard_files
from bands2vec_graph import build_graph, tf1
from data_utils import PairSampler

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


def train(catalog, options, run_dir, say=print, checkpoint=None, probe=None):
    """Train the embeddings, writing events and a checkpoint into `run_dir`; returns (vectors, stats).

    With `checkpoint`, training continues from it up to `options.steps`. On Ctrl-C (KeyboardInterrupt)
    the run is checkpointed where it stands and `Interrupted` raised. At each report step,
    `probe(embeddings, quality)` (artist_vectors.training_probe) gives the watched artists' neighbours,
    for TensorBoard's Text tab, and, asked for before the last step (whose full figures the caller has),
    the quality figures {"genre": ..., "score": ...} for its Scalars tab.
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

    with tf1.Session(graph=model.graph, config=config) as session:
        # The graph goes into the events file, for TensorBoard's Graphs tab.
        writer = tf1.summary.FileWriter(run_dir, session.graph)
        session.run(model.init)
        if checkpoint:
            model.saver.restore(session, checkpoint)
        step = first_step = int(session.run(model.global_step))
        # A resumed run draws new pairs, reproducibly: the sampler's seed includes the first step.
        sampler.rng = np.random.default_rng([options.seed, first_step])
        started, losses = time.perf_counter(), []
        try:
            while step < options.steps:
                inputs, labels = sampler.batches(options.batch_size, min(options.steps_per_draw, options.steps - step))
                for batch_inputs, batch_labels in zip(inputs, labels):
                    feed_dict = {model.train_inputs: batch_inputs, model.train_labels: batch_labels}
                    step += 1
                    # The same fetches every step: other fetches would make XLA compile a second program,
                    # which costs more than the summary ops. Writing events is the cost worth spacing out.
                    _, loss_value, summary = session.run([model.optimizer, model.loss, model.summary], feed_dict)
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
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
        # The session's step counts what was applied; an interrupt can fall between it and ours.
        step = int(session.run(model.global_step))
        stats.update(steps=step, pairs=(step - first_step) * options.batch_size, seconds=time.perf_counter() - started)
        _finish(session, model, writer, run_dir, step)
        vectors = session.run(model.embeddings)
    if interrupted:
        raise Interrupted(vectors, stats)
    return vectors, stats


def _finish(session, model, writer, run_dir, step):
    model.saver.save(session, os.path.join(logdir.checkpoint_dir(run_dir), "model.ckpt"), global_step=step)
    writer.close()


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
