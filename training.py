"""Training Bands2Vec: the session loop of the TensorFlow word2vec tutorial, and the run's TensorBoard files."""
import dataclasses
import math
import time

import numpy as np

import logdir
from bands2vec_graph import EMBEDDINGS_VARIABLE, build_graph, tf1
from data_utils import PairSampler


@dataclasses.dataclass
class TrainOptions:
    """Training settings; the defaults are the benchmark's choice for the full Pitchfork data (README)."""
    steps: int = 1750
    batch_size: int = None  # None: chosen with the vocabulary, see resolved()
    embedding_size: int = 64
    num_sampled: int = 64
    learning_rate: float = None  # None: chosen with the vocabulary, see resolved()
    genre_share: float = 0.6
    init_scale: float = 0.01
    seed: int = 0
    threads: int = 2
    report_every: int = 250  # average loss and the validation artists' neighbours
    summary_every: int = 25  # loss summary for TensorBoard
    steps_per_draw: int = 100  # batches drawn by numpy in one call
    valid_size: int = 4

    def resolved(self, vocabulary_size):
        """These options with the batch size and learning rate filled in for `vocabulary_size` artists.

        The loss is a mean over the batch, so an artist's row moves by about learning_rate / vocabulary_size
        per step: the rate grows with the vocabulary. V / 90 (97 on the full data, 3.3 on the demo) is
        the fastest that stays stable; batches of 2,048 pairs (fewer for a small catalog) give the most
        quality per second, as measured by benchmarks/train_benchmark.py.
        """
        auto_batch_size = min(2048, 2 ** math.ceil(math.log2(max(vocabulary_size, 2))))
        return dataclasses.replace(
            self, batch_size=auto_batch_size if self.batch_size is None else self.batch_size,
            learning_rate=vocabulary_size / 90 if self.learning_rate is None else self.learning_rate)


def check_options(options, vocabulary_size):
    """A ValueError naming the first option out of range."""
    checks = [
        (options.steps >= 1, f"--steps must be at least 1, not {options.steps}"),
        (options.batch_size >= 1, f"--batch-size must be at least 1, not {options.batch_size}"),
        (options.embedding_size >= 1, f"--embedding-size must be at least 1, not {options.embedding_size}"),
        (1 <= options.num_sampled < vocabulary_size,
         f"--num-sampled must be from 1 to {vocabulary_size - 1} (fewer than the {vocabulary_size} artists), "
         f"not {options.num_sampled}"),
        (np.isfinite(options.learning_rate) and options.learning_rate > 0,
         f"--learning-rate must be above 0, not {options.learning_rate}"),
        (0.0 <= options.genre_share <= 1.0, f"--genre-share must be from 0 to 1, not {options.genre_share}"),
        (options.threads >= 1, f"--threads must be at least 1, not {options.threads}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; the run was checkpointed with these vectors and stats."""

    def __init__(self, vectors, stats):
        super().__init__(stats["steps"])
        self.vectors, self.stats = vectors, stats


def validation_ids(catalog, n):
    """The most-reviewed artists: the ones whose neighbours a reader can judge."""
    reviews = np.array([len(artist.review_ids) for artist in catalog.artists])
    return np.argsort(-reviews, kind="stable")[:min(n, len(catalog))].astype(np.int32)


def train(catalog, options, run_dir, say=print, checkpoint=None):
    """Train the embeddings, writing events and a checkpoint into `run_dir`; returns (vectors, stats).

    With `checkpoint`, training continues from it up to `options.steps`. On Ctrl-C (KeyboardInterrupt)
    the run is checkpointed where it stands and `Interrupted` raised.
    """
    valid_ids = validation_ids(catalog, options.valid_size)
    model = build_graph(len(catalog), valid_ids, options.embedding_size, options.num_sampled,
                        options.learning_rate, decay_steps=options.steps,
                        context_distribution=PairSampler(catalog, options.genre_share).context_distribution(),
                        init_scale=options.init_scale, seed=options.seed)
    config = tf1.ConfigProto(intra_op_parallelism_threads=options.threads,
                             inter_op_parallelism_threads=options.threads)
    # XLA fuses the step's small ops: about half the time per step on the CPU, the same results.
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
        sampler = PairSampler(catalog, options.genre_share, seed=[options.seed, first_step])
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
                    if step % options.summary_every == 0 or step == options.steps:
                        writer.add_summary(summary, step)
                    losses.append(loss_value)
                    if step % options.report_every == 0 or step == options.steps:
                        stats["loss"] = float(np.mean(losses))
                        _progress(say, step, options.steps, stats["loss"], started)
                        losses = []
                    if step % (options.report_every * 4) == 0 and step < options.steps:
                        _say_neighbours(say, session.run(model.similarity), valid_ids, catalog)
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False
            _say_neighbours(say, session.run(model.similarity), valid_ids, catalog)
        # The session's step counts what was applied; an interrupt can fall between it and ours.
        step = int(session.run(model.global_step))
        stats.update(steps=step, pairs=(step - first_step) * options.batch_size, seconds=time.perf_counter() - started)
        _finish(session, model, writer, run_dir, step)
        vectors = session.run(model.embeddings)
    if interrupted:
        raise Interrupted(vectors, stats)
    return vectors, stats


def _finish(session, model, writer, run_dir, step):
    model.saver.save(session, f"{run_dir}/model.ckpt", global_step=step)
    logdir.write_projector_config(run_dir, EMBEDDINGS_VARIABLE)
    writer.close()


def _progress(say, step, steps, loss, started):
    width = 24
    done = int(width * step / steps)
    elapsed = time.perf_counter() - started
    say(f"[{'#' * done}{'.' * (width - done)}] step {step:>{len(str(steps))}}/{steps}  "
        f"average loss {loss:7.3f}  {elapsed:5.1f}s")


def _say_neighbours(say, similarity, valid_ids, catalog, top_k=5):
    for row, artist_id in zip(similarity, valid_ids):
        row[artist_id] = -np.inf
        nearest = np.argsort(-row)[:top_k]
        say(f"  nearest to {catalog.artists[artist_id].name}: "
            + ", ".join(catalog.artists[i].name for i in nearest))
