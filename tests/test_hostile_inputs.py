"""Hostile input: cases that try to break `python run.py` with what it is given (bad data and
options, catalogs too small, a bad TF_CONFIG), each run as whole processes. Every case keeps the
promise (helpers.assert_promise): exit 0, 2 or 130, no traceback, a refusal in at most two lines,
every run folder left with a run.json telling its state and no temporary file; and says what it is
about. Hostile ground for a run (log folders, disks, damaged runs, signals): test_hostile_runs.py.

    python -m pytest tests/test_hostile_inputs.py
"""
import csv
import json
import os
import signal
import sqlite3

import numpy as np
import pytest

import contexts
import demo_data
import metadata
import run_record
import data_utils
from helpers import (CLUSTER_WAIT_SECONDS, METADATA_HEADER, answer_lines, assert_promise,
                     free_ports, run_cli, run_many, signalled, write_file)
from synthetic_catalog import write_tables

# Each case is whole processes: the end-to-end tier.
pytestmark = pytest.mark.slow



def _csv_folder(folder, reviews, genres):
    os.makedirs(folder, exist_ok=True)
    for name, header, rows in (("reviews.csv", ["reviewid", "artist", "score"], reviews),
                               ("genres.csv", ["reviewid", "genre"], genres)):
        with open(os.path.join(folder, name), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return str(folder)


def _synthetic(tmp_path, artists):
    return write_tables(demo_data.demo_tables(artists, seed=3), str(tmp_path / f"d{artists}"))




# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

BAD_DATA = {  # case: (its --data, made in a folder; what run.py says)
    "missing data path": (lambda tmp: "/no/such/file.sqlite",
                          "/no/such/file.sqlite: no such file or folder"),
    "folder without the data": (lambda tmp: os.makedirs(tmp / "empty") or str(tmp / "empty"),
                                "empty: no database.sqlite, and no reviews.csv and genres.csv "
                                "in this folder"),
    "text file as sqlite": (lambda tmp: write_file(tmp / "x.sqlite", "not a database"),
                            "x.sqlite: not a SQLite database"),
    "dev null as data": (lambda tmp: "/dev/null",
                         "/dev/null: not a regular file or a folder; --data takes"),
    "a FIFO as data": (lambda tmp: os.mkfifo(tmp / "fifo.sqlite") or str(tmp / "fifo.sqlite"),
                       "fifo.sqlite: not a regular file or "
                       "a folder"),  # it was "no such file or folder"
    "database sqlite is a folder": (lambda tmp: os.makedirs(tmp / "d" / "database.sqlite")
                                    or str(tmp / "d"),
                                    "d: no database.sqlite, and no reviews.csv and genres.csv"),
    "csv missing a column": (lambda tmp: write_file(tmp / "d" / "genres.csv",
                                                    "reviewid,genre\n1,rock\n")
                             and os.path.dirname(write_file(tmp / "d" / "reviews.csv",
                                                            "reviewid,artist\n1,a\n")),
                             "reviews.csv: missing column score"),
    "every genre null": (lambda tmp: _csv_folder(tmp / "d", [(1, "a", 7.0), (2, "b", 6.0)],
                                                 [(1, "NA"), (2, "")]),
                         "every genre is NULL"),
    "binary garbage csv": (lambda tmp: write_file(tmp / "d" / "genres.csv",
                                                  "reviewid,genre\n1,rock\n")
                           and os.path.dirname(write_file(tmp / "d" / "reviews.csv",
                                                          b'reviewid,artist,score\n1,"unclosed,7\n'
                                                          b'\xff\xfe\x00\n', "wb")),
                           "reviews.csv: malformed CSV"),
    "empty tables": (lambda tmp: _csv_folder(tmp / "d", [], []), "no reviews with an artist"),
    "two artists": (lambda tmp: _synthetic(tmp, 2),
                    "2 artists with a score; a run needs at least 3"),
    # A float64 holds whole numbers apart only up to 2 ** 53: such ids would merge every review into
    # one.
    "review ids past 2 ** 53": (lambda tmp: _csv_folder(
                                    tmp / "d", [(10 ** 30 + i, f"a{i}", 7.0) for i in range(5)],
                                    [(10 ** 30 + i, "rock") for i in range(5)]),
                                "a reviewid that is a whole number up to 2 ** 53"),
    "three artists sharing nothing": (lambda tmp: _synthetic(tmp, 3),
                                      "no two artists share a genre or a score, "
                                      "so there are no pairs"),
}


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
    """{case: (its folder, what `python run.py --data ...` said)} of every BAD_DATA case, run at
    once."""
    folders = {case: tmp_path_factory.mktemp("bad-data") for case in BAD_DATA}
    results = run_many({case: ("--data", make(folders[case]),
                               "--logdir", str(folders[case] / "logs"))
                        for case, (make, _) in BAD_DATA.items()})
    return {case: (folders[case], results[case]) for case in BAD_DATA}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_anything_is_written(bad_data, case):
    folder, result = bad_data[case]
    assert_promise(result, folder / "logs", 2, BAD_DATA[case][1], lines=1)
    assert not (folder / "logs").exists()


def test_an_unreadable_database(tmp_path):
    path = _synthetic(tmp_path, 300)
    os.chmod(path, 0)
    logs = tmp_path / "logs"
    # --num-sampled is checked against the catalog's artists, so once the data is read.
    result = run_cli("--data", path, "--logdir", str(logs), "--num-sampled", "100000")
    if os.access(path, os.R_OK):
        # root reads any file: read whole, it is the option that is refused
        assert_promise(result, logs, 2, "--num-sampled must be from 1 to 299", lines=1)
    else:
        assert_promise(result, logs, 2, "database.sqlite: cannot read it (Permission denied)",
                       lines=1)
    assert not logs.exists()


def _odd_catalog(folder):
    """80 artists, some with tabs, newlines and quotes in their names, and some bad scores."""
    rng = np.random.default_rng(0)
    names = [f"artist {i}" for i in range(76)] + ["tab\there", "new\nline", 'say "hi"',
                                                  "it's, like, \u00e9"]
    reviews, genres = [], []
    for i, name in enumerate(names):
        reviews.append((i, name, round(float(rng.uniform(3, 9)), 1)))
        genres.append((i, contexts.GENRES[i % 4]))
    reviews += [(100, "artist 1", "eleven"), (101, "artist 2", 11.5), (102, "artist 3", -1),
                (103, "artist 4", "")]
    return _csv_folder(folder, reviews, genres)


def test_odd_names_and_bad_scores(tmp_path):
    folder = _odd_catalog(tmp_path / "data")
    logs = tmp_path / "logs"
    result = run_cli("--data", folder, "--logdir", str(logs), "--run", "odd", "--num-sampled", "8",
                     "--steps", "50", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert_promise(result, logs, 0, "Skipped 4 reviews whose score is missing or outside 0-10")
    with open(logs / "odd" / metadata.METADATA_FILE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 80 + 1
    assert all(len(line.split("\t")) == len(METADATA_HEADER) for line in lines)
    assert any(line.startswith("tab here\t") for line in lines)
    result = run_cli("similar", 'say "hi"', "-k", "3", "--logdir", str(logs))
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 3, result.stderr


def _retyped_genres(tmp_path, sql):
    """The demo's tables of 60 artists in database.sqlite, a table rewritten by `sql`."""
    path = _synthetic(tmp_path, 60)
    with sqlite3.connect(path) as connection:
        connection.executescript(sql)
    return path


@pytest.mark.parametrize("sql, contexts, said", [
    # An untyped column keeps a number a number, as a user's own file may.
    ("CREATE TABLE g (reviewid, genre); INSERT INTO g SELECT reviewid, CASE WHEN rowid % 3 = 0 "
     "THEN 42 ELSE genre END FROM genres; DROP TABLE genres; ALTER TABLE g RENAME TO genres;",
     "genre,score", "share a genre "),
    ("UPDATE genres SET reviewid = reviewid + 1000000;", "genre,score",
     "share a genre - (no such facts in the data)"),
    ("CREATE TABLE l (reviewid, label); INSERT INTO l SELECT reviewid, CASE WHEN rowid % 2 = 0 "
     "THEN rowid + 0.5 ELSE label END FROM labels; DROP TABLE labels; "
     "ALTER TABLE l RENAME TO labels;", "genre,score,label", "Stability:   2 members"),
], ids=["a genre stored as a number", "genres joining none of the reviews",
        "labels stored as numbers"])
def test_genres_of_another_type_or_joining_nothing_train(tmp_path, sql, contexts, said):
    logs = tmp_path / "logs"
    result = run_cli("--data", _retyped_genres(tmp_path, sql), "--logdir", str(logs), "--run", "r",
                     "--steps", "50", "--no-plots", "--contexts", contexts, "--ensemble", "2")
    assert assert_promise(result, logs, 0, said)["r"].state == "finished"
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------------
# Small catalogs, and options out of range
# ---------------------------------------------------------------------------------------------

def test_five_artists(tmp_path):
    five = _synthetic(tmp_path, 5)
    logs = tmp_path / "logs"
    result = run_cli("--data", five, "--logdir", str(logs), "--run", "r")
    assert result.returncode == 0, result.stderr
    assert assert_promise(result, logs, 0)["r"].state == "finished"
    record = run_record.read(str(logs / "r"))
    assert record.options.num_sampled == 4 and record.options.batch_size == 8
    assert record.quality["k"] == 4
    result = run_cli("similar", data_utils.load_catalog(five).names[0], "-k", "100",
                     "--logdir", str(logs))
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 4
    assert json.loads(run_cli("evaluate", "--json", "-k", "50",
                              "--logdir", str(logs)).stdout)["k"] == 4


def test_forty_artists_fewer_than_the_negatives(tmp_path):
    logs = tmp_path / "logs"
    result = run_cli("--data", _synthetic(tmp_path, 40), "--logdir", str(logs), "--run", "r",
                     "--steps", "200", "--no-plots")
    record = assert_promise(result, logs, 0)["r"]
    assert record.state == "finished" and record.options.num_sampled == 39  # 64 by default


BAD_OPTIONS = {  # the options given to train on the demo catalog: what run.py says
    ("--steps", "0"): "--steps must be at least 1, not 0",
    ("--steps", "-5"): "--steps must be at least 1",
    ("--steps", "ten"): "invalid int value",
    ("--batch-size", "0"): "--batch-size must be at least 1",
    ("--batch-size", "1000000000"): "--batch-size 1,000,000,000 needs about",
    ("--ensemble", "33"): "--ensemble must be from 1 to 32, not 33",
    ("--ensemble", "32", "--batch-size", "1000000"): "--ensemble 32 needs about",
    ("--ensemble", "10", "--batch-size", "1000000000"): "--batch-size 1,000,000,000 needs about",
    ("--embedding-size", "0"): "--embedding-size must be at least 1",
    ("--embedding-size", "10000000"): "--embedding-size 10,000,000 for 300 artists needs about",
    ("--seed", "-1"): "--seed must be from 0 to 4,294,967,295, not -1",
    ("--seed", "4294967296"): "--seed must be from 0 to 4,294,967,295, not 4294967296",
    ("--learning-rate", "-1"): "--learning-rate must be above 0",
    ("--learning-rate", "inf"): "--learning-rate must be a finite number, not inf",
    ("--learning-rate", "nan"): "--learning-rate must be above 0, not nan",
    ("--learning-rate", "1e-320"): "--learning-rate must be from 1e-06 to 1e+09, not 9.99989e-321",
    ("--learning-rate", "1e-400"): "argument --learning-rate: 1e-400 is too near 0 for a float, "
                                   "which reads it as 0",
    ("--genre-share", "1e400"): "argument --genre-share: 1e400 is too large for a float",
    ("--num-sampled", "300"): "--num-sampled must be from 1 to 299",
    ("--genre-share", "1.5"): "--genre-share must be from 0 to 1",
    ("--contexts", "genre,mood"): "--contexts: unknown context 'mood'",
    ("--contexts", ""): "--contexts is empty: name at least one of genre, score, label, year",
    ("--clusters", "0"): "--clusters must be at least 1, not 0",
    ("--run", "x" * 300): "--run is 300 bytes long; a run name here takes at most",
    ("--run", "a/b"): "--run 'a/b': a run name is one folder name, without '/'",
    ("--run", " "): "--run ' ': it is empty",
    ("--run", "..."): "--run '...': it starts with '.'",
    ("--run", ".x.lock"): "--run '.x.lock': it starts with '.', as hidden files and the runs' "
                          "locks do",
    ("--run=-x",): "--run '-x': it starts with '-', as an option does",
    ("--run", "a\nb"): "--run 'a\\nb': it has a control character",
    ("--run", "r\udcff"): "--run 'r\\udcff': it is not UTF-8 text",  # the byte 0xFF, as Python
                                                                     # reads it
    ("--data", "/tmp/\udcff.sqlite"): "--data '/tmp/\\udcff.sqlite' is not UTF-8 text",
    ("--data", ""): "--data is empty",
    ("--contexts", "genre=0.5"): "--contexts: the shares add up to 0.5; they must add up to 1",
}


@pytest.fixture(scope="module")
def bad_options(tmp_path_factory):
    """{options: (the log directory, what `python run.py --data demo OPTIONS` said)}, all run at
    once."""
    folders = {options: tmp_path_factory.mktemp("bad-options") / "logs" for options in BAD_OPTIONS}
    results = run_many({options: ("--data", "demo", *options, "--logdir", str(folders[options]))
                        for options in BAD_OPTIONS})
    return {options: (folders[options], results[options]) for options in BAD_OPTIONS}


@pytest.mark.parametrize("options", BAD_OPTIONS,
                         ids=[" ".join(options)[:40] for options in BAD_OPTIONS])
def test_bad_options_are_one_line_and_write_nothing(bad_options, options):
    logs, result = bad_options[options]
    assert_promise(result, logs, 2, BAD_OPTIONS[options], lines=1)
    assert not logs.exists() or not os.listdir(logs)


def test_divergence_stops_with_one_line_and_leaves_nothing(tmp_path):
    result = run_cli("--data", "demo", "--logdir", str(tmp_path), "--learning-rate", "1e9",
                     "--no-plots")
    assert_promise(result, tmp_path, 2, "training diverged at step", "try a lower --learning-rate",
                   lines=1)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, note", [
    (["--clusters", "100000"], None),
    (["--embedding-size", "1"], "found smaller than n_clusters"),  # k-means says so, in one line
], ids=["clusters 100000", "embedding size 1"])
def test_options_at_their_edges_train(tmp_path, args, note):
    logs = tmp_path / "logs"
    result = run_cli("--data", "demo", *args, "--steps", "50", "--run", "r", "--logdir", str(logs))
    assert assert_promise(result, logs, 0)["r"].state == "finished"
    said = result.stderr.strip().splitlines()
    assert (all(line.startswith("run.py: note: ") and note in line for line in said) if note
            else not said), said


# ---------------------------------------------------------------------------------------------
# A cluster's TF_CONFIG
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, message", [
    pytest.param("{not json", "TF_CONFIG is not a cluster description", id="not JSON"),
    pytest.param("[" * 30_000 + "]" * 30_000, "TF_CONFIG is not a cluster description",
                 id="nested 30,000 deep"),
    pytest.param('{"cluster": {"chief": ["a:1"], "ps": ["b:2"]}, '
                 '"task": {"type": "worker", "index": 0}}',
                 "this task's type 'worker' is not a job of the cluster",
                 id="a job not in the cluster"),
    pytest.param('{"cluster": {"chief": ["a:1"], "ps": ["b:2"]}, '
                 '"task": {"type": "ps", "index": 3}}',
                 "task index 3 is out of range for the 1 ps task", id="index out of range"),
    pytest.param('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, '
                 '"task": {"type": "worker", "index": 0}}',
                 "a cluster has one chief and at least one ps task", id="without a chief"),
    pytest.param('{"cluster": {"chief": ["a"], "ps": ["b:2"]}, '
                 '"task": {"type": "chief", "index": 0}}',
                 "every task's address is host:port", id="an address without a port"),
    pytest.param('{"cluster": {"chief": ["a:1"], "ps": ["b:2"], "evaluator": ["c:3"]}, '
                 '"task": {"type": "chief", "index": 0}}',
                 "the cluster's jobs are chief, worker, ps", id="an unknown job"),
    pytest.param('{"cluster": {"chief": {"0": "a:1"}, "ps": ["b:2"]}, '
                 '"task": {"type": "chief", "index": 0}}',
                 "TF_CONFIG: the cluster's 'chief' must be a list of its tasks' "
                 "host:port addresses",
                 id="a chief that is an object"),
    pytest.param('{"cluster": {"chief": ["a:1"], "ps": {"b:2": 0}}, '
                 '"task": {"type": "ps", "index": 0}}',
                 "TF_CONFIG: the cluster's 'ps' must be a list of its tasks' host:port addresses, "
                 "not {'b:2': 0}", id="ps an object"),  # was KeyError: 0, formatting the error
    pytest.param('{"cluster": {"chief": ["a:1"], "ps": ["b:2", "c:3"]}, '
                 '"task": {"type": "ps", "index": true}}',
                 "TF_CONFIG: the task's index must be a whole number, not True", id="index true"),
])
def test_bad_tf_config(tmp_path, config, message):
    result = run_cli("--data", "demo", "--logdir", str(tmp_path), env={"TF_CONFIG": config})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []
    assert_promise(result, tmp_path, 2)


