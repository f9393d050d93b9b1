"""The Bands2Vec graph: skip-gram with NCE loss, built as in the TensorFlow word2vec tutorial.

`tf.compat.v1` graph mode: placeholders fed through `feed_dict`, an embeddings variable, NCE weights
and biases, `tf.nn.nce_loss` and gradient descent. The tutorial's similarity op for a few validation
artists is done in numpy by training's reports, on the table they fetch anyway: in the graph its
norms of every row took 0.5 GB more at a million artists.
This module only builds the graph; it reads and writes nothing.
"""
import collections
import contextlib
import gc
import math
import os
import sys

from ensemble import member_seeds

# TensorFlow's C++ start-up chatter would bury our own output; oneDNN's custom ops do nothing for
# these small sparse ops but reorder float sums between runs. XLA may compile on the CPU too: a
# session that asks for it (training does) then fuses a step's many small ops, up to twice as fast.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_XLA_FLAGS", "--tf_xla_cpu_global_jit")


@contextlib.contextmanager
def _stderr_silenced():
    """Silence stderr: some TensorFlow builds log at import before their log level is read."""
    try:
        saved = os.dup(2)
    except OSError:  # the caller closed its stderr: nothing would show
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _keras_skipped():
    """Skip the Keras optimizers TensorFlow imports with itself (3.4 of its 8 s), which this graph
    never uses: a None in sys.modules makes that import fail, and TensorFlow goes on without it.
    The None goes after, so `tf.keras` still loads when asked for."""
    skip = "keras.src.optimizers"
    if skip in sys.modules:
        yield
        return
    sys.modules[skip] = None
    try:
        yield
    finally:
        if sys.modules.get(skip, 0) is None:
            del sys.modules[skip]


with _stderr_silenced(), _keras_skipped():
    import tensorflow as tf
# TensorFlow's import leaves 250,000 objects that live as long as the process: frozen,
# Python's full garbage collections (7 in a run) and its last one at exit skip them.
gc.freeze()

# Its deprecation notes (a Saver's second checkpoint logs one) are not ours to act on, and its
# error lines (a checkpoint not found, its events thread failing) come to us as exceptions or
# answers that we tell in one line each: raw, they would say it twice.
tf.get_logger().setLevel("CRITICAL")
tf1 = tf.compat.v1
tf1.disable_eager_execution()

EMBEDDINGS_VARIABLE = "embeddings/embeddings"
# The ops that read or write a whole artists x 64 table. An XLA cluster updating a variable copies
# all of it, so past tens of thousands of artists these stay out of XLA; only the loss is fused.
TABLE_OPS = frozenset({"VarHandleOp", "ReadVariableOp", "AssignVariableOp", "VarIsInitializedOp",
                       "ResourceGather", "ResourceScatterAdd", "AssignAddVariableOp"})

Bands2VecGraph = collections.namedtuple("Bands2VecGraph", [
    "graph", "train_inputs", "train_labels", "embeddings",
    "loss", "optimizer", "learning_rate", "global_step", "summary", "init", "saver"])


