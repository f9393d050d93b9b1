"""A run on the demo catalog: the log dir TensorBoard reads, seeds, and a folder for each run. (Bad
input on the command line: test_hostile_inputs.py.)"""
import glob
import os

import numpy as np
import pytest

import errors
import metadata
import run_folder
import run_record
import vector_files
import tensorboard_files
from helpers import METADATA_HEADER, quiet, train_run


@pytest.mark.slow  # t-SNE
def test_run_dir_is_complete(demo_run, demo_catalog):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    vocabulary = len(demo_catalog)
    # Training's events (graph, loss), then the final summaries and the plots' images, each in its
    # own file.
    events = sorted(glob.glob(os.path.join(demo_run, "events.out.tfevents.*")))
    assert len(events) == 3
    records = [record for path in events for record in tf.compat.v1.train.summary_iterator(path)]
    assert any(record.graph_def for record in records)
    assert any(value.tag == "loss/nce" for record in records for value in record.summary.value)

    with open(os.path.join(demo_run, metadata.METADATA_FILE), encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == vocabulary + 1
    assert lines[0].split("\t") == METADATA_HEADER
    assert all(len(line.split("\t")) == len(METADATA_HEADER) for line in lines)

    config = projector.ProjectorConfig()
    with open(os.path.join(demo_run, tensorboard_files.PROJECTOR_FILE)) as f:
        text_format.Parse(f.read(), config)
    (embedding,) = config.embeddings
    assert (embedding.metadata_path == metadata.METADATA_FILE
            and embedding.tensor_path == vector_files.VECTORS_TSV)
    # the projector offers no checkpoint variables
    assert tf.train.latest_checkpoint(demo_run) is None
    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(run_folder.checkpoint_dir(demo_run)))
    assert reader.get_tensor("embeddings/embeddings").shape == (vocabulary, 64)

    vectors_tsv = np.loadtxt(os.path.join(demo_run, vector_files.VECTORS_TSV), delimiter="\t")
    assert vectors_tsv.shape == (vocabulary, 64)
    with open(os.path.join(demo_run, vector_files.WORD2VEC_FILE), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    assert header == f"{vocabulary} 64" and len(rows) == vocabulary
    assert all(len(row.split(" ")) == 65 for row in rows)
    assert any(row.startswith("lune,_marée ") for row in rows)

    record = run_record.read(demo_run)
    assert record.state == "finished" and record.artists == vocabulary and record.stats.steps == 300
    np.testing.assert_allclose(reader.get_tensor("embeddings/embeddings"), vectors_tsv, atol=1e-6)


@pytest.mark.slow  # three runs
def test_same_seed_same_vectors(tmp_path):
    from vector_files import checkpoint_vectors

    first = train_run(tmp_path / "a", "demo", steps=60)
    second = train_run(tmp_path / "b", "demo", steps=60)
    other = train_run(tmp_path / "c", "demo", steps=60, seed=1)
    assert np.array_equal(checkpoint_vectors(first), checkpoint_vectors(second))
    assert not np.allclose(checkpoint_vectors(first), checkpoint_vectors(other))


@pytest.mark.slow  # four runs
def test_each_run_gets_its_own_folder(tmp_path):
    import bands2vec

    def train(**names):
        return bands2vec.train("demo", bands2vec.TrainOptions(steps=20), logs=str(tmp_path),
                               plots=False, say=quiet, **names)

    train()
    train(name="b")
    assert len([name for name in os.listdir(tmp_path)
                if (tmp_path / name).is_dir()]) == 2  # and the hparams config
    assert run_folder.find_run(str(tmp_path)) == os.path.join(str(tmp_path), "b")
    with pytest.raises(errors.RunError, match="already exists"):
        train(name="b")
    assert train(name="b", overwrite=True).folder == os.path.join(str(tmp_path), "b")
