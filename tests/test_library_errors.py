"""The library's errors: every wrong type or value given to TrainOptions, train, resume, open_run
and Run.evaluate, every run.json, vectors.npy and metadata.tsv it cannot read, and every expression
too long is a Bands2VecError in one line, raised where the value enters, before anything is loaded
or written; never another exception, a NaN or a RuntimeWarning. The parser takes time linear in its
input."""
import dataclasses
import fractions
import io
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bands2vec
import expressions
import metadata
import options
import run_record
import vector_files
from artist_vectors import ArtistVectors
from errors import Bands2VecError, OptionError, QueryError, RunError, UnknownArtist
from helpers import METADATA_HEADER, REPO


def _one_line(error):
    assert "\n" not in str(error.value), str(error.value)
    return str(error.value)


# ---------------------------------------------------------------------------------------------
# TrainOptions
# ---------------------------------------------------------------------------------------------

BAD_OPTIONS = [  # TrainOptions' arguments: what it says
    ({"steps": "5"}, "--steps must be a whole number, not '5'"),
    ({"steps": True}, "--steps must be a whole number, not True"),
    ({"steps": 0}, "--steps must be at least 1, not 0"),
    ({"steps": 2 ** 63}, "--steps must be at most 9,223,372,036,854,775,807"),
    ({"seed": 1.5}, "--seed must be a whole number, not 1.5"),
    ({"seed": -1}, "--seed must be from 0 to 4,294,967,295, not -1"),
    ({"seed": None}, "--seed must be a whole number, not None"),
    ({"embedding_size": 2.0}, "--embedding-size must be a whole number, not 2.0"),
    ({"embedding_size": -3}, "--embedding-size must be at least 1, not -3"),
    ({"batch_size": 0}, "--batch-size must be at least 1, not 0"),
    ({"num_sampled": False}, "--num-sampled must be a whole number, not False"),
    ({"learning_rate": 0}, "--learning-rate must be above 0, not 0"),
    ({"learning_rate": -0.5}, "--learning-rate must be above 0, not -0.5"),
    ({"learning_rate": "0.1"}, "--learning-rate must be a number, not '0.1'"),
    ({"learning_rate": math.inf}, "--learning-rate must be a finite number, not inf"),
    ({"learning_rate": 10 ** 400}, "--learning-rate must be a finite number, not 1000"),
    # A subnormal rate trained and left the vectors as they began; a rate past any divergence is no
    # rate.
    ({"learning_rate": 1e-320}, "--learning-rate must be from 1e-06 to 1e+09, not 9.99989e-321"),
    ({"learning_rate": 1e300}, "--learning-rate must be from 1e-06 to 1e+09, not 1e+300"),
    ({"init_scale": math.nan}, "init_scale must be above 0, not nan"),
    ({"init_scale": math.inf}, "init_scale must be a finite number, not inf"),
    ({"init_scale": 0.0}, "init_scale must be above 0, not 0.0"),
    ({"init_scale": 1e30}, "init_scale must be from 1e-30 to 1000, not 1e+30"),  # it diverged
    ({"summary_every": 0}, "summary_every must be at least 1, not 0"),
    ({"report_every": -1}, "report_every must be at least 1, not -1"),
    ({"steps_per_draw": 0}, "steps_per_draw must be at least 1, not 0"),
    ({"valid_size": 0}, "valid_size must be at least 1, not 0"),
    ({"threads": 0}, "threads must be from 1 to 1,024, not 0"),
    ({"threads": 10 ** 6}, "threads must be from 1 to 1,024, not 1000000"),
    ({"concurrent_steps": 10 ** 6}, "--concurrent-steps must be from 1 to 1,024"),
    ({"xla_tables": "yes"}, "xla_tables must be True or False, not 'yes'"),
    ({"contexts": {"mood": 1}},
     "--contexts: unknown context 'mood'; choose from genre, score, label, year"),
    ({"contexts": {}}, "--contexts is empty: name at least one of genre, score, label, year"),
    ({"contexts": {"genre": -1, "score": 2}},
     "--contexts: the share of genre must be from 0 to 1, not -1"),
    ({"contexts": {"genre": 0.5}}, "--contexts: the shares add up to 0.5; they must add up to 1"),
    ({"contexts": {"genre": fractions.Fraction(1, 3), "score": 1}},  # was a TypeError from format()
     "--contexts: the shares add up to 1.33333; they must add up to 1"),
    ({"contexts": ""}, "--contexts is empty: name at least one of genre, score, label, year"),
    ({"contexts": {"genre": math.nan, "score": 1}},
     "--contexts: the share of genre must be from 0 to 1, not nan"),
    ({"contexts": {"genre": "0.5", "score": 0.5}},
     "--contexts: the share of genre must be from 0 to 1, not '0.5'"),
    # Probe 17's smaller fault: a share left empty after its `=` was taken as none given.
    ({"contexts": "genre=,score"}, "--contexts: the share of genre must be from 0 to 1, not ''"),
    ({"contexts": 5},
     "--contexts must be a spec such as 'genre,score,label=0.3' or a {kind: share} dict, not 5"),
    ({"contexts": "genre,mood"}, "--contexts: unknown context 'mood'"),
]


@pytest.mark.parametrize("arguments, message", BAD_OPTIONS,
                         ids=[str(a)[:40] for a, _ in BAD_OPTIONS])
def test_options_are_checked_as_they_enter(arguments, message):
    with pytest.raises(OptionError) as error:
        bands2vec.TrainOptions(**arguments)
    assert _one_line(error) == message or _one_line(error).startswith(message), str(error.value)


class _ReprFails:
    def __repr__(self):
        raise RuntimeError("no repr")


class _ReprOfTwoLines:
    def __repr__(self):
        return "first\nsecond"


ODD_VALUES = {"a repr that fails": _ReprFails(), "a repr of two lines": _ReprOfTwoLines(),
              "100,000 numbers": list(range(100_000)), "a 3 x 3 array": np.zeros((3, 3)),
              "10 ** 400": 10 ** 400, "10 ** 5000": 10 ** 5000, "-10 ** 400": -10 ** 400}