def build_graph(vocabulary_size, embedding_size=64, num_sampled=64, learning_rate=1.0,
                decay_steps=None, context_distribution=None, init_scale=1.0, seed=0,
                tables_in_xla=True, device=None, partitioner=None, ensemble=1):
    """The training graph and the handles the training loop needs.

    `context_distribution` (how often each artist is drawn as a context) makes NCE draw its
    negatives from it; without it they come from the tutorial's log-uniform sampler, which assumes
    a vocabulary sorted by frequency. With `decay_steps` the learning rate falls linearly to 1% of
    its start over that many steps. Without `tables_in_xla`, XLA (where the session uses it) leaves
    the TABLE_OPS alone. On a cluster, `device` places the ops (the variables on the parameter
    servers) and `partitioner` splits the two tables across them; one process takes neither.
    With `ensemble` N above 1, N members (member_scope) each take their equal part of a batch of N
    times the pairs, with tables and NCE of their own, seeded by ensemble.member_seeds; the
    optimizer minimises their summed loss, `loss` is their mean, and `embeddings` their tables side
    by side (ensemble.combined stores them). One member is the tutorial's graph as it was.
    """
    graph = tf1.Graph()
    xla_scope = contextlib.nullcontext() if tables_in_xla else tf1.xla.experimental.jit_scope(
        compile_ops=lambda node_def: node_def.op not in TABLE_OPS)
    with graph.as_default(), tf1.device(device), xla_scope:
        tf1.set_random_seed(seed)

        # Input data: target artists and, for each, one context artist.
        with tf1.name_scope("inputs"):
            train_inputs = tf1.placeholder(tf.int32, shape=[None], name="train_inputs")
            train_labels = tf1.placeholder(tf.int32, shape=[None, 1], name="train_labels")

        tables, losses = [], []
        for member, member_seed in enumerate(member_seeds(seed, ensemble)):
            tf1.set_random_seed(member_seed)  # the member's ops take their seeds from it
            with member_scope(member):
                inputs, labels = _member_batch(train_inputs, train_labels, member, ensemble)
                table, member_loss = _skip_gram(inputs, labels, vocabulary_size, embedding_size,
                                                num_sampled, context_distribution, init_scale,
                                                partitioner)
            tables.append(table)
            losses.append(member_loss)

        with tf1.name_scope("loss/"):
            summed = losses[0] if ensemble == 1 else tf1.add_n(losses, name="summed")
            loss = summed if ensemble == 1 else tf1.divide(summed, ensemble, name="mean")
            tf1.summary.scalar("nce", loss)  # TensorBoard tag loss/nce

        # The tutorial's plain gradient descent; the rate decays so late steps refine, not jitter.
        with tf1.name_scope("optimizer"):
            global_step = tf1.train.get_or_create_global_step()
            rate = tf1.constant(float(learning_rate), name="initial_learning_rate")
            if decay_steps:
                progress = tf.minimum(tf.cast(global_step, tf.float32) / decay_steps, 1.0)
                rate = tf1.multiply(rate, 1.0 - 0.99 * progress, name="decayed_learning_rate")
            optimizer = tf1.train.GradientDescentOptimizer(rate).minimize(
                summed, global_step=global_step)
            tf1.summary.scalar("learning_rate", rate)

        summary = tf1.summary.merge_all()
        init = tf1.global_variables_initializer()
        saver = tf1.train.Saver(max_to_keep=1, save_relative_paths=True)  # a run folder may move
        if partitioner:
            tables = [table.as_tensor() for table in tables]  # whole tables, for the reports
        embeddings = tables[0] if ensemble == 1 else tf.concat(tables, axis=1, name="members")

    return Bands2VecGraph(graph, train_inputs, train_labels, embeddings,
                          loss, optimizer, rate, global_step, summary, init, saver)


def member_scope(member):
    """Where member `member`'s variables and ops live: member 0 (one model) where the tutorial's
    are, so its checkpoints read as before; member 1 under `member_1/`..."""
    return contextlib.nullcontext() if member == 0 else tf1.variable_scope(f"member_{member}")


def member_variable(member):
    """The checkpoint name of member `member`'s embeddings."""
    return EMBEDDINGS_VARIABLE if member == 0 else f"member_{member}/{EMBEDDINGS_VARIABLE}"


def _member_batch(train_inputs, train_labels, member, ensemble):
    """Member `member`'s part of the batch: all of it for one model, else its Nth."""
    if ensemble == 1:
        return train_inputs, train_labels
    with tf1.name_scope("batch"):
        return (tf.split(train_inputs, ensemble)[member],
                tf.split(train_labels, ensemble)[member])


def _skip_gram(train_inputs, train_labels, vocabulary_size, embedding_size, num_sampled,
               context_distribution, init_scale, partitioner):
    """One model's embeddings table and mean NCE loss over the batch, as the tutorial builds
    them."""
    # Look up the embeddings of the targets: the vectors we are here to learn.
    with tf1.variable_scope("embeddings"):
        embeddings = tf1.get_variable(
            "embeddings", [vocabulary_size, embedding_size], partitioner=partitioner,
            initializer=tf1.random_uniform_initializer(-init_scale, init_scale))
        embed = tf.nn.embedding_lookup(embeddings, train_inputs)

    # The output side: one weight vector and one bias per artist, for the NCE logits.
    with tf1.variable_scope("weights"):
        nce_weights = tf1.get_variable(
            "nce_weights", [vocabulary_size, embedding_size], partitioner=partitioner,
            initializer=tf1.truncated_normal_initializer(stddev=1.0 / math.sqrt(embedding_size)))
    with tf1.name_scope("biases"):
        # Start at log(1/V), the log-probability of a uniform guess, where NCE's self-normalised
        # logits settle; zero biases would make the first steps huge.
        nce_biases = tf1.Variable(tf1.fill([vocabulary_size], -math.log(vocabulary_size)),
                                  name="nce_biases")

    # NCE turns "which artist is the context?" into "is this a true pair or a sampled one?",
    # so each step costs num_sampled logits instead of a softmax over every artist.
    with tf1.name_scope("loss"):
        sampled_values = None
        if context_distribution is not None:
            sampled_values = tf.random.fixed_unigram_candidate_sampler(
                true_classes=tf.cast(train_labels, tf.int64), num_true=1,
                num_sampled=num_sampled, unique=True, range_max=vocabulary_size,
                unigrams=[float(p) for p in context_distribution])
        loss = tf.reduce_mean(tf.nn.nce_loss(
            weights=nce_weights, biases=nce_biases, labels=train_labels, inputs=embed,
            num_sampled=num_sampled, num_classes=vocabulary_size,
            sampled_values=sampled_values))
    return embeddings, loss
