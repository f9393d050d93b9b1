"""Runs that survive interruption, files written whole, and bad input refused cleanly."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atomic_files
import bands2vec
import contexts
import errors
import metadata
import run_folder
import run_record
import vector_files
import data_utils
from conftest import METADATA_HEADER, REPO, quiet


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def _one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def _metadata_lines(run_dir):
    with open(os.path.join(run_dir, metadata.METADATA_FILE), encoding="utf-8") as f:
        return f.read().splitlines()


# ---------------------------------------------------------------------------------------------
# Interruption and resume
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_training_saves_a_consistent_run_and_resumes(tmp_path, full_data, signum):
    from artist_vectors import ArtistVectors

    logs = tmp_path / "logs"
    process = subprocess.Popen(
        [sys.executable, "-u", os.path.join(REPO, "run.py"), "--data", full_data, "--logdir", str(logs),
         "--run", "r", "--steps", "1000000", "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # wait until training is under way
            if "step" in line and "average loss" in line:
                break
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "Interrupted at step" in stderr
    assert "--resume" in stderr

    run_dir = str(logs / "r")
    record = run_record.read(run_dir)
    steps = record.stats.steps
    assert record.state == "interrupted" and 250 <= steps < 1_000_000
    assert len(_metadata_lines(run_dir)) == 8712 + 1
    vectors = ArtistVectors.load(run_dir)  # checkpoint and metadata agree
    assert len(vectors) == 8712 and np.all(np.isfinite(vectors.vectors))
    assert not [name for name in os.listdir(run_dir) if name.startswith(".")]  # no temporary files left

    result = _run("--resume", "--logdir", str(logs), "--run", "r", "--steps", str(steps + 100), "--no-plots")
    assert result.returncode == 0, result.stderr
    record = run_record.read(run_dir)
    assert record.state == "finished" and record.stats.steps == steps + 100
    assert record.stats.pairs == 100 * record.options.batch_size

    _one_line_error(_run("--resume", "--logdir", str(logs), "--run", "r", "--data", "demo"), "trained on other data")
    _one_line_error(_run("--resume", "--logdir", str(logs), "--run", "r"), "has trained all its")
    _one_line_error(_run("--resume", "--logdir", str(logs), "--run", "r", "--seed", "3"), "only --steps")


def test_a_failed_start_leaves_no_run_folder(tmp_path, monkeypatch, demo_catalog):
    import bands2vec
    import training

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(training, "train_vectors", fail)
    with pytest.raises(RuntimeError):
        bands2vec.train(demo_catalog, logs=str(tmp_path), plots=False, say=quiet)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Files written whole or not at all
# ---------------------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / "metadata.tsv")
    atomic_files.write_text(path, "old\n")

    def half_then_fail(f):
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_files.atomic_write(path, half_then_fail)
    assert open(path).read() == "old\n"
    assert os.listdir(tmp_path) == ["metadata.tsv"]


# ---------------------------------------------------------------------------------------------
# Bad data
# ---------------------------------------------------------------------------------------------

def _csv_folder(folder, reviews, genres):
    os.makedirs(folder, exist_ok=True)
    for name, header, rows in (("reviews.csv", ["reviewid", "artist", "score"], reviews),
                               ("genres.csv", ["reviewid", "genre"], genres)):
        with open(os.path.join(folder, name), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return str(folder)


def test_every_genre_null_is_refused(tmp_path):
    folder = _csv_folder(tmp_path, [(1, "a", 7.0), (2, "b", 6.0)], [(1, "NA"), (2, "")])
    _one_line_error(_run("--data", folder, "--logdir", str(tmp_path / "logs")), "every genre is NULL")
    assert not (tmp_path / "logs").exists()


def test_empty_tables_are_refused(tmp_path):
    folder = _csv_folder(tmp_path, [], [])
    _one_line_error(_run("--data", folder, "--logdir", str(tmp_path / "logs")), "no reviews with an artist")


def _odd_catalog(folder):
    """80 artists, some with tabs, newlines and quotes in their names, and some bad scores."""
    rng = np.random.default_rng(0)
    names = [f"artist {i}" for i in range(76)] + ["tab\there", "new\nline", 'say "hi"', "it's, like, \u00e9"]
    reviews, genres = [], []
    for i, name in enumerate(names):
        reviews.append((i, name, round(float(rng.uniform(3, 9)), 1)))
        genres.append((i, contexts.GENRES[i % 4]))
    reviews += [(100, "artist 1", "eleven"), (101, "artist 2", 11.5), (102, "artist 3", -1), (103, "artist 4", "")]
    return _csv_folder(folder, reviews, genres)


def test_odd_names_and_bad_scores(tmp_path):
    folder = _odd_catalog(tmp_path / "data")
    result = _run("--data", folder, "--logdir", str(tmp_path / "logs"), "--run", "odd", "--num-sampled", "8",
                  "--steps", "50", "--no-plots")
    assert result.returncode == 0, result.stderr
    assert "Skipped 4 reviews whose score is missing or outside 0-10" in result.stdout
    lines = _metadata_lines(tmp_path / "logs" / "odd")
    assert len(lines) == 80 + 1
    assert all(len(line.split("\t")) == len(METADATA_HEADER) for line in lines)
    assert any(line.startswith("tab here\t") for line in lines)
    result = _run("similar", 'say "hi"', "-k", "3", "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 3, result.stderr


def test_malformed_csv_is_refused(tmp_path):
    (tmp_path / "reviews.csv").write_bytes(b'reviewid,artist,score\n1,"unclosed,7\n\xff\xfe\n')
    (tmp_path / "genres.csv").write_text("reviewid,genre\n1,rock\n")
    _one_line_error(_run("--data", str(tmp_path), "--logdir", str(tmp_path / "logs")), "reviews.csv")


_cells = st.one_of(st.text(max_size=12), st.integers(-5, 30).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["NA", "", '"', '""', ",", "\n", "rock", "7.5", "1e400", "-0"]))
_columns = st.lists(st.sampled_from(["reviewid", "artist", "score", "genre", "other", ""]), min_size=0, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(review_columns=_columns, review_rows=st.lists(st.lists(_cells, max_size=6), max_size=8),
       genre_columns=_columns, genre_rows=st.lists(st.lists(_cells, max_size=4), max_size=8),
       garbage=st.binary(max_size=40))
def test_fuzzed_csv_loads_or_is_refused_cleanly(review_columns, review_rows, genre_columns, genre_rows, garbage):
    with tempfile.TemporaryDirectory() as folder:
        for name, columns, rows in (("reviews.csv", review_columns, review_rows),
                                    ("genres.csv", genre_columns, genre_rows)):
            with open(os.path.join(folder, name), "w", newline="", encoding="utf-8", errors="surrogatepass") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(rows)
        with open(os.path.join(folder, "reviews.csv"), "ab") as f:
            f.write(garbage)
        try:
            catalog = data_utils.load_catalog(folder)
        except errors.DataError as error:
            assert "\n" not in str(error) and str(error)
        else:
            assert len(catalog) >= 1
            assert all(0 <= artist.mean_score <= 10 for artist in catalog)
            assert all(isinstance(artist.name, str) for artist in catalog)


# ---------------------------------------------------------------------------------------------
# Bad runs for query, plot and evaluate
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def damaged_run(tmp_path, demo_run):
    copy = tmp_path / "logs" / "copy"
    shutil.copytree(demo_run, copy)
    return copy


@pytest.mark.parametrize("command", [["similar", "lune, marée"], ["query", "lune, marée - !?!"], ["plot"],
                                     ["evaluate"]])
def test_missing_checkpoint(damaged_run, command):
    # vectors.npy is another whole copy of the vectors: the questions are still answered.
    shutil.rmtree(damaged_run / run_folder.CHECKPOINT_DIR)
    result = _run(*command, "--logdir", str(damaged_run.parent))
    assert result.returncode == 0 and not result.stderr, result.stderr
    os.remove(damaged_run / vector_files.VECTORS_FILE)
    _one_line_error(_run(*command, "--logdir", str(damaged_run.parent)), "no such file", "no checkpoint")


def _damage_checkpoint(run_dir):
    checkpoints = run_dir / run_folder.CHECKPOINT_DIR
    for name in os.listdir(checkpoints):
        if name.startswith("model.ckpt") and name.endswith((".index", ".data-00000-of-00001")):
            (checkpoints / name).write_bytes(b"\x00garbage" * 10)


@pytest.mark.parametrize("command", [["similar", "lune, marée"], ["evaluate"]])
def test_corrupt_checkpoint(damaged_run, command):
    _damage_checkpoint(damaged_run)
    result = _run(*command, "--logdir", str(damaged_run.parent))
    assert result.returncode == 0 and not result.stderr, result.stderr
    with open(damaged_run / vector_files.VECTORS_FILE, "r+b") as f:
        f.truncate(1000)  # a truncated copy as well: nothing whole is left
    _one_line_error(_run(*command, "--logdir", str(damaged_run.parent)), "unreadable checkpoint")


def test_damaged_vectors_are_read_from_the_checkpoint(damaged_run):
    with open(damaged_run / vector_files.VECTORS_FILE, "r+b") as f:
        f.truncate(1000)
    result = _run("similar", "lune, marée", "-k", "3", "--logdir", str(damaged_run.parent))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 3
    (note,) = result.stderr.splitlines()
    assert note.startswith("run.py: note: ") and "vectors.npy: damaged" in note and "checkpoint" in note


def test_damaged_metadata(damaged_run):
    with open(damaged_run / metadata.METADATA_FILE, "a") as f:
        f.write("one\ttoo few\n")
    _one_line_error(_run("similar", "lune, marée", "--logdir", str(damaged_run.parent)), "malformed metadata")


def test_bad_query_options(demo_run):
    logs = os.path.dirname(demo_run)
    _one_line_error(_run("similar", "lune, marée", "-k", "0", "--logdir", logs), "-k must be at least 1")
    _one_line_error(_run("similar", "lune, marée", "--run", "nope", "--logdir", logs), "no trained run")
    _one_line_error(_run("plot", "--clusters", "0", "--logdir", logs), "--clusters must be at least 1")
