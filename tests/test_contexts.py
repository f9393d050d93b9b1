"""Context kinds beyond the tutorial's: record labels and release eras, their shares, pseudo-artists
and pseudo-labels, the evaluate figures that measure them, and training that diverges."""
import json
import os

import numpy as np
import pytest

import bands2vec
import contexts
import demo_data
import metadata
import run_record
import data_utils
from helpers import METADATA_HEADER, assert_refused, run_cli, train_run
from errors import DataError
from pair_sampler import PairSampler
from synthetic_catalog import write_tables


# ---------------------------------------------------------------------------------------------
# --contexts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, shares", [
    ("genre,score", {"genre": 0.6, "score": 0.4}),
    ("genre, score ,label", {"genre": 0.375, "score": 0.25, "label": 0.375}),
    ("genre=0.5,score,label=0.2", {"genre": 0.5, "score": 0.3, "label": 0.2}),
    ("label", {"label": 1.0}),
    ("year=0.25,label", {"year": 0.25, "label": 0.75}),
    ("genre=1,score", {"genre": 1.0, "score": 0.0}),
])
def test_contexts_parser(spec, shares):
    parsed = contexts.parse_contexts(spec)
    assert list(parsed) == list(shares)
    assert parsed == pytest.approx(shares)
    assert contexts.parse_contexts(contexts.format_contexts(parsed)) == pytest.approx(shares)