@pytest.mark.parametrize("option", ["steps", "learning_rate", "xla_tables", "contexts",
                                    "contexts share"])
@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES)
def test_a_wrong_value_is_quoted_in_one_short_line(option, value):
    """Messages quoted the value's whole repr: 689 KB for a long list, three lines for an array, the
    repr's own error where it failed, Python's 4,300-digit limit for a huge int."""
    arguments = ({"contexts": {"genre": value, "score": 1}} if option == "contexts share"
                 else {option: value})
    with pytest.raises(OptionError) as error:
        bands2vec.TrainOptions(**arguments)
    assert len(_one_line(error)) <= 150, str(error.value)


def test_an_expression_is_quoted_by_the_same_rule(demo_copy):
    with pytest.raises(QueryError) as error:
        bands2vec.open_run(str(demo_copy)).vectors.query("'" + "x" * 1000)
    assert _one_line(error) == f"unclosed ' in {repr(chr(39) + 'x' * 59)[:57]}...", str(error.value)


def test_options_set_after_they_were_made_are_checked_by_train(tmp_path):
    changed = bands2vec.TrainOptions()
    changed.steps = "5"
    with pytest.raises(OptionError, match="--steps must be a whole number, not '5'"):
        bands2vec.train("demo", changed, logs=str(tmp_path / "logs"))
    assert not (tmp_path / "logs").exists()


def test_a_run_name_no_run_can_have_is_refused_before_the_data_is_read(tmp_path):
    """Probe 16's smaller fault: it was refused after the data had loaded, which takes seconds."""
    with pytest.raises(RunError, match="--run '.x': it starts with '.'"):
        bands2vec.train(str(tmp_path / "no such data.sqlite"), name=".x",
                        logs=str(tmp_path / "logs"))
    assert not (tmp_path / "logs").exists()


def test_options_of_numpy_types_are_taken_as_python_ones():
    """A numpy number is a number: taken, and saved in run.json as JSON can write it."""
    taken = bands2vec.TrainOptions(steps=np.int64(5), learning_rate=np.float32(0.5),
                                   seed=np.uint32(3),
                                   contexts={"genre": np.float64(0.25), "score": 0.75})
    assert (taken.steps, taken.learning_rate, taken.seed) == (5, 0.5, 3)
    assert (json.loads(json.dumps(dataclasses.asdict(taken)))["contexts"]
            == {"genre": 0.25, "score": 0.75})


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                   st.floats(allow_nan=True), st.text(max_size=8),
                   st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.sampled_from(["genre", "score", "label", "mood", ""]),
                                   st.one_of(st.floats(-1, 2), st.integers(-1, 2)), max_size=3))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from([field.name for field in dataclasses.fields(bands2vec.TrainOptions)]),
       value=VALUES)
def test_any_value_of_any_option_is_taken_or_refused_in_words(demo_catalog, name, value):
    """Taken, an option resolves and checks for the demo catalog or says why not; refused, it is an
    OptionError naming the option. Nothing else is raised."""
    try:
        taken = bands2vec.TrainOptions(**{name: value})
    except OptionError as error:
        flag = options.OPTION_CHECKS[name][1] if name in options.OPTION_CHECKS else "--contexts"
        assert str(error).startswith(flag) and "\n" not in str(error)
        return
    try:
        taken.resolved(demo_catalog).check(len(demo_catalog))
    except Bands2VecError as error:
        assert "\n" not in str(error)


# ---------------------------------------------------------------------------------------------
# train, resume, open_run, Run.evaluate
# ---------------------------------------------------------------------------------------------

class _PathOfANumber:
    def __fspath__(self):
        return 5

    def __repr__(self):
        return "<a _PathOfANumber>"


@pytest.mark.parametrize("call, message", [
    (lambda logs: bands2vec.train(5, logs=logs), "--data must be a path (text), not 5"),
    (lambda logs: bands2vec.train("", logs=logs), "--data is empty"),
    (lambda logs: bands2vec.train("demo", {"steps": 5}, logs=logs),
     "options must be a TrainOptions, not"),
    (lambda logs: bands2vec.train("demo", logs=5), "--logdir must be a path (text), not 5"),
    (lambda logs: bands2vec.train("demo", logs=" "),
     "--logdir is empty: name a directory for the logs"),
    (lambda logs: bands2vec.train("demo", logs=logs, name=3),
     "--run must be a run's name (text), not 3"),
    (lambda logs: bands2vec.train("demo", logs=logs, clusters=0),
     "--clusters must be at least 1, not 0"),
    (lambda logs: bands2vec.train("demo", logs=logs, clusters="10"),
     "--clusters must be a whole number"),
    (lambda logs: bands2vec.train("demo", logs=logs, plots="no"),
     "plots must be True or False, not 'no'"),
    (lambda logs: bands2vec.train("demo", logs=logs, overwrite=1),
     "overwrite must be True or False, not 1"),
    (lambda logs: bands2vec.train("demo", logs=logs, say="quiet"),
     "say must be a function, not 'quiet'"),
    (lambda logs: bands2vec.resume(logs, steps="5"), "--steps must be a whole number, not '5'"),
    (lambda logs: bands2vec.resume(logs, steps=0), "--steps must be at least 1, not 0"),
    (lambda logs: bands2vec.resume(logs, concurrent_steps=0),
     "--concurrent-steps must be from 1 to 1,024"),
    (lambda logs: bands2vec.resume(logs, data=5), "--data must be a path (text), not 5"),
    (lambda logs: bands2vec.resume(None), "--logdir must be a path (text), not None"),
    (lambda logs: bands2vec.open_run(""), "--logdir is empty"),
    (lambda logs: bands2vec.open_run(logs, name=["r"]),
     "--run must be a run's name (text), not ['r']"),
    # A TypeError from os.fspath.
    (lambda logs: bands2vec.open_run(_PathOfANumber()),
     "--logdir must be a path (text), not <a _PathOfANumber"),
    # Its advice was to train a run of that name, which training refuses.
    (lambda logs: bands2vec.open_run(logs, name="a" * 300),
     "--run is 300 bytes long; a run name here takes at most"),
], ids=["data 5", "data empty", "options a dict", "logs 5", "logs blank", "name 3", "clusters 0",
        "clusters text", "plots text", "overwrite 1", "say text", "resume steps text",
        "resume steps 0", "resume concurrent 0", "resume data 5", "resume logs None",
        "open_run logs empty", "open_run name a list", "a path of a number",
        "open_run name too long"])
