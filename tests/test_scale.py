"""Catalogs of any size: the synthetic maker, defaults derived from the catalog, memory-bounded
quality figures, the sampled map and projector, exports past a size, and (slow) a 100,000-artist
run."""
import json
import os
import re
import shlex
import sqlite3

import numpy as np
import pytest

import demo_data
import metadata
import nearest
import options
import pair_sampler
import quality
import run_folder
import run_record
import vector_files
import artist_vectors
import bands2vec
import data_utils
import plots
import tensorboard_files
import training
from helpers import quiet, train_run
from synthetic_catalog import SQL_TYPES, write_tables

VERY_SLOW = pytest.mark.skipif(not os.environ.get("BANDS2VEC_SLOW_TESTS"),
                               reason="slow (minutes): set BANDS2VEC_SLOW_TESTS=1")


@pytest.fixture(scope="module")
def catalog_100k(tmp_path_factory):
    path = write_tables(demo_data.demo_tables(100_000), str(tmp_path_factory.mktemp("syn-100k")))
    return path, data_utils.load_catalog(path)


# ---------------------------------------------------------------------------------------------
# The synthetic maker
# ---------------------------------------------------------------------------------------------

def test_synthetic_tables_have_the_kaggle_schema_and_size(tmp_path):
    tables = demo_data.demo_tables(2_000, seed=5)
    path = write_tables(tables, str(tmp_path / "db"))
    with sqlite3.connect(path) as connection:
        schema = {table: [(column, kind) for _, column, kind, *_
                          in connection.execute(f"PRAGMA table_info({table})")]
                  for table in data_utils.TABLES}
    for table, columns in data_utils.TABLES.items():
        assert schema[table] == [(column, SQL_TYPES[column]) for column in columns]
    from_sqlite = data_utils.load_catalog(path)
    from_csv = data_utils.load_catalog(write_tables(tables, str(tmp_path / "csv"), csv=True))
    assert len(from_sqlite) == 2_000 and list(from_sqlite) == list(from_csv)
    # Pitchfork-shaped: about one in six without a genre, 1 + Poisson(1.2) reviews, scores around 7.
    assert 0.12 < np.mean([not a.genres for a in from_sqlite]) < 0.20
    assert 2.0 < from_sqlite.review_count / len(from_sqlite) < 2.4
    assert 6.7 < np.mean([a.mean_score for a in from_sqlite]) < 7.3
    assert np.mean([bool(a.labels) for a in from_sqlite]) > 0.8


def test_synthetic_tables_are_seeded():
    first, again, other = (demo_data.demo_tables(1_000, seed=s) for s in (3, 3, 4))
    assert all(first[name].equals(again[name]) for name in first)
    assert not first["reviews"].equals(other["reviews"])
    assert demo_data.demo_tables()["reviews"]["artist"].nunique() == demo_data.DEMO_ARTISTS


