"""The TF1 graph: its ops, their shapes, and that training lowers the loss."""
import subprocess
import sys

import numpy as np
import pytest

from bands2vec_graph import EMBEDDINGS_VARIABLE, build_graph, tf1
from helpers import REPO
from pair_sampler import PairSampler


def test_graph_ops_and_shapes():
    model = build_graph(vocabulary_size=500, embedding_size=32, num_sampled=16)
    assert model.train_inputs.shape.as_list() == [None]
    assert model.train_labels.shape.as_list() == [None, 1]
    assert model.embeddings.shape.as_list() == [500, 32]
    assert model.embeddings.op.name == EMBEDDINGS_VARIABLE
    ops = {op.name for op in model.graph.get_operations()}
    for scope in ("inputs", "embeddings", "weights", "biases", "loss", "optimizer"):
        assert any(name.startswith(scope + "/") for name in ops), scope
    assert any(op.type == "Placeholder" for op in model.graph.get_operations())
    assert any("nce_loss" in name for name in ops)
    variables = {v.op.name: v.shape.as_list() for v in model.graph.get_collection("variables")}
    assert variables["weights/nce_weights"] == [500, 32]
    assert variables["biases/nce_biases"] == [500]


def _losses(catalog, steps, **graph_options):
    sampler = PairSampler(catalog, seed=0)
    model = build_graph(len(catalog), num_sampled=32, decay_steps=steps, **graph_options)
    with tf1.Session(graph=model.graph) as session:
        session.run(model.init)
        inputs, labels = sampler.batches(256, steps)
        return [session.run([model.optimizer, model.loss],
                            {model.train_inputs: i, model.train_labels: l})[1]
                for i, l in zip(inputs, labels)]


def test_a_few_hundred_steps_lower_the_loss(demo_catalog):
    losses = _losses(demo_catalog, 300, learning_rate=len(demo_catalog) / 64, init_scale=0.01,
                     context_distribution=PairSampler(demo_catalog).context_distribution())
    # NCE's floor is high here (a context is one of dozens of equally likely artists), so the fall
    # is small, but it is seven times the noise of a 30-batch mean.
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 0.03


def test_the_tutorial_settings_train_too(demo_catalog):
    # Log-uniform negatives, uniform(-1, 1) start, rate 1.0: the tutorial's graph as it was.
    losses = _losses(demo_catalog, 300, learning_rate=1.0)
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 0.03


@pytest.mark.slow  # builds the graph of a big catalog
def test_big_catalogs_keep_the_tables_out_of_xla(demo_catalog):
    """XLA copies a table it updates; past XLA_MAX_ARTISTS only the loss's math is marked for it."""
    def marks(graph):
        return {op.type: op.get_attr("_XlaCompile") for op in graph.get_operations()
                if "_XlaCompile" in op.node_def.attr}

    assert marks(build_graph(500).graph) == {}  # small: XLA clusters what it likes
    marked = marks(build_graph(500, tables_in_xla=False).graph)
    assert marked["ResourceGather"] is False and marked["ResourceScatterAdd"] is False
    assert marked["MatMul"] is True
    # The same vectors' loss either way.
    sampled = _losses(demo_catalog, 50, learning_rate=4.0, tables_in_xla=False)
    assert np.allclose(sampled, _losses(demo_catalog, 50, learning_rate=4.0), rtol=1e-4)


@pytest.mark.slow
def test_tensorflow_loads_without_keras_and_keras_still_loads():
    """The graph's import skips the Keras optimizers TensorFlow would load with it, and takes the
    skip back: a notebook's tf.keras still works after it."""
    script = ("import sys, bands2vec_graph as g; assert not [m for m in sys.modules "
              "if m.startswith('keras')], 'keras loaded'; "
              "print(g.tf.keras.optimizers.SGD(0.1).__class__.__name__)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SGD"]