def test_run_arguments_are_checked_before_anything_is_read_or_written(tmp_path, call, message):
    logs = str(tmp_path / "logs")
    with pytest.raises(Bands2VecError) as error:
        call(logs)
    assert _one_line(error).startswith(message), str(error.value)
    assert not os.path.exists(logs)


@pytest.mark.parametrize("call, message", [
    (lambda tmp: bands2vec.train("demo", logs=f"{tmp}/logs-\udcff"), "--logdir '/"),
    (lambda tmp: bands2vec.train("demo", logs=f"{tmp}/logs", name="\ud800"),
     "--run '\\ud800': it is not UTF-8"),
    (lambda tmp: bands2vec.train("demo", logs=f"{tmp}/logs", name="r\udcff"),
     "--run 'r\\udcff': it is not UTF-8"),
    (lambda tmp: bands2vec.train(f"{tmp}/\udcff.sqlite", logs=f"{tmp}/logs"), "--data '/"),
    (lambda tmp: bands2vec.resume(f"{tmp}/logs", name="\udcff"),
     "--run '\\udcff': it is not UTF-8"),
    (lambda tmp: bands2vec.open_run(f"{tmp}/\udcff"), "--logdir '/"),
], ids=["train logs", "train name a lone surrogate", "train name of latin-1", "train data",
        "resume name", "open_run logs"])
def test_names_that_are_not_utf8_are_refused_before_anything_is_written(tmp_path, call, message):
    """Folders of other bytes than UTF-8 come from os.listdir as lone surrogates ('\\udcff'):
    TensorFlow and SQLite cannot take them (it was UnicodeEncodeError)."""
    with pytest.raises(Bands2VecError) as error:
        call(tmp_path)
    assert (_one_line(error).startswith(message)
            and "not UTF-8 text" in str(error.value)), str(error.value)
    assert os.listdir(tmp_path) == []


def test_a_run_that_is_not_there_is_named_so(tmp_path):
    """Run() of a missing folder said `unreadable run.json (Not a directory)`."""
    for folder, said in ((tmp_path / "none" / "x", "no such folder"),
                         (tmp_path, "no run.json there: not a trained run's folder")):
        with pytest.raises(RunError) as error:
            bands2vec.Run(str(folder))
        assert _one_line(error) == f"{folder}: {said}"


@pytest.mark.parametrize("k, message", [(-1, "k must be at least 1, not -1"),
                                        (0, "k must be at least 1, not 0"),
                                        ("5", "k must be a whole number, not '5'"),
                                        (2.5, "k must be a whole number, not 2.5"),
                                        (True, "k must be a whole number, not True")])
def test_evaluate_refuses_a_k_that_is_no_count(demo_copy, k, message):
    with pytest.raises(OptionError) as error:
        bands2vec.open_run(str(demo_copy)).evaluate(k=k)
    assert _one_line(error) == message


def _finite_figures(report):
    return [value for figure in report.values() if isinstance(figure, dict)
            for value in figure.values() if value is not None]