def test_canonical_spec_of_four_free_kinds_parses_again():
    spec = contexts.format_contexts(contexts.parse_contexts("genre,score,label,year"))
    assert sum(contexts.parse_contexts(spec).values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("spec, message", [
    ("genre,mood", "unknown context 'mood'"),
    ("genre=1.5,score", "share of genre must be from 0 to 1, not '1.5'"),
    ("genre=-0.1,score", "share of genre must be from 0 to 1"),
    ("genre=lots", "share of genre must be from 0 to 1, not 'lots'"),
    ("genre=0.7,score=0.6", "add up to 1.3, over 1"),
    ("genre=0.5,score=0.3", "must add up to 1"),
    ("genre,genre", "genre is given twice"),
    ("", "--contexts is empty: name at least one of genre, score, label, year"),
])
def test_contexts_parser_refuses_bad_values(spec, message):
    with pytest.raises(ValueError, match=message):
        contexts.parse_contexts(spec)


def test_genre_share_is_the_genre_context_share():
    assert (contexts.parse_contexts("genre,score", genre_share=0.3)
            == pytest.approx({"genre": 0.3, "score": 0.7}))
    with pytest.raises(ValueError, match="once"):
        contexts.parse_contexts("genre=0.5,score", genre_share=0.3)
    with pytest.raises(ValueError, match="needs the genre context"):
        contexts.parse_contexts("label,score", genre_share=0.3)


@pytest.mark.parametrize("args, message", [  # an unknown kind: test_hostile_inputs.py
    (["--contexts", "label=2"], "share of label must be from 0 to 1"),
    (["--contexts", "genre=0.9,label=0.9"], "over 1"),
    (["--contexts", "genre=0.5,score", "--genre-share", "0.4"], "give the genre share once"),
])
def test_bad_contexts_on_the_command_line(tmp_path, args, message):
    assert_refused(run_cli("--data", "demo", "--logdir", str(tmp_path), *args), message)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Reading labels and years
# ---------------------------------------------------------------------------------------------

def test_labels_and_years_from_the_full_data(full_data_csv, full_catalog):
    from_csv = data_utils.load_catalog(full_data_csv)
    assert [(a.labels, a.years) for a in from_csv] == [(a.labels, a.years) for a in full_catalog]
    radiohead = full_catalog["radiohead"]
    assert radiohead.main_label == "capitol" and "xl" in radiohead.labels
    assert radiohead.years[0] == 2000 and radiohead.era == "2005-2009"
    # 88% of artists share a real label with another artist (issue 9); nearly all have one.
    assert sum(bool(a.labels) for a in full_catalog) / len(full_catalog) > 0.95
    assert not {label.casefold() for a in full_catalog for label in a.labels} & contexts.NOT_A_LABEL


def test_label_context_is_label_within_genre(full_catalog):
    groups = full_catalog.context_groups("label")
    burial, kode9 = full_catalog.index["burial"], full_catalog.index["kode9"]
    assert (burial in groups[("hyperdub", "electronic")]
            and kode9 in groups[("hyperdub", "electronic")])
    for (label, genre), ids in list(groups.items())[:500]:
        assert all(label in full_catalog.artist(i).labels for i in ids)
        assert all(genre in (full_catalog.artist(i).genres or (contexts.NO_GENRE,)) for i in ids)
    eras = full_catalog.context_groups("year")
    assert (full_catalog.index["radiohead"] in eras[2005]
            and all(start % contexts.ERA_YEARS == 0 for start in eras))


def test_pseudo_artists_left_out_unless_asked(full_data, full_catalog):
    assert "various artists" not in full_catalog.index and "soundtrack" not in full_catalog.index
    assert full_catalog.left_out == {"various artists": 687, "soundtrack": 1}
    everyone = data_utils.load_catalog(full_data, include_pseudo_artists=True)
    assert len(everyone) == 8632 and "various artists" in everyone.index and not everyone.left_out
    assert "soundtrack of our lives" in full_catalog.index  # a real band that only starts like one


def test_a_missing_table_is_an_error_only_for_its_context(tmp_path):
    tables = demo_data.demo_tables(300)
    for form in ("sqlite", "csv"):
        path = write_tables(tables, str(tmp_path / form), csv=form == "csv",
                            only=("reviews", "genres"))
        catalog = data_utils.load_catalog(path)
        assert catalog.tables == {"reviews", "genres"} and not any(a.labels for a in catalog)
        PairSampler(catalog)  # the tutorial's contexts need nothing more
        with pytest.raises(DataError, match="no labels table, which the label context needs"):
            catalog.context_groups("label")
        with pytest.raises(DataError, match="no years table"):
            catalog.context_groups("year")
    assert_refused(run_cli("--data", path, "--logdir", str(tmp_path / "logs"), "--contexts",
                           "genre,label"),
                    "no labels table")
    assert not os.path.exists(tmp_path / "logs" ) or os.listdir(tmp_path / "logs") == []


@pytest.mark.parametrize("table, column, unusable, kind", [
    ("labels", "label", None, "label"), ("labels", "label", "self-released", "label"),
    ("years", "year", "soon", "year")], ids=["labels NULL", "no record label", "years no numbers"])
def test_a_kind_asked_for_whose_table_holds_nothing_usable_is_refused(tmp_path, table, column,
                                                                      unusable, kind):
    """Every labels.label NULL trained with label's share of the pairs silently given to the
    others."""
    tables = demo_data.demo_tables(60)
    tables[table] = tables[table].assign(**{column: unusable})
    catalog = data_utils.load_catalog(write_tables(tables, str(tmp_path / "d")))
    options = bands2vec.TrainOptions(contexts=f"genre,score,{kind}")
    with pytest.raises(DataError) as refused:
        options.resolved(catalog)
    assert str(refused.value) == (f"{catalog.source}: --contexts asks for {kind}, but no review "
                                  f"has one (every {table}.{column} is NULL, unusable or of no "
                                  f"review here); leave {kind} out of --contexts")
    assert bands2vec.TrainOptions().resolved(catalog).steps > 0  # not asked for, it is not needed


# ---------------------------------------------------------------------------------------------
# The sampler
# ---------------------------------------------------------------------------------------------

def groups_of(artist, kind):
    """The groups of one kind an artist belongs to, from its own record."""
    return {"genre": lambda: set(artist.genres), "score": lambda: {artist.score_bucket},
            "label": lambda: {(label, genre) for label in artist.labels
                              for genre in artist.genres or (contexts.NO_GENRE,)},
            "year": lambda: {year - year % contexts.ERA_YEARS for year in artist.years}}[kind]()


def test_context_groups_are_each_artists_own_groups(full_catalog):
    for kind in contexts.CONTEXTS:
        found = [set() for _ in range(len(full_catalog))]
        for key, ids in full_catalog.context_groups(kind).items():
            assert list(ids) == sorted(set(ids))
            for i in ids:
                found[i].add(key)
        assert found == [groups_of(artist, kind) for artist in full_catalog], kind


def test_sampler_draws_each_kind_at_its_share(full_catalog):
    shares = {"genre": 0.3, "score": 0.2, "label": 0.35, "year": 0.15}
    sampler = PairSampler(full_catalog, shares, seed=4)
    inputs, labels, kind = sampler.pairs_with_kind(200_000)
    labels = labels[:, 0]
    assert not np.any(inputs == labels)
    keys = {name: [groups_of(a, name) for a in full_catalog] for name in shares}
    for k, name in enumerate(sampler.kinds):
        drawn = kind == k
        assert abs(drawn.mean() - shares[name]) < 0.01
        assert all(keys[name][a] & keys[name][b]
                   for a, b in zip(inputs[drawn][:3000], labels[drawn][:3000]))
    again = PairSampler(full_catalog, shares, seed=4).pairs(200_000)
    assert np.array_equal(again[0], inputs) and np.array_equal(again[1][:, 0], labels)


def test_negatives_follow_the_mix(full_catalog):
    sampler = PairSampler(full_catalog, {"genre": 0.5, "label": 0.5}, seed=2)
    _, labels = sampler.pairs(1_000_000)
    drawn = np.bincount(labels[:, 0], minlength=len(full_catalog)) / 1_000_000
    assert np.corrcoef(drawn, sampler.context_distribution())[0, 1] > 0.95


# ---------------------------------------------------------------------------------------------
# Runs: metadata, evaluate, resume, divergence
# ---------------------------------------------------------------------------------------------

def test_metadata_has_main_label_and_era(demo_trained, demo_catalog):
    columns = metadata.read_columns(demo_trained)
    assert list(columns) == METADATA_HEADER
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    for row, artist in zip(rows, demo_catalog):
        # An empty field is written as one space (metadata.tsv_field).
        assert row["main_label"].strip() == artist.main_label and row["era"] == artist.era
        assert (list(filter(None, row["labels"].strip().split(contexts.LABEL_SEPARATOR)))
                == list(artist.labels))
    assert sum(bool(row["era"]) for row in rows) == len(rows) == len(demo_catalog)


def test_labels_and_genres_holding_their_separators_are_read_back_whole(tmp_path):
    """The label `a; x` was read back from metadata.tsv as two labels, `a` and `x`."""
    tables = demo_data.demo_tables(60)
    odd = ["a; x", "guided by voices, inc.", "back\\slash; ", "ends\\", "\\; ", "x;; y"]
    tables["labels"] = tables["labels"].assign(label=[odd[i % len(odd)] + str(i % 7)
                                                      for i in range(len(tables["labels"]))])
    tables["genres"] = tables["genres"].assign(genre=tables["genres"]["genre"] + ", and\\, more")
    catalog = data_utils.load_catalog(write_tables(tables, str(tmp_path / "d")))
    metadata.write_metadata(str(tmp_path), catalog.facts, np.zeros(len(catalog), np.int64))
    facts, _ = metadata.read_artists(str(tmp_path))
    assert facts.labels == catalog.facts.labels and facts.genres == catalog.facts.genres
    assert any("; " in label for labels in facts.labels for label in labels)


def test_metadata_of_runs_before_the_escapes_reads_a_backslash_as_itself():
    columns = {"labels": ["warp\\records; c:\\x", " "]}
    assert contexts.CONTEXTS["label"].from_metadata(
        {**columns, "main_label": ["warp\\records", " "]}
    )["labels"] == [("warp\\records", "c:\\x"), ()]


@pytest.mark.slow
def test_evaluate_reports_labels_and_years(demo_run, tmp_path):
    result = run_cli("evaluate", "--logdir", os.path.dirname(demo_run))
    assert result.returncode == 0, result.stderr
    assert ("neighbours sharing a record label" in result.stdout
            and "mean release-year gap" in result.stdout)
    report = json.loads(run_cli("evaluate", "--json", "--logdir", os.path.dirname(demo_run)).stdout)
    assert 0 < report["label"]["random"] < report["label"]["trained"] <= 1
    assert 0 < report["year_gap"]["trained"] and 0 < report["year_gap"]["random"]

    path = write_tables(demo_data.demo_tables(300), str(tmp_path / "bare"),
                        only=("reviews", "genres"))
    bare = train_run(tmp_path / "logs", path, steps=100)
    result = run_cli("evaluate", "--logdir", os.path.dirname(bare))
    assert ("the data has no labels table" in result.stdout
            and "the data has no years table" in result.stdout)
    report = json.loads(run_cli("evaluate", "--json", "--logdir", os.path.dirname(bare)).stdout)
    assert report["label"]["trained"] is None


@pytest.mark.slow
def test_resume_keeps_the_contexts(tmp_path):
    run_dir = train_run(tmp_path, "demo", contexts=contexts.parse_contexts("genre,label=0.5"),
                        steps=100)
    first = run_record.read(run_dir).options.contexts
    assert first == {"genre": 0.5, "label": 0.5}
    result = run_cli("--resume", "--logdir", str(tmp_path), "--run", "trained", "--steps", "150",
                     "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "genre=0.5,label=0.5" in result.stdout
    record = run_record.read(run_dir)
    assert record.options.contexts == first and record.stats.steps == 150
    assert_refused(run_cli("--resume", "--logdir", str(tmp_path), "--run", "trained",
                           "--contexts", "genre"),
                    "only --steps")


@pytest.mark.slow
def test_divergence_on_resume_keeps_the_last_good_checkpoint(tmp_path):
    from vector_files import checkpoint_vectors

    run_dir = train_run(tmp_path, "demo", steps=100)
    before = checkpoint_vectors(run_dir)
    record = run_record.read(run_dir)
    # A resumed run keeps its options; a damaged rate in run.json stands in for a run that goes
    # wrong.
    record.options.learning_rate = 1e9
    run_record.write(run_dir, record)
    assert_refused(run_cli("--resume", "--logdir", str(tmp_path), "--run", "trained", "--steps",
                           "200", "--no-plots"),
                    "training diverged")
    assert np.array_equal(checkpoint_vectors(run_dir), before)
    assert run_record.read(run_dir).stats.steps == 100


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["genre,score,label,year", "label", "year"])
def test_default_rate_is_stable_for_every_mix(tmp_path, spec):
    run_dir = train_run(tmp_path, "demo", contexts=contexts.parse_contexts(spec))
    assert np.isfinite(run_record.read(run_dir).stats.loss)


@pytest.mark.slow
def test_label_context_on_the_full_data(tmp_path, full_data):
    """Floors under the benchmark's figures (README): labelmates become neighbours, genre holds."""
    run_dir = train_run(tmp_path, full_data, contexts=contexts.parse_contexts("genre,score,label"))
    quality = run_record.read(run_dir).quality
    assert quality["label"]["trained"] >= 0.45 and quality["label"]["random"] < 0.02
    assert quality["genre"]["trained"] >= 0.95
    assert quality["score_difference"]["trained"] < quality["score_difference"]["random"]
