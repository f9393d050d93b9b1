"""Ensembles of seeds (--ensemble N): one model is the tutorial's, an ensemble's similarities are
its members' mean, every answer says how far the members agree, and evaluate --against compares two
runs."""
import json
import os
import shutil
import warnings

import numpy as np
import pytest

import bands2vec
import data_utils
import ensemble
import run
import vector_files
from artist_vectors import ArtistVectors
from errors import QueryError
from helpers import assert_refused, quiet, run_cli, train_run
from options import LABEL_ENSEMBLE, TrainOptions
from quality import neighbour_stability, random_like


def _checkpoint_tables(folder):
    """The members' embeddings tables as the checkpoint holds them, read apart from the run's
    code."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{folder}/checkpoints"))
    names = sorted(name for name in reader.get_variable_to_shape_map()
                   if name.endswith("embeddings/embeddings"))
    return [reader.get_tensor(name) for name in names]


def _cosines(table, rows):
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    return unit[rows] @ unit.T


def test_the_default_ensemble_follows_the_contexts(demo_catalog):
    def members(**given):
        return TrainOptions(**given).resolved(demo_catalog).ensemble

    assert members() == 1  # the tutorial's run: one model
    assert members(contexts="genre,score,label") == LABEL_ENSEMBLE > 1
    assert members(contexts="genre,score,label=0") == 1  # no label pairs, no label ensemble
    assert members(contexts="genre,score,label", ensemble=2) == 2
    # On a big catalog fewer members, each a table of its own: 2 at a million artists.
    labelled = TrainOptions(contexts="genre,score,label")
    assert labelled.default_ensemble(8_630) == LABEL_ENSEMBLE
    assert labelled.default_ensemble(1_000_000) == 2 and labelled.default_ensemble(10**8) == 1


def test_member_seeds_of_different_runs_are_disjoint():
    seeds = {seed: ensemble.member_seeds(seed, 10) for seed in (0, 1, 1000)}
    assert seeds[0][0] == 0 and seeds[1000][0] == 1000  # member 0 is the single model of --seed
    assert all(len(set(s)) == 10 for s in seeds.values())
    assert not set(seeds[0]) & set(seeds[1000]) and not set(seeds[0]) & set(seeds[1])
    assert ensemble.member_seeds(0, 10) == seeds[0]  # the same seed, the same members


def test_one_member_is_the_single_model(demo_trained, tmp_path):
    """--ensemble 1 trains exactly the tutorial's single model of the seed: the same vectors, byte
    for byte, as the default run, and those are the checkpoint's one table as it is (not made
    unit)."""
    explicit = train_run(tmp_path, "demo", steps=300, ensemble=1)
    stored = np.load(f"{explicit}/vectors.npy")
    assert stored.tobytes() == np.load(f"{demo_trained}/vectors.npy").tobytes()
    (table,) = _checkpoint_tables(explicit)
    assert stored.tobytes() == table.tobytes()
    assert np.ptp(np.linalg.norm(stored, axis=1)) > 0.01  # raw vectors, as one model always stored
    assert bands2vec.open_run(explicit).vectors.members == 1


def test_an_ensembles_cosine_is_its_members_mean(demo_ensemble):
    tables = _checkpoint_tables(demo_ensemble)
    assert len(tables) == 3 and not np.allclose(tables[0], tables[1])  # members differ
    run = bands2vec.open_run(demo_ensemble)
    stored = run.vectors.vectors
    assert run.options.ensemble == 3 and stored.shape == (len(tables[0]), 3 * tables[0].shape[1])
    rows = np.arange(0, len(stored), 7)
    mean = np.mean([_cosines(table, rows) for table in tables], axis=0)
    np.testing.assert_allclose(stored[rows] @ stored.T, mean, atol=2e-6)
    # The members come back from the stored vectors alone, as the run's answers split them.
    for unit, table in zip(ensemble.member_vectors(stored, 3), tables):
        np.testing.assert_allclose(unit, table / np.linalg.norm(table, axis=1, keepdims=True),
                                   atol=2e-6)
    agreement = run.quality["member_agreement"]
    assert 0.2 < agreement["trained"] < 1 and agreement["random"] < 0.1


def test_answers_say_how_far_the_members_agree(demo_ensemble):
    run = bands2vec.open_run(demo_ensemble)
    name = run.vectors.names[0]
    answer = run_cli("similar", name, "-k", "5", "--json", "--logdir", str(demo_ensemble))
    (answer,) = json.loads(answer.stdout)
    rows = answer["results"]
    # Each member's own 5 nearest, from the checkpoint's tables: what the fields must count.
    i = run.vectors.index(name)
    tops = []
    for table in _checkpoint_tables(demo_ensemble):
        similarity = _cosines(table, [i])[0]
        similarity[i] = -np.inf
        tops.append(set(np.argsort(-similarity)[:5]))
    for row in rows:
        j = run.vectors.index(row["artist"])
        assert row["members"] == 3
        assert row["in_members_top_k"] == sum(j in top for top in tops)
        spread = np.std([_cosines(table, [i])[0, j] for table in _checkpoint_tables(demo_ensemble)])
        assert row["similarity_spread"] == pytest.approx(spread, abs=1e-5)
    assert any(row["in_members_top_k"] == 3 for row in rows)
    text = run_cli("similar", name, "-k", "5", "--logdir", str(demo_ensemble)).stdout.splitlines()
    text = [line for line in text if line.startswith("Artist: ")]  # after a note on twins, if any
    assert [f"In the top 5 of {row['in_members_top_k']}/3 members" in line
            for row, line in zip(rows, text)] == [True] * 5


def test_the_spread_of_an_asked_artist_is_a_number(demo_ensemble):
    """An answer that is one of the artists asked about had the spread NaN, with a
    RuntimeWarning."""
    vectors = bands2vec.open_run(demo_ensemble).vectors
    first, second = vectors.names[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asked, other = vectors.certainty(first, [], [first, second], 3)
    assert (asked["similarity_spread"] == pytest.approx(0, abs=1e-6)
            and other["similarity_spread"] > 0)


def test_members_of_a_damaged_vectors_npy_make_that_question_an_error(demo_ensemble, tmp_path,
                                                                      capsys):
    """A finite row of 3e38 passed the checks, overflowed the members' similarities and made the
    spread NaN: `--json` printed nothing but Python's
    `Out of range float values are not JSON compliant`."""
    copy = tmp_path / "logs" / "ens"
    shutil.copytree(demo_ensemble, copy, ignore=shutil.ignore_patterns("checkpoints"))
    vectors = np.load(copy / vector_files.VECTORS_FILE)
    names = bands2vec.open_run(str(copy)).vectors.names
    vectors[5] = 3e38
    np.save(copy / vector_files.VECTORS_FILE, vectors)
    status = run.main(["similar", names[0], names[5], "-k", "300", "--json", "--logdir", str(copy)])
    out, err = capsys.readouterr()
    first, fifth = json.loads(out)
    assert status == 2 and fifth["error"] == first["error"] == (
        "the members' similarities are not numbers: the run's vectors.npy is damaged")
    assert err.splitlines() == [f"run.py: error: {first['error']}"] * 2


def test_one_models_answers_have_no_member_figures(demo_trained):
    name = bands2vec.open_run(demo_trained).vectors.names[0]
    answer = run_cli("similar", name, "-k", "3", "--json", "--logdir", str(demo_trained))
    (answer,) = json.loads(answer.stdout)
    assert len(answer["results"]) == 3
    assert not {"members", "in_members_top_k", "similarity_spread"} & set(answer["results"][0])
    text = run_cli("similar", name, "-k", "3", "--logdir", str(demo_trained)).stdout
    assert "Similarity: " in text and "members" not in text


@pytest.mark.slow  # six processes of run.py
def test_evaluate_against_compares_two_runs_neighbours(demo_trained, demo_ensemble, tmp_path):
    def against(run, other):
        result = run_cli("evaluate", "--json", "--logdir", str(run), "--against", str(other))
        return json.loads(result.stdout)["against"]

    vectors = bands2vec.open_run(demo_trained).vectors
    itself = neighbour_stability(vectors, vectors, k=10)
    assert (itself["jaccard"], itself["kept"], itself["artists"]) == (1.0, 10.0, 300)
    # Probe 17's smaller fault: a run against itself agreed in full, with no word that it said
    # nothing; probe 20: so did a copy of it.
    copy = shutil.copytree(demo_trained, tmp_path / "copy")
    for same in (f"{demo_trained}/", copy):
        assert_refused(run_cli("evaluate", "--logdir", str(demo_trained), "--against", str(same)),
                       f"has the vectors of {demo_trained} (the run itself, a copy, or its seed "
                       f"again): they agree in full, which says nothing; compare it against a run "
                       f"of another seed")
    # Probe 20: a run gone since it was opened was os.path.samefile's FileNotFoundError.
    opened = bands2vec.open_run(str(copy))
    shutil.rmtree(copy)
    with pytest.raises(bands2vec.RunError, match=" has changed since this Run read it "):
        bands2vec.open_run(str(demo_trained)).against(opened)
    other = against(demo_trained, demo_ensemble)
    assert 0 < other["jaccard"] < 1 and other["ensemble"] == 3
    # A top-10 keeping n of 10 has Jaccard n / (20 - n), convex in n: the mean of those is at least
    # the Jaccard of the mean kept, and at most the mean kept's share of 10.
    assert other["kept"] / (20 - other["kept"]) - 1e-9 <= other["jaccard"] <= other["kept"] / 10
    text = run_cli("evaluate", "--logdir", str(demo_trained), "--against",
                   str(demo_ensemble)).stdout
    assert f"{other['kept']:.1f} of 10 kept" in text and "unknown for one model" not in text
    assert "unknown for one model" in run_cli("evaluate", "--logdir", str(demo_trained)).stdout
    # Probe 17's smaller fault: it advised training the run to compare with.
    logs = os.path.dirname(demo_trained)
    assert_refused(run_cli("evaluate", "--logdir", logs, "--against", "no-such-run"),
                   f"no-such-run: no such run; give a run's folder, or one "
                   f"of the runs in {logs}: trained")
    for name, problem in (("", "--against '': it is empty"),
                          ("-x", "--against '-x': it starts with '-'"),
                          ("/etc/hostname",
                           "--against /etc/hostname: not a run's folder (not a folder)"),
                          ("/no/such", "--against /no/such: not a run's folder (no such folder)"),
                          ("/etc", "--against /etc: not a run's folder (no run.json in it)")):
        assert_refused(run_cli("evaluate", "--logdir", str(demo_trained), f"--against={name}"),
                       problem)


@pytest.mark.slow  # resumes in-process twice
def test_an_ensemble_resumes(tmp_path):
    folder = train_run(tmp_path, "demo", steps=150, ensemble=2)
    first = np.load(f"{folder}/vectors.npy")
    run = bands2vec.resume(str(tmp_path), "trained", steps=250, plots=False, say=quiet)
    assert run.record.stats.steps == 250 and run.options.ensemble == 2
    assert run.vectors.vectors.shape == first.shape and not np.allclose(run.vectors.vectors, first)


def test_tensorboard_shows_the_members_agreement(demo_ensemble):
    import glob

    import tensorflow as tf
    from tensorboard.util import tensor_util

    values = [(record.step, float(tensor_util.make_ndarray(value.tensor)))
              for path in sorted(glob.glob(f"{demo_ensemble}/events.out.tfevents.*"))
              for record in tf.compat.v1.train.summary_iterator(path)
              for value in record.summary.value if value.tag == "quality/member_agreement_at_10"]
    assert len(values) >= 2 and all(0 < value < 1 for _, value in values)
    final = bands2vec.open_run(demo_ensemble).quality["member_agreement"]["trained"]
    assert values[-1] == (300, pytest.approx(final, abs=1e-6))


def test_runs_with_no_artist_in_common_are_refused(demo_catalog, tmp_path):
    (tmp_path / "reviews.csv").write_text("reviewid,artist,score\n" + "".join(
        f"{i},zz {i},{6 + i / 10}\n" for i in range(1, 7)))
    (tmp_path / "genres.csv").write_text("reviewid,genre\n" + "".join(
        f"{i},{'rock' if i % 2 else 'jazz'}\n" for i in range(1, 7)))
    other = data_utils.load_catalog(str(tmp_path))
    first, second = (random_like(ArtistVectors(np.zeros((len(catalog), 8), np.float32),
                                               catalog.facts))
                     for catalog in (demo_catalog, other))
    with pytest.raises(QueryError, match="^the two runs have no artist in common to compare$"):
        neighbour_stability(first, second)