def test_evaluate_takes_k_up_to_the_other_artists_without_warnings(demo_copy):
    run = bands2vec.open_run(str(demo_copy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (a mean of nothing, 0 / 0) fails the test
        report = run.evaluate(k=10 ** 9).report
    assert report["k"] == run.record.artists - 1
    assert all(np.isfinite(_finite_figures(report)))
    # Every artist is every artist's neighbour: what they share is the share of pairs that do.
    assert report["genre"]["trained"] == pytest.approx(report["genre"]["random"])


def test_a_zero_vector_is_no_nan(demo_copy):
    vectors = np.load(demo_copy / vector_files.VECTORS_FILE)
    vectors[0] = 0
    np.save(demo_copy / vector_files.VECTORS_FILE, vectors)
    run = bands2vec.open_run(str(demo_copy))
    zero, other = run.vectors.names[0], run.vectors.names[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        every = run.vectors.most_similar(other, topn=len(run.vectors))
        report = run.evaluate().report
    assert dict(every)[zero] == 0.0 and all(np.isfinite([similarity for _, similarity in every]))
    assert all(np.isfinite(_finite_figures(report)))
    # Probe 15: it was said to cancel out, where nothing did.
    with pytest.raises(QueryError, match=r"the question is the zero vector \(what it names is "
                                         r"all zeros\)"):
        run.vectors.most_similar(zero)


# ---------------------------------------------------------------------------------------------
# run.json
# ---------------------------------------------------------------------------------------------

def _set(path, value):
    """An edit of run.json's fields that sets `path` ("options.steps") to `value`."""
    def edit(fields):
        *parents, name = path.split(".")
        for parent in parents:
            fields = fields[parent]
        fields[name] = value
    return edit


def _drop(name):
    return lambda fields: fields.pop(name)


@pytest.mark.parametrize("edit, reason", [
    (_set("options.mood_share", 0.3),
     "options: unknown field 'mood_share', not one this version writes"),
    (_set("colour", "red"), "unknown field 'colour', not one this version writes"),
    (_drop("stats"), "no 'stats'"),
    (_drop("state"), "no 'state'"),
    (_set("stats", [300]), "stats is [300], not an object"),
    (_set("options", "fast"), "options is 'fast', not an object"),
    (_set("options.steps", "300"), "options: --steps must be a whole number, not '300'"),
    (_set("options.contexts", {"genre": 2}),
     "options: --contexts: the share of genre must be from 0 to 1"),
    (_set("options.ensemble", 0), "options: --ensemble must be from 1 to 32, not 0"),
    (_set("options.ensemble", "5"), "options: --ensemble must be a whole number, not '5'"),
    (_set("stats.steps", -5), "stats: 'steps' is -5, not a count"),
    (_set("stats.loss", "low"), "stats: 'loss' is 'low', not a number or null"),
    (_set("artists", 3.5), "'artists' is 3.5, not a count"),
    # Read as sound, it was --resume's `k must be at least 1, not 0`, with advice to do the same
    # again.
    (_set("kmeans_clusters", 0), "'kmeans_clusters' is 0, not a count of 1 or more"),
    # Read as sound, --resume's TypeError traceback.
    (_set("options.steps", None), "options: steps is null, where a trained run's is a value"),
    (_set("state", "done"),
     "'state' is 'done', not one of training, interrupted, incomplete, finished"),
    (_set("missing", "plots"), "'missing' is 'plots', not a list of outputs (vectors, metadata, "
                               "exports, projector, quality, plots) or null"),
    (_set("data", None), "'data' is None, not text"),
    (_set("version", 3),
     f"version 3, from a newer Bands2Vec than this one (version {run_record.VERSION})"),
    (_set("version", "2"), "version '2' is not one Bands2Vec writes"),
    (_set("version", 0), "version 0 is not one Bands2Vec writes"),
    # A field's name was quoted whole: a run.json in a shared folder could make the line a megabyte.
    (_set("x" * 100_000, 1), "unknown field '" + "x" * 56 + "..., not one this version writes"),
])
def test_a_run_json_it_cannot_read_is_one_line_saying_why(demo_trained, tmp_path, edit, reason):
    with open(os.path.join(demo_trained, run_record.RUN_FILE), encoding="utf-8") as f:
        fields = json.load(f)
    edit(fields)
    (tmp_path / run_record.RUN_FILE).write_text(json.dumps(fields))
    with pytest.raises(RunError) as error:
        run_record.read(str(tmp_path))
    assert (_one_line(error) == f"{tmp_path}: unreadable run.json ({reason})"
            or reason in str(error.value))


def test_a_loss_that_is_not_a_number_is_written_as_null(demo_trained, tmp_path):
    """A run that trained no step since its last report wrote `"loss": NaN`: not JSON, for jq and
    the rest."""
    record = run_record.read(demo_trained)
    record.stats = dataclasses.replace(record.stats, loss=float("nan"))
    record.quality = {"genre": {"trained": float("inf"), "random": 0.5}}
    run_record.write(str(tmp_path), record)
    fields = json.loads((tmp_path / run_record.RUN_FILE).read_text(), parse_constant=pytest.fail)
    assert (fields["stats"]["loss"] is None
            and fields["quality"]["genre"] == {"trained": None, "random": 0.5})
    assert math.isnan(run_record.read(str(tmp_path)).stats.loss)


def test_the_reader_knows_every_field_this_version_writes():
    """A field added to RunRecord, Stats or TrainOptions must be known to the reader too, or the
    runs that write it cannot be read back."""
    fields = {record: {field.name for field in dataclasses.fields(record)}
              for record in (run_record.RunRecord, run_record.Stats, bands2vec.TrainOptions)}
    assert set(run_record.RECORD_FIELDS) == fields[run_record.RunRecord]
    assert set(run_record.STATS_FIELDS) == fields[run_record.Stats]
    assert set(run_record.OPTIONS_REQUIRED) == fields[bands2vec.TrainOptions]


@pytest.mark.parametrize("content, reason", [
    (b"[1, 2", "not JSON: Expecting ',' delimiter"),
    (b"[" * 100_000, "not JSON: maximum recursion depth exceeded"),
    (b"\xff\xfe{}", "not JSON: 'utf-8' codec can't decode byte 0xff"),
    (b"[1, 2]", "it is [1, 2], not an object"),
    (b"", "not JSON: Expecting value"),
])
def test_a_run_json_that_is_no_json_object_is_one_line(tmp_path, content, reason):
    (tmp_path / run_record.RUN_FILE).write_bytes(content)
    with pytest.raises(RunError) as error:
        run_record.read(str(tmp_path))
    assert _one_line(error).startswith(f"{tmp_path}: unreadable run.json ({reason}")


def _first_version(**more):
    """A run.json of version 1 as the project wrote it before states (with `finished`) and before
    contexts (with `genre_share`)."""
    fields = {"data": "demo", "artists": 300, "clusters": 10, "include_pseudo_artists": False,
              "options": {"steps": 60, "batch_size": 512, "embedding_size": 64, "num_sampled": 64,
                          "learning_rate": 3.3, "genre_share": 0.7, "init_scale": 0.01, "seed": 0,
                          "threads": 2, "report_every": 250, "summary_every": 25,
                          "steps_per_draw": 100, "valid_size": 4},
              "stats": {"steps": 60, "pairs": 30720, "loss": math.nan, "seconds": 1.0},
              "quality": {}}
    fields.update(more)
    return fields


@pytest.mark.parametrize("fields, state, shares", [
    (_first_version(finished=True), "finished", {"genre": 0.7, "score": 0.3}),
    (_first_version(finished=False), "interrupted", {"genre": 0.7, "score": 0.3}),
    (_first_version(), "finished", {"genre": 0.7, "score": 0.3}),  # all its steps trained
    (_first_version(stats={"steps": 10, "pairs": 0, "loss": 4.5, "seconds": 1.0}), "interrupted",
     {"genre": 0.7, "score": 0.3}),
    (_first_version(state="incomplete", missing=["plots"], catalog="abc"), "incomplete",
     {"genre": 0.7, "score": 0.3}),
], ids=["finished", "not finished", "before finished, all steps", "before finished, some steps",
        "with a state"])
def test_a_run_json_of_the_first_version_is_read(tmp_path, fields, state, shares):
    (tmp_path / run_record.RUN_FILE).write_text(json.dumps(fields))
    record = run_record.read(str(tmp_path))
    assert (record.state == state and record.options.contexts == shares
            and record.kmeans_clusters == 10)
    assert (record.version == run_record.VERSION
            and repr(record.stats.loss) == repr(fields["stats"]["loss"]))
    assert record.options.ensemble == 1  # before ensembles, one model
    if "catalog" in fields:
        assert record.data_fingerprint == "abc" and record.missing == ["plots"]


def test_a_run_json_from_before_ensembles_is_one_model(demo_trained, tmp_path):
    with open(os.path.join(demo_trained, run_record.RUN_FILE), encoding="utf-8") as f:
        fields = json.load(f)
    del fields["options"]["ensemble"]
    (tmp_path / run_record.RUN_FILE).write_text(json.dumps(fields))
    assert run_record.read(str(tmp_path)).options.ensemble == 1


def test_a_first_version_with_a_wrong_genre_share_is_one_line(tmp_path):
    fields = _first_version()
    fields["options"]["genre_share"] = "most"
    (tmp_path / run_record.RUN_FILE).write_text(json.dumps(fields))
    with pytest.raises(RunError, match=r"options: 'genre_share' is 'most', not a number\)$"):
        run_record.read(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# vectors.npy and metadata.tsv read back
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def saved(demo_trained, tmp_path):
    """A folder of the demo run's metadata.tsv and vectors.json, and a vectors.npy to make, without
    a checkpoint to fall back on; returns (folder, the run's vectors)."""
    folder = tmp_path / "r"
    folder.mkdir()
    shutil.copy(os.path.join(demo_trained, metadata.METADATA_FILE), folder)
    # as ArtistVectors.save writes them
    vector_files.write_settings(str(folder), ("genre", "score"), 1)
    return folder, np.load(os.path.join(demo_trained, vector_files.VECTORS_FILE))


def _with_nan(vectors):
    vectors = vectors.copy()
    vectors[[3, 7], 5] = np.nan
    return vectors


@pytest.mark.parametrize("damage, reason", [
    (_with_nan, "vectors.npy: damaged (2 of its vectors with NaN or infinite values)"),
    (lambda v: v * np.inf, "vectors.npy: damaged (300 of its vectors with NaN or infinite values)"),
    (lambda v: v.astype(np.float64) * 1e300,
     "vectors.npy: damaged (300 of its vectors with NaN or infinite"),
    (lambda v: v.astype(np.int64),
     "vectors.npy: damaged (holds (300, 64) int64, not a matrix of vectors)"),
    (lambda v: v.astype(np.complex64), "vectors.npy: damaged (holds (300, 64) complex64"),
    (np.ravel, "vectors.npy: damaged (holds (19200,) float32, not a matrix of vectors)"),
    (lambda v: v[:, :0], "vectors.npy: damaged (holds (300, 0) float32, not a matrix of vectors)"),
    (lambda v: v[:-1],
     "vectors.npy: 299 vectors, not one for each of the 300 artists in metadata.tsv"),
    (lambda v: np.concatenate([v, v]),
     "vectors.npy: 600 vectors, not one for each of the 300 artists"),
    # Zeros: every question "cancelled out", and plot wrote a map of NaN and bookmarks that were no
    # JSON.
    (np.zeros_like, "vectors.npy: damaged (every artist has the same vector)"),
    (lambda v: np.ones_like(v) * v[0], "vectors.npy: damaged (every artist has the same vector)"),
], ids=["NaN", "inf", "past float32", "int", "complex", "1-d", "no columns", "a row less",
        "twice the rows", "zeros", "one vector for all"])
def test_vectors_read_back_are_checked(saved, damage, reason):
    folder, vectors = saved
    np.save(folder / vector_files.VECTORS_FILE, damage(vectors))
    with pytest.raises(RunError) as error:
        ArtistVectors.load(str(folder))
    assert _one_line(error).startswith(str(folder / reason[:reason.index(":")])
                                       + reason[reason.index(":"):])
    assert "no checkpoint to read instead" in str(error.value)


def test_vectors_of_another_float_type_are_read(saved):
    folder, vectors = saved
    np.save(folder / vector_files.VECTORS_FILE, vectors.astype(np.float16))
    loaded = ArtistVectors.load(str(folder))
    assert loaded.vectors.dtype == np.float32 and np.allclose(loaded.vectors, vectors, atol=1e-2)


def _npy(shape, data_bytes, descr="<f4"):
    """A .npy file's bytes: a header declaring `shape` of `descr`, then `data_bytes` zero bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return header.getvalue() + bytes(data_bytes)


@pytest.mark.parametrize("plant, reason", [
    (lambda path: path.write_bytes(_npy((300, 10**9), 300 * 64 * 4)),
     "vectors.npy: damaged (its header declares (300, 1000000000) float32, 1,200,000,000,000 "
     "bytes, where it holds 76,800)"),
    (lambda path: path.write_bytes(_npy((600, 64), 300 * 64 * 4)),
     "vectors.npy: 600 vectors, not one for each of the 300 artists in metadata.tsv"),
    (lambda path: path.write_bytes(_npy((300, 64), 300 * 64 * 4 + 4)),
     "vectors.npy: damaged (its header declares (300, 64) float32, 76,800 bytes, where it holds "
     "76,804)"),
    (lambda path: path.write_bytes(_npy((300, 64), 300 * 64, descr="|O")),
     "vectors.npy: damaged (holds (300, 64) object, not a matrix of vectors)"),
    (lambda path: np.savez(open(path, "wb"), vectors=np.ones((300, 64))),
     "vectors.npy: damaged (it does not start as a .npy file does)"),
    (lambda path: path.mkdir(), "vectors.npy: unreadable (not a regular file)"),
    (lambda path: path.write_bytes(_npy((300, 64), 300 * 64 * 4).replace(b"'<f4'", b"[('a'")),
     "vectors.npy: damaged (its header is not one np.save writes)"),
    # Probe 15: numpy's own three lines, advising allow_pickle=True; and a memory address.
    (lambda path: path.write_bytes(
        _npy((300, 64), 300 * 64 * 4).replace(b"'<f4'", b"'<f4'" + b" " * 10_000)),
     "vectors.npy: damaged (its header is not one np.save writes)"),
    (lambda path: path.write_bytes(
        _npy((300, 64), 300 * 64 * 4).replace(b"(300, 64)", b"(300, 64) + (1,)*0")),
     "vectors.npy: damaged (its header is not one np.save writes)"),
    (lambda path: path.write_bytes(_npy((300, 64), 0)[:20]),
     "vectors.npy: damaged (its header is not one np.save"),
    (lambda path: path.write_bytes(_npy((300, 64), 0)[:4]),
     "vectors.npy: damaged (it does not start as a .npy"),
    # Probe 15: a header's shape was quoted whole, in a message of 5 KB.
    (lambda path: path.write_bytes(_npy((300, 10 ** 3000), 0)),
     "vectors.npy: damaged (its header declares a length past any array's)"),
    (lambda path: path.write_bytes(_npy((1,) * 2000, 4)),
     "vectors.npy: damaged (holds (1, 1, 1, 1, 1, 1, ...) float32, not a matrix of vectors)"),
], ids=["a terabyte declared", "other rows declared", "bytes past the data", "objects", "an npz",
        "a folder", "a header numpy cannot parse", "a header past numpy's bound",
        "a header of an expression", "cut in its header", "cut in its first bytes",
        "a length of 3,001 digits", "2,000 dimensions"])
def test_a_vectors_npy_is_checked_by_its_header_before_it_is_read(saved, plant, reason):
    """A 77 KB file declaring (300, 10**9) was a raw MemoryError (numpy asked for 1.1 TiB); now its
    header is checked against the artists and the file's size first. What cannot be opened is
    unreadable, not damaged."""
    folder, _ = saved
    plant(folder / vector_files.VECTORS_FILE)
    with pytest.raises(RunError) as error:
        ArtistVectors.load(str(folder))
    assert _one_line(error).startswith(
        f"{folder / reason[:reason.index(':')]}{reason[reason.index(':'):]}")
    assert str(error.value).endswith(", and no checkpoint to read instead: put back its "
                                     "vectors.npy, or train the run anew")


def test_a_checkpoint_that_is_not_a_file_is_not_called_none(saved):
    """Probe 17's smaller fault: a `checkpoints/checkpoint` that is a folder was `no checkpoint to
    read instead`."""
    folder, _ = saved
    (folder / vector_files.VECTORS_FILE).write_bytes(b"not an npy")
    (folder / "checkpoints" / "checkpoint").mkdir(parents=True)
    with pytest.raises(RunError) as error:
        ArtistVectors.load(str(folder))
    assert str(error.value).endswith(f", and its checkpoint cannot be read instead "
                                     f"({folder / 'checkpoints' / 'checkpoint'} is not a file): "
                                     f"put back its vectors.npy, or train the run anew")


@pytest.mark.parametrize("scale", [1e36, 1e-42], ids=["huge", "subnormal"])
def test_vectors_near_float32s_ends_give_the_cosines_of_vectors_at_any_scale(saved, scale):
    """Vectors of 1e38 or 1e-40 are finite float32, but the squares of their norms overflowed or
    underflowed: every cosine was 0 and questions said the expression cancels out, with numpy's
    RuntimeWarnings on stderr."""
    folder, vectors = saved
    np.save(folder / vector_files.VECTORS_FILE,
            (vectors.astype(np.float64) * scale).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ArtistVectors.load(str(folder))
        # The same values brought back to a usual scale (a subnormal float32 has fewer digits).
        usual = ArtistVectors((loaded.vectors.astype(np.float64) / scale).astype(np.float32),
                              loaded.artists)
        asked = loaded.names[0]
        for answers in (loaded, usual.with_vectors(loaded.vectors)):
            assert np.allclose(np.linalg.norm(answers.unit_vectors, axis=1), 1, atol=1e-5)
            assert [name for name, _ in answers.most_similar(asked, topn=5)] == \
                [name for name, _ in usual.most_similar(asked, topn=5)]
            assert answers.similarity(asked, asked) == pytest.approx(1, abs=1e-5)
            assert answers.n_similarity([asked], [asked]) == pytest.approx(1, abs=1e-5)
            assert answers.similar_by_vector(answers.vectors[0], topn=1)[0][0] == asked


def test_most_similar_at_the_ends_of_float64_refuses_or_answers_without_warnings(demo_trained):
    """Weights of 1e308 added up past float64's range with numpy's overflow warning on stderr; a
    vector of 1e-310 was said to be an expression cancelling out."""
    loaded = ArtistVectors.load(demo_trained)
    a, b = loaded.names[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loaded.most_similar([(a, 1e308), (b, 1e308)]) == loaded.most_similar([a, b])
        with pytest.raises(QueryError, match="^most_similar: the weighted terms add up past "
                                             "float64's range; give smaller weights$"):
            loaded.most_similar([(np.full(loaded.vector_size, 3e38), 1e300)])
        tiny = loaded.vectors[0].astype(np.float64) * 1e-310
        assert (loaded.most_similar([tiny], topn=1)
                == loaded.most_similar([loaded.vectors[0]], topn=1))
        with pytest.raises(QueryError, match="^the question cancels out to the zero vector"):
            loaded.most_similar([a, (a, 0.5)], [(a, -1.5)])  # gensim keeps a pair's sign
        assert (loaded.most_similar([(a, fractions.Fraction(1, 2)), b])
                == loaded.most_similar([(a, 0.5), b]))
        assert loaded.most_similar([(a, 0), b]) == loaded.most_similar([b])
        with pytest.raises(QueryError, match="vector of 64 numbers"):  # not a ComplexWarning
            loaded.most_similar([loaded.vectors[0] * 1j])


def test_nan_vectors_with_a_checkpoint_are_read_from_it_with_a_warning(demo_copy):
    vectors = np.load(demo_copy / vector_files.VECTORS_FILE)
    np.save(demo_copy / vector_files.VECTORS_FILE, _with_nan(vectors))
    with pytest.warns(UserWarning, match="NaN or infinite values.*from the checkpoint"):
        loaded = ArtistVectors.load(str(demo_copy))
    assert np.array_equal(loaded.vectors, vectors)


def _edit_metadata(folder, edit):
    path = folder / metadata.METADATA_FILE
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    edit(rows)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")


def _cell(column, text, row=2):
    def edit(rows):
        rows[row][METADATA_HEADER.index(column)] = text
    return edit


def _without(column):
    def edit(rows):
        for row in rows:
            del row[METADATA_HEADER.index(column)]
    return edit


@pytest.mark.parametrize("edit, reason", [
    (_cell("score_bucket", "9" * 20), "line 3: score_bucket is '99999999999999999999', too big"),
    (_cell("reviews", "-" + "9" * 30),
     "line 3: reviews is '-99999999999999999999999999999999999999'"[:40]),
    (_cell("cluster", "2.5"), "line 3: cluster is '2.5', not a whole number"),
    (_cell("mean_score", "good"), "line 3: mean_score is 'good', not a finite number"),
    (_cell("mean_score", "nan"), "line 3: mean_score is 'nan', not a finite number"),
    (_cell("mean_score", " "), "line 3: mean_score is '', not a finite number"),
    (_cell("year", "inf", row=5), "line 6: year is 'inf', not a finite number"),
    # Finite, they overflowed evaluate's means into inf, and its --json into Python's own error.
    (_cell("mean_score", "1.7e308"), "line 3: mean_score is '1.7e308', outside 0 to 10"),
    (_cell("mean_score", "-0.5"), "line 3: mean_score is '-0.5', outside 0 to 10"),
    (_cell("year", "-1e308", row=5), "line 6: year is '-1e308', outside 1000 to 3000"),
    # Probe 15: evaluate listed clusters -5 and -1 among the others.
    (_cell("cluster", "-5"), "line 3: cluster is '-5', outside -1 to 299"),
    (_cell("cluster", "300"), "line 3: cluster is '300', outside -1 to 299"),
    (_cell("cluster", "-1", row=4), "line 5: cluster is -1, where other artists have one"),
    (_without("cluster"), "no column 'cluster'"),
    (_without("mean_score"), "no column 'mean_score'"),
    (lambda rows: rows[1].pop(), "expected a header and a row per artist"),
    (lambda rows: rows.__delitem__(slice(3, None)), "2 rows, where run.json counts 300 artists)"),
    (lambda rows: rows.pop(), "299 rows, where run.json counts 300 artists)"),
    (lambda rows: rows.clear(), "expected a header and a row per artist"),
    (_cell("labels", "x" * 1_100_000),
     "a row longer than 1,048,576 characters, where a run writes a few hundred)"),
    (lambda rows: rows.append(rows[1]), "more rows than the 300 artists run.json counts)"),
], ids=["bucket too big", "reviews too small", "cluster 2.5", "score text", "score NaN",
        "score blank", "year inf", "score 1.7e308", "score below 0", "year -1e308", "cluster -5",
        "cluster 300", "one cluster -1", "no cluster column", "no mean_score column", "a short row",
        "two artists", "a row short", "empty", "a row of 1.1 MB", "a row past the count"])
def test_metadata_read_back_is_checked(demo_copy, edit, reason):
    _edit_metadata(demo_copy, edit)
    with pytest.raises(RunError) as error:
        bands2vec.open_run(str(demo_copy)).vectors
    assert _one_line(error).startswith(f"{demo_copy / metadata.METADATA_FILE}: malformed metadata "
                                       f"({reason}")


def test_a_metadata_tsv_followed_by_gigabytes_is_not_read_whole(demo_copy):
    """3 GB of NULs after the rows (a sparse file, no disk) took 34 s and 3 GB, then ran out of
    memory."""
    path = demo_copy / metadata.METADATA_FILE
    os.truncate(path, 3 * 2**30)
    started = time.perf_counter()
    with pytest.raises(RunError) as error:
        bands2vec.open_run(str(demo_copy)).vectors
    assert _one_line(error) == (f"{path}: malformed metadata (a row longer than 1,048,576 "
                                f"characters, where a run writes a few hundred)")
    assert time.perf_counter() - started < 5  # the first megabyte of the NULs, not 3 GB


def test_saved_vectors_without_a_run_json_bound_their_metadata_by_vectors_npy(demo_copy, tmp_path):
    saved = tmp_path / "saved"
    bands2vec.open_run(str(demo_copy)).vectors.save(str(saved))
    _edit_metadata(saved, lambda rows: rows.extend(rows[1:] * 3))
    with pytest.raises(RunError) as error:
        ArtistVectors.load(str(saved))
    assert _one_line(error) == (f"{saved / metadata.METADATA_FILE}: malformed metadata (more rows "
                                f"than twice the 300 vectors of vectors.npy; one of the two is "
                                f"damaged)")


def test_blank_years_are_unknown_years(demo_copy):
    _edit_metadata(demo_copy, _cell("year", " ", row=5))
    assert np.isnan(bands2vec.open_run(str(demo_copy)).vectors.artists.years[4])


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_names(demo_catalog):
    """The demo's artists with vectors of ones: what parsing needs."""
    return ArtistVectors(np.ones((len(demo_catalog), 2), np.float32), demo_catalog.facts)


def _expression(names, terms):
    return " - ".join(names[i % len(names)] for i in range(terms))


def test_the_parser_is_linear_in_its_input(demo_names, monkeypatch):
    """1,000 terms took 22.5 s (the parser tried every run of terms, each joined anew: cubic). Now a
    bound's worth of them, and ten times more with the bound lifted, take well under a second
    each."""
    names = [name for name in demo_names.names if " + " not in name and " - " not in name]
    started = time.perf_counter()
    positive, negative = expressions.parse_expression(_expression(names, expressions.MAX_TERMS),
                                                      demo_names)
    assert len(positive) == 1 and len(negative) == expressions.MAX_TERMS - 1
    assert time.perf_counter() - started < 1
    tenfold = _expression(names, 10 * expressions.MAX_TERMS)
    monkeypatch.setattr(expressions, "MAX_TERMS", 10 ** 9)
    for hostile in (tenfold, "a" + " " * 10 ** 6 + "b",
                    "a " + "+ " * 10 ** 4 + "b", "'it''s' + " * 10 ** 4 + "x", "x" * 10 ** 7):
        started = time.perf_counter()
        expressions.parse_expression(hostile, demo_names)
        assert time.perf_counter() - started < 5, hostile[:40]


def test_an_expression_past_the_bound_is_one_line(demo_names):
    names = demo_names.names
    with pytest.raises(QueryError) as error:
        demo_names.query(_expression(names, expressions.MAX_TERMS + 1))
    message = _one_line(error)
    assert message.startswith(f"an expression takes at most {expressions.MAX_TERMS:,} artists; ")
    assert len(message) < 200  # it quotes the start of the expression, not all of it


def test_a_question_longer_than_any_answer_is_refused_at_once(demo_names):
    """One name of 20 million characters took 4.7 s and 900 MB (compared with every name for the
    close ones): no name or expression of this catalog is that long, so it is refused unread."""
    huge = "x" * 20_000_000
    started = time.perf_counter()
    with pytest.raises(QueryError) as error:
        demo_names.query(huge)
    longest = expressions.MAX_TERMS * (2 * demo_names.longest_name + expressions.TERM_EXTRA)
    assert _one_line(error) == (f"an expression of 20,000,000 characters is longer than any of "
                                f"{expressions.MAX_TERMS:,} artists here ({longest:,})")
    with pytest.raises(UnknownArtist) as error:
        demo_names.most_similar(huge)
    assert error.value.suggestions == [] and len(_one_line(error)) < 100
    # 4.7 s before, on a quiet machine; this one may be shared
    assert time.perf_counter() - started < 3
    # A name a little too long is still compared, for the names close to it.
    name = max(demo_names.names, key=len)
    with pytest.raises(UnknownArtist) as error:
        demo_names.most_similar(name + "x")
    assert name in error.value.suggestions
    assert expressions.parse_expression(f"'{name}'", demo_names) == ([name], [])


def test_the_parser_is_linear_where_a_name_is_long(demo_catalog):
    """With one name of 60,000 characters every run of terms was within the longest name: each term
    tried every run after it, and 1,000 terms took 92 s. No name holds a run's operators, so none is
    tried."""
    facts = dataclasses.replace(demo_catalog.facts, names=demo_catalog.names[:-1] + ["x" * 60_000])
    known = ArtistVectors(np.ones((len(facts), 2), np.float32), facts)
    started = time.perf_counter()
    assert (expressions.parse_expression(" + ".join(["b" * 50] * 1000), known)
            == (["b" * 50] * 1000, []))
    assert time.perf_counter() - started < 5


def test_the_parser_is_linear_where_a_name_holds_many_operators(demo_catalog):
    """A name of 1,000 terms (63 KB) let each term try 999 runs: one expression of it took 15 s."""
    name = " + ".join(["x" * 60] * 1000)
    facts = dataclasses.replace(demo_catalog.facts, names=demo_catalog.names[:-1] + [name])
    known = ArtistVectors(np.ones((len(facts), 2), np.float32), facts)
    started = time.perf_counter()
    assert expressions.parse_expression(name, known) == (["x" * 60] * 1000, [])
    assert time.perf_counter() - started < 5
    # in quotes, it is the name
    assert expressions.parse_expression(f"'{name}'", known) == ([name], [])
    few = " + ".join(["x" * 60] * expressions.NAME_TERMS)
    facts = dataclasses.replace(demo_catalog.facts, names=demo_catalog.names[:-1] + [few])
    assert expressions.parse_expression(
        few, ArtistVectors(np.ones((len(facts), 2), np.float32), facts)) == ([few], [])


def test_the_closest_names_are_found_at_once_whatever_the_names_lengths(demo_catalog):
    """300 names of 60,000 characters, each a few changes from one another, took difflib 82 s to
    find the closest to one unknown name."""
    rng = np.random.default_rng(0)
    base = rng.integers(0x4E00, 0x4E00 + 20_000, 20_000)  # CJK characters, which no spelling drops
    names = []
    for _ in range(len(demo_catalog)):
        name = base.copy()
        name[rng.integers(0, len(base), 400)] = rng.integers(0x4E00, 0x4E00 + 20_000, 400)
        names.append("".join(map(chr, name)))
    known = ArtistVectors(np.ones((len(names), 2), np.float32),
                          dataclasses.replace(demo_catalog.facts, names=names))
    started = time.perf_counter()
    with pytest.raises(UnknownArtist) as error:
        known.index("\u0416" + "".join(map(chr, base[1:])))
    assert time.perf_counter() - started < 5 and error.value.suggestions
    with pytest.raises(UnknownArtist, match="did you mean 'lune, marée'"):
        ArtistVectors(np.ones((len(demo_catalog), 2), np.float32),
                      demo_catalog.facts).index("lune, maree")


def test_a_name_of_several_terms_is_found_anywhere_in_a_long_expression(demo_catalog):
    """The runs of terms tried stay within the longest name, and still find one at the end."""
    joint = "scott walker + sunn o)))"
    facts = dataclasses.replace(demo_catalog.facts,
                                names=demo_catalog.names[:-2] + [joint, "scott walker"])
    known = ArtistVectors(np.ones((len(facts), 2), np.float32), facts)
    expression = _expression(known.names[:10], 500) + " + scott walker + sunn o)))"
    positive, negative = expressions.parse_expression(expression, known)
    assert positive[-1] == joint and len(positive) + len(negative) == 501
    assert (expressions.parse_expression("Scott Walker + SUNN O)))", known)
            == (["Scott Walker + SUNN O)))"], []))
    assert (expressions.parse_expression("scott walker - sunn o)))", known)
            == (["scott walker"], ["sunn o)))"]))


@pytest.mark.slow  # imports TensorFlow
def test_training_loads_for_a_caller_whose_stderr_is_closed():
    """TensorFlow's import is silenced by a copy of stderr: with none, os.dup(2) raised an
    OSError."""
    result = subprocess.run([sys.executable, "-c", "import bands2vec_graph; print('loaded')"],
                            cwd=REPO, stdout=subprocess.PIPE, preexec_fn=lambda: os.close(2),
                            timeout=300)
    assert result.returncode == 0 and result.stdout == b"loaded\n"