def test_a_signal_to_a_worker_building_its_graph_is_one_line(tmp_path):
    chief, ps, worker = free_ports(3)
    config = {"cluster": {"chief": [f"127.0.0.1:{chief}"], "ps": [f"127.0.0.1:{ps}"],
                          "worker": [f"127.0.0.1:{worker}"]},
              "task": {"type": "worker", "index": 0}}
    # Its first line is said just before TensorFlow builds the graph, whose C++ would mangle the
    # interrupt.
    result = signalled(["--data", "demo", "--logdir", str(tmp_path / "logs")], "training with the",
                       signal.SIGTERM, env={"TF_CONFIG": json.dumps(config)})
    assert_promise(result, tmp_path / "logs", 130, lines=1)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_ps_address_that_is_the_chiefs_under_another_name(tmp_path):
    """0.0.0.0 is this machine's every address, which only a lookup would tell: the chief reached
    itself for the ps, and said only `unknown device`."""
    chief = free_ports(1)[0]
    config = {"cluster": {"chief": [f"127.0.0.1:{chief}"], "ps": [f"0.0.0.0:{chief}"]},
              "task": {"type": "chief", "index": 0}}
    logs = tmp_path / "logs"
    result = run_cli("--data", "demo", "--logdir", str(logs), "--steps", "50", "--no-plots",
                     env={"TF_CONFIG": json.dumps(config)})
    runs = assert_promise(result, logs, 2,
                          "training stopped: /job:ps/replica:0/task:0/device:CPU:0 unknown "
                          "device; does TF_CONFIG give two tasks one address under two names")
    assert runs == {}


def test_a_chief_whose_ps_never_answers(tmp_path):
    chief, ps = free_ports(2)
    config = {"cluster": {"chief": [f"127.0.0.1:{chief}"], "ps": [f"127.0.0.1:{ps}"]},
              "task": {"type": "chief", "index": 0}}
    logs = tmp_path / "logs"
    # Its message is the event that it waited 3 s, not 120; run_cli's timeout is the guard against a
    # hang, wide enough for a machine under load.
    result = run_cli("--data", "demo", "--logdir", str(logs), env={"TF_CONFIG": json.dumps(config)},
                     settings={CLUSTER_WAIT_SECONDS: 3})  # 120 s in use
    runs = assert_promise(result, logs, 2,
                          f"ps 0 at 127.0.0.1:{ps} has not answered in 3 s: start it, or check "
                          f"TF_CONFIG", "is removed: it had no checkpoint, so nothing was kept",
                          lines=2)
    assert runs == {}
