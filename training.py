"""Training Bands2Vec: the session loop of the TensorFlow word2vec tutorial, and the run's TensorBoard files."""
import dataclasses
import math
import os
import time

import numpy as np

import logdir
import tensorboard_files
from bands2vec_graph import build_graph, tf1
from data_utils import DEFAULT_CONTEXTS, PairSampler, context_memberships, format_contexts, parse_contexts


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
# XLA fuses a step's small ops, 1.8 ms a step instead of 4.4 on the full data; but a cluster that updates a
# table copies all of it, which past about 20,000 artists costs more than it saves, so bigger catalogs keep
# the tables' reads and writes out of XLA (1,000,000 artists, 2,048 pairs: 3.5 ms a step, against 4.3
# without XLA and 160 with the tables in it).
XLA_MAX_ARTISTS = 20_000


@dataclasses.dataclass
class TrainOptions:
    """Training settings; None means chosen for the catalog by resolved() (README, "Why these defaults")."""
    steps: int = None
    batch_size: int = None
    embedding_size: int = 64
    num_sampled: int = 64
    learning_rate: float = None
    contexts: str = DEFAULT_CONTEXTS  # kinds of context and their shares of the pairs (data_utils.CONTEXTS)
    init_scale: float = 0.01
    seed: int = 0
    threads: int = 2
    report_every: int = None  # average loss, neighbours and quality (resolved(): every 250 steps or more)
    summary_every: int = 25  # loss summary for TensorBoard
    steps_per_draw: int = 100  # batches drawn by numpy in one call
    valid_size: int = 4

    def resolved(self, catalog):
        """These options with the steps, batch size, learning rate, report interval and context shares filled in
        for `catalog` (the rules above; on the full data batches of 2,048 pairs give the most quality per
        second, as measured by benchmarks/train_benchmark.py)."""
        vocabulary_size = len(catalog)
        shares = parse_contexts(self.contexts)
        rate = min(vocabulary_size / ARTISTS_PER_RATE, MAX_RATE)
        memberships = sum(context_memberships(catalog, kind) for kind, share in shares.items() if share > 0)
        move = MOVE_PER_MEMBERSHIP * (1 + MOVE_GROWTH * max(0.0, math.log10(vocabulary_size / MOVE_GROWTH_ABOVE)))
        steps = max(MIN_STEPS, int(round(move * memberships / rate, -1)))  # at the default rate
        steps = steps if self.steps is None else self.steps
        smallest, largest = BATCH_SIZES
        # max(steps, 1): check_options rejects --steps 0 in words, after this.
        batch_size = 2 ** round(math.log2(PAIRS_PER_ARTIST * vocabulary_size / max(steps, 1)))
        # A small catalog's batch is at most the power of two that holds it.
        batch_size = min(max(smallest, batch_size), largest, 2 ** math.ceil(math.log2(max(vocabulary_size, 2))))
        return dataclasses.replace(
            self, steps=steps, report_every=self.report_every or _report_every(steps, vocabulary_size),
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            learning_rate=rate if self.learning_rate is None else self.learning_rate,
            contexts=format_contexts(shares))


def _report_every(steps, vocabulary_size):
    """Every 250 steps; on a big catalog, whose every report reads the whole table, at most one every
    artists / 50 steps and about 20 over the run."""
    return max(250, min(steps // 20, vocabulary_size // 50) // 250 * 250)


def hparams(options):
    """The options a reader compares runs by, for TensorBoard's HParams tab."""
    shares = parse_contexts(options.contexts)
    return {"steps": options.steps, "batch_size": options.batch_size, "embedding_size": options.embedding_size,
            "num_sampled": options.num_sampled, "learning_rate": options.learning_rate,
            "genre_share": shares.get("genre", 0.0), "contexts": options.contexts, "seed": options.seed}


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
        (options.threads >= 1, f"--threads must be at least 1, not {options.threads}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    parse_contexts(options.contexts)


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


def validation_ids(catalog, n):
    """The most-reviewed artists: the ones whose neighbours a reader can judge."""
    return np.argsort(-catalog.review_counts, kind="stable")[:min(n, len(catalog))].astype(np.int32)


def train(catalog, options, run_dir, say=print, checkpoint=None, quality=None):
    """Train the embeddings, writing events and a checkpoint into `run_dir`; returns (vectors, stats).

    With `checkpoint`, training continues from it up to `options.steps`. On Ctrl-C (KeyboardInterrupt)
    the run is checkpointed where it stands and `Interrupted` raised. At each report step the validation
    artists' neighbours go to TensorBoard's Text tab and, before the last step (whose full figures the
    caller has), `quality(embeddings)` -> {"genre": ..., "score": ...} to its Scalars tab.
    """
    valid_ids = validation_ids(catalog, options.valid_size)
    sampler = PairSampler(catalog, parse_contexts(options.contexts))
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
                        neighbours = _report(session, model, writer, step, step < options.steps and quality,
                                             valid_ids, catalog)
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


def _report(session, model, writer, step, quality, valid_ids, catalog, top_k=5):
    """The validation artists' nearest neighbours [(name, [names])], also written as a text summary, and
    with `quality` the quality scalars."""
    embeddings = session.run(model.embeddings)
    neighbours = [(catalog.names[artist_id], [catalog.names[i] for i in nearest])
                  for artist_id, nearest in zip(valid_ids, _nearest(embeddings, valid_ids, top_k))]
    summaries = [tensorboard_files.text_summary("neighbours", tensorboard_files.neighbours_markdown(neighbours))]
    if quality:
        summaries.append(tensorboard_files.quality_summary(quality(embeddings)))
    for summary in summaries:
        writer.add_summary(summary.SerializeToString(), step)
    return neighbours


def _nearest(embeddings, ids, k):
    """The `k` nearest rows (cosine) to each of the rows `ids`, nearest first: dot products over the norms,
    with no normalised copy of the table (einsum takes the norms without an artists x 64 temporary)."""
    norms = np.sqrt(np.einsum("ij,ij->i", embeddings, embeddings))
    similarity = embeddings[ids] @ embeddings.T / np.maximum(norms[ids, None] * norms[None, :], 1e-12)
    similarity[np.arange(len(ids)), ids] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def _progress(say, step, steps, loss, started):
    width = 24
    done = int(width * step / steps)
    elapsed = time.perf_counter() - started
    say(f"[{'#' * done}{'.' * (width - done)}] step {step:>{len(str(steps))}}/{steps}  "
        f"average loss {loss:7.3f}  {elapsed:5.1f}s")