# ---------------------------------------------------------------------------------------------
# Defaults derived from the catalog
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_defaults_at_several_sizes(demo_catalog, full_catalog, catalog_100k):
    resolved = {name: bands2vec.TrainOptions().resolved(catalog)
                for name, catalog in (("demo", demo_catalog), ("full", full_catalog),
                                      ("100k", catalog_100k[1]))}
    assert resolved["demo"].learning_rate == pytest.approx(300 / options.ARTISTS_PER_RATE)
    assert resolved["full"].learning_rate == pytest.approx(8630 / options.ARTISTS_PER_RATE)
    assert resolved["100k"].learning_rate == options.MAX_RATE  # not 1,111: that diverges
    assert resolved["demo"].steps == resolved["full"].steps == options.MIN_STEPS
    # Past the rate's cap, the steps grow with the context memberships (about 2.1 an artist here),
    # and past 10,000 artists with the movement each membership gets: two fifths as much again at
    # 100,000.
    memberships = sum(pair_sampler.membership_count(catalog_100k[1], kind)
                      for kind in ("genre", "score"))
    move = options.MOVE_PER_MEMBERSHIP * 1.4
    assert resolved["100k"].steps == pytest.approx(move * memberships / options.MAX_RATE, abs=10)
    assert [resolved[name].batch_size for name in ("demo", "full", "100k")] == [512, 2048, 2048]
    # Once the steps outgrow the artists, batches shrink to keep the pairs an artist sees (447 on
    # the full data), down to 1,024: at 4,000 steps the full data's batches are 1,024
    # (447 x 8,630 / 4,000 = 964).
    longer = {steps: bands2vec.TrainOptions(steps=steps).resolved(full_catalog)
              for steps in (1_900, 2_770, 4_000, 1_000_000)}  # 2,770: genre,score,label
    assert {steps: o.batch_size for steps, o in longer.items()} == {1_900: 2048, 2_770: 1024,
                                                                      4_000: 1024, 1_000_000: 1024}
    assert longer[1_000_000].report_every == 250  # 8,630 artists: a report is cheap
    # Reports every 250 steps, or on a big catalog (each reads the whole table) about 20 over the
    # run.
    assert resolved["demo"].report_every == resolved["full"].report_every == 250
    assert resolved["100k"].report_every == resolved["100k"].steps // 20 // 250 * 250 == 1000
    labelled = bands2vec.TrainOptions(contexts="genre,score,label").resolved(full_catalog)
    assert labelled.steps > resolved["full"].steps
    # With labels a step takes 4 times the pairs (1,024 for 2,770 steps), at most the catalog's.
    assert labelled.batch_size == options.LABEL_BATCH_GROWTH * 1024 == 4096
    assert (bands2vec.TrainOptions(contexts="genre,score,label").resolved(demo_catalog).batch_size
            == 512)
    # Each member of the default ensemble takes 0.8 of one model's steps, of one model's pairs;
    # steps the user gives are not cut.
    one = bands2vec.TrainOptions(contexts="genre,score,label", ensemble=1).resolved(full_catalog)
    assert (one.steps, labelled.steps, labelled.ensemble) == (2_770, 2_220, 3)
    assert labelled.batch_size == one.batch_size
    given = bands2vec.TrainOptions(contexts="genre,score,label", steps=2_770).resolved(full_catalog)
    assert given.steps == 2_770 and given.ensemble == 3


@pytest.mark.slow
def test_the_default_rate_trains_a_100k_catalog(catalog_100k, tmp_path):
    """A few hundred steps at 100,000 artists: the loss stays finite (at artists / 90 it was NaN by
    step 500)."""
    _, catalog = catalog_100k
    options = bands2vec.TrainOptions(steps=400).resolved(catalog)
    vectors, stats = training.train_vectors(catalog, options, str(tmp_path), say=lambda line: None)
    assert np.isfinite(stats.loss) and np.all(np.isfinite(vectors))


# ---------------------------------------------------------------------------------------------
# Memory-bounded quality figures, sampled map and projector, exports
# ---------------------------------------------------------------------------------------------

def test_neighbours_of_some_rows_are_those_of_all(demo_trained):
    vectors = artist_vectors.ArtistVectors.load(demo_trained)
    rows = quality.sample_rows(len(vectors), 50, seed=1)
    assert len(rows) == 50 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(vectors.nearest_neighbours(10, rows),
                                  vectors.nearest_neighbours(10)[rows])


@pytest.mark.slow
def test_neighbours_in_a_long_row_through_block_maxima_are_exact(catalog_100k):
    _, catalog = catalog_100k
    vectors = quality.random_like(artist_vectors.ArtistVectors(np.zeros((len(catalog), 64)),
                                                               catalog.facts))
    rows = quality.sample_rows(len(catalog), 40, seed=3)
    assert len(catalog) >= nearest.TOP_BLOCK * 10 * 4  # the block maxima path
    similarity = vectors.unit_vectors[rows] @ vectors.unit_vectors.T
    similarity[np.arange(len(rows)), rows] = -np.inf
    exact = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(vectors.nearest_neighbours(10, rows), exact)
    # Ties everywhere (one-dimensional vectors): the same neighbours' similarities as a full sort.
    flat = vectors.with_vectors(np.sign(vectors.vectors[:, :1]))
    found = flat.nearest_neighbours(10, rows[:5])
    assert np.all(flat.unit_vectors[found, 0] == flat.unit_vectors[rows[:5], None, 0])


@pytest.mark.slow
def test_report_neighbours_are_the_cosine_neighbours(full_run):
    """The last report's neighbours in TensorBoard's Text tab are the final vectors'
    most_similar."""
    import glob

    import tensorflow as tf

    vectors = artist_vectors.ArtistVectors.load(full_run)
    texts = [value.tensor.string_val[0].decode()
             for path in glob.glob(os.path.join(full_run, "events.out.*"))
             for record in tf.compat.v1.train.summary_iterator(path)
             for value in record.summary.value
             if value.tag == "neighbours"
             and record.step == run_record.read(full_run).stats.steps]
    rows = [line.split(" | ") for line in texts[-1].splitlines()[2:]]
    assert len(rows) == 4
    for artist, nearest in rows:
        artist = artist.lstrip("| ")
        assert nearest.rstrip(" |") == ", ".join(
            name for name, _ in vectors.most_similar(artist, topn=5))


@pytest.mark.slow
def test_sampled_quality_figures_are_close_to_the_exact_ones(full_run, monkeypatch):
    vectors = artist_vectors.ArtistVectors.load(full_run)
    exact = quality.quality_report(vectors)
    assert exact["measured_on"] == len(vectors)
    monkeypatch.setattr(quality, "QUALITY_SAMPLE", 2_000)
    sampled = quality.quality_report(vectors)
    assert sampled["measured_on"] == 2_000
    for name in ("genre", "score", "label"):
        assert sampled[name]["trained"] == pytest.approx(exact[name]["trained"], abs=0.03)
    assert (sampled["score_difference"]["trained"]
            == pytest.approx(exact["score_difference"]["trained"], rel=0.1))


@pytest.mark.slow
def test_a_catalog_past_the_map_size_gets_a_sampled_map_and_projector(tmp_path, monkeypatch,
                                                                      demo_catalog, capsys):
    monkeypatch.setattr(plots, "MAP_ARTISTS", 200)
    monkeypatch.setattr(vector_files, "EXPORT_MAX", 250)
    # Probe 16: under umask 000 the run's folders were made for anyone to write in, and another user
    # making projector/ in it first ended the run, keeping nothing.
    umask = os.umask(0)
    try:
        run = bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path),
                              name="r", say=quiet)
    finally:
        os.umask(umask)
    run_dir = tmp_path / "r"
    assert [oct(os.stat(folder).st_mode & 0o777) for folder in (
        run_dir, run_dir / run_folder.CHECKPOINT_DIR, run_dir / run_folder.PROJECTOR_SAMPLE_DIR)
            ] == ["0o755"] * 3
    counts = np.array([len(a.review_ids) for a in demo_catalog])
    rows = plots.map_rows(counts)
    assert len(rows) == 200 and counts[rows].min() >= np.sort(counts)[-200]  # the most-reviewed
    sample = run_dir / run_folder.PROJECTOR_SAMPLE_DIR
    lines = (sample / metadata.METADATA_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 201 and lines[1].split("\t")[0] == demo_catalog.names[rows[0]]
    assert np.loadtxt(sample / vector_files.VECTORS_TSV, delimiter="\t").shape == (200, 64)
    states = json.loads((run_dir / tensorboard_files.BOOKMARKS_FILE).read_text())
    assert all(len(state["projections"]) == 200 and state["dataSetDimensions"] == [200, 64]
               for state in states)
    config = (run_dir / tensorboard_files.PROJECTOR_FILE).read_text()
    assert "projector/vectors.tsv" in config and "projector/metadata.tsv" in config
    # Past EXPORT_MAX the text exports wait for `run.py export`.
    assert (not (run_dir / vector_files.WORD2VEC_FILE).exists()
            and not (run_dir / vector_files.VECTORS_TSV).exists())
    import run as command_line
    monkeypatch.setattr(command_line, "EXPORT_MAX", 250)
    capsys.readouterr()
    command_line._say_summary(run, str(tmp_path))
    said = capsys.readouterr().out
    command = re.search(r"no text exports past 250 artists: (.*) writes them", said)[1]
    assert shlex.split(command)[:3] == ["python", "run.py", "export"]
    assert command_line.main(shlex.split(command)[2:]) == 0  # the summary's command, pasted
    assert (len((run_dir / vector_files.WORD2VEC_FILE).read_text(encoding="utf-8").splitlines())
            == len(demo_catalog) + 1)
    record = run_record.read(str(run_dir))
    assert record.peak_memory_mb > 100 and set(record.phases) == {"load", "train", "write", "plots"}


@pytest.mark.slow
@VERY_SLOW
def test_a_100k_catalog_end_to_end(catalog_100k, tmp_path):
    path, _ = catalog_100k
    record = run_record.read(train_run(tmp_path, path, plots=True))
    assert record.state == "finished" and np.isfinite(record.stats.loss)
    assert record.quality["genre"]["trained"] >= 0.95 and record.quality["score"]["trained"] >= 0.75
    assert record.peak_memory_mb <= 3 * 1024
