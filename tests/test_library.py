"""The library (bands2vec.py): training and opening runs from Python, queries without TensorFlow,
the per-artist table, what neighbours share, many questions in one start-up, the help's numbers, and
the notebook."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import metadata
import options
import run_record
import vector_files
import bands2vec
import data_utils
from artist_vectors import ArtistVectors, shares_text
from vector_files import checkpoint_vectors
from helpers import REPO, quiet, run_cli


def _files(folder):
    """The run folder's files, events files by kind (their names hold the time and the process)."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.relpath(os.path.join(root, name), folder)
            found.append("events" if name.startswith("events.out.tfevents") else path)
    return sorted(found)


@pytest.mark.slow
def test_the_library_writes_the_same_run_as_the_command_line(tmp_path):
    options = ["--steps", "120", "--seed", "3", "--contexts", "genre,score,label"]
    result = run_cli("--data", "demo", "--logdir", str(tmp_path / "cli"), "--run", "r", *options)
    assert result.returncode == 0, result.stderr
    run = bands2vec.train("demo",
                          bands2vec.TrainOptions(steps=120, seed=3, contexts="genre,score,label"),
                          logs=str(tmp_path / "lib"), name="r", say=quiet)
    cli = str(tmp_path / "cli" / "r")
    assert _files(run.folder) == _files(cli)
    for name in (metadata.METADATA_FILE, vector_files.WORD2VEC_FILE, vector_files.VECTORS_TSV):
        assert (open(os.path.join(run.folder, name), "rb").read()
                == open(os.path.join(cli, name), "rb").read())
    assert np.array_equal(run.vectors.vectors,
                          np.load(os.path.join(cli, vector_files.VECTORS_FILE)))
    assert np.array_equal(run.vectors.vectors, checkpoint_vectors(run.folder))
    assert run.record.options == run_record.read(cli).options
    assert run.record.options.contexts == {"genre": 0.375, "score": 0.25, "label": 0.375}
    # What the Run object offers: the facts, the quality report, the plots, its folder.
    assert run.artists.names == data_utils.load_catalog("demo").names
    assert (set(run.plots) == {"clusters", "genres", "labelled"}
            and all(map(os.path.isfile, run.plots.values())))
    assert run.quality["genre"]["trained"] > run.quality["genre"]["random"]
    assert run.options.steps == 120 and run.options.contexts == run.record.options.contexts

    opened = bands2vec.open_run(str(tmp_path / "lib"))
    assert opened.folder == run.folder and np.array_equal(opened.vectors.vectors,
                                                          run.vectors.vectors)
    assert (opened.vectors.most_similar("lune, marée", topn=3)
            == run.vectors.most_similar("lune, marée", topn=3))


@pytest.mark.slow
def test_queries_never_import_tensorflow_or_pandas(demo_run, tmp_path):
    """similar, query, evaluate, plot and opening a run from Python, in a fresh process."""
    import shutil

    logs = str(tmp_path)
    shutil.copytree(demo_run, tmp_path / "copy")  # plot writes into the run
    script = f"""
import sys
sys.path.insert(0, {REPO!r})
import bands2vec, run
vectors = bands2vec.open_run({logs!r}).vectors
assert vectors.most_similar("lune, marée", topn=3)
for command in (["similar", "lune, marée"], ["query", "lune, marée - !?!"]):
    assert run.main(command + ["--logdir", {logs!r}]) == 0
assert "tensorflow" not in sys.modules and "pandas" not in sys.modules, "queries"
for command in (["evaluate"], ["plot"]):
    assert run.main(command + ["--logdir", {logs!r}]) == 0
assert "tensorflow" not in sys.modules, "evaluate and plot"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.endswith("ok\n"), result.stderr


@pytest.mark.slow
def test_a_run_from_before_vectors_npy_opens_from_its_checkpoint(tmp_path, demo_run):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(demo_run, old)
    os.remove(old / vector_files.VECTORS_FILE)
    with pytest.warns(UserWarning, match="vectors.npy: no such file.*"
                                         "checkpoint with TensorFlow") as caught:
        vectors = ArtistVectors.load(str(old))
    assert len(caught) == 1
    assert np.array_equal(vectors.vectors, checkpoint_vectors(demo_run))
    # The command line says so once, on stderr, and answers; export then writes vectors.npy.
    result = run_cli("similar", "lune, marée", "!?!", "-k", "2", "--logdir", str(tmp_path), "--run",
                     "old")
    assert result.returncode == 0 and result.stdout.count("Artist: ") == 4
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("run.py: note: ")
    assert run_cli("export", "--logdir", str(tmp_path), "--run", "old").returncode == 0
    assert np.array_equal(np.load(old / vector_files.VECTORS_FILE), vectors.vectors)


def test_the_artist_table_against_the_records(full_catalog):
    """Each fact computed from an artist's own reviews, independently of the table's rules."""
    table = full_catalog.facts
    assert len(table) == len(full_catalog) == 8630
    for i in range(0, len(full_catalog), 7):
        artist = full_catalog.artist(i)
        mean = sum(artist.scores) / len(artist.scores)
        assert table.names[i] == artist.name and table.genres[i] == artist.genres
        assert table.mean_scores[i] == pytest.approx(mean, abs=1e-12)
        assert table.score_buckets[i] == int(mean + 0.5)  # positive: int() floors
        assert table.primary_genres[i] == (artist.genres[0] if artist.genres else "none")
        assert table.review_counts[i] == len(artist.review_ids)
        assert (table.labels[i] == artist.labels
                and table.main_labels[i] == (artist.labels[:1] or ("",))[0])
        if artist.years:
            year = sum(artist.years) / len(artist.years)
            start = int(year) - int(year) % 5
            assert table.years[i] == pytest.approx(year) and table.eras[i] == f"{start}-{start + 4}"
        else:
            assert np.isnan(table.years[i]) and table.eras[i] == ""
    assert full_catalog["coil"].score_bucket == 8 and full_catalog["radiohead"].era == "2005-2009"


@pytest.mark.slow
def test_the_table_a_run_saves_is_the_catalogs(full_run, full_catalog):
    saved = ArtistVectors.load(full_run).artists
    table = full_catalog.facts
    assert (saved.names == table.names and saved.genres == table.genres
            and saved.labels == table.labels)
    for column in ("primary_genres", "score_buckets", "review_counts", "main_labels", "eras"):
        assert np.array_equal(getattr(saved, column), getattr(table, column)), column
    np.testing.assert_allclose(saved.mean_scores, table.mean_scores, atol=5e-5)
    np.testing.assert_allclose(saved.years, table.years, atol=0.05)


@pytest.mark.slow
def test_what_neighbours_share_in_text_and_json(full_run):
    logs = ["--logdir", os.path.dirname(full_run)]
    vectors = ArtistVectors.load(full_run)
    burial = vectors.artists.names.index("burial")
    (answer,) = json.loads(run_cli("similar", "burial", "-k", "5", "--json", *logs).stdout)
    rows = answer["results"]
    lines = run_cli("similar", "burial", "-k", "5", *logs).stdout.splitlines()
    lines = lines[1:] if lines[0] == vectors.tie_note("burial") else lines
    assert len(rows) == len(lines) == 5
    for row, line in zip(rows, lines):
        i = vectors.artists.names.index(row["artist"])
        shares = row["shares"]
        assert shares["genres"] == [g for g in vectors.artists.genres[i]
                                    if g in vectors.artists.genres[burial]]
        assert shares["labels"] == [label for label in vectors.artists.labels[i]
                                    if label in vectors.artists.labels[burial]]
        assert (shares["era"] is not None) == (vectors.artists.eras[i]
                                               == vectors.artists.eras[burial] != "")
        assert (shares["score_bucket"] is not None) == (vectors.artists.score_buckets[i]
                                                        == vectors.artists.score_buckets[burial])
        assert line == (f"Artist: {row['artist']}, Mean Score: {row['mean_score']:.2f}, "
                        f"Genres: {row['genres']}, Similarity: {row['similarity']:.3f}, "
                        f"Shares: {shares_text(shares)}")
    # Labelmates are said to be so (the tutorial's contexts do not make them neighbours; the label
    # context does).
    assert vectors.shared("kode9", ["burial"])["labels"] == ["hyperdub"]
    assert ", Shares: hyperdub (label), electronic" in vectors.describe("kode9", 0.5,
                                                                        shared_with=["burial"])
    text = run_cli("query", "burial + kode9", "-k", "10", *logs).stdout
    assert text.count(", Shares: ") == 10
    assert shares_text({"labels": [], "genres": [], "era": None, "score_bucket": None}) == "nothing"


@pytest.mark.slow
def test_many_questions_on_stdin_with_an_unknown_one(full_run):
    logs = ["--logdir", os.path.dirname(full_run)]
    vectors = ArtistVectors.load(full_run)
    result = run_cli("similar", "-", "-k", "3", *logs, stdin="radiohead\nradiohed\n\nsunn o)))\n")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["run.py: error: unknown artist 'radiohed'; "
                                          "did you mean 'radiohead', 'radio 4', 'airhead'?"]
    blocks = result.stdout.strip().split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == ["Nearest to radiohead:",
                                                           "Nearest to sunn o))):"]
    # Each block: the question, the note on its twins if it has some, three answers.
    assert all(len(block.splitlines())
               == 4 + (vectors.tie_note(block.splitlines()[0][11:-1]) is not None)
               for block in blocks)
    # Arguments and stdin mix; JSON is one list, an object a question, a line each.
    result = run_cli("query", "coil - elder ones", "-", "--json", "-k", "2", *logs,
                     stdin="coil - coil\n")
    answers = json.loads(result.stdout)
    assert len(result.stdout.splitlines()) == 2
    assert (result.returncode == 2
            and [answer["question"] for answer in answers] == ["coil - elder ones", "coil - coil"])
    assert len(answers[0]["results"]) == 2 and "zero vector" in answers[1]["error"]
    assert run_cli("similar", "radiohead", "burial", *logs).returncode == 0


def test_the_help_names_the_current_numbers(monkeypatch):
    import run

    def train_help():
        return run.build_parser()._subparsers._group_actions[0].choices["train"].format_help()

    text = " ".join(train_help().split())
    for number in (f"{options.MIN_STEPS:,}", f"{options.MOVE_PER_MEMBERSHIP:g}",
                   f"{options.MAX_RATE}", f"artists / {options.ARTISTS_PER_RATE}",
                   f"{options.PAIRS_PER_ARTIST}", f"{options.BATCH_SIZES[0]:,}",
                   f"{options.BATCH_SIZES[1]:,}", f"{options.MOVE_GROWTH_ABOVE:,}",
                   f"x{1 + options.MOVE_GROWTH:g}", f"(default: {options.KMEANS_CLUSTERS})",
                   "genre=0.6,score=0.4",
                   f"(default: {options.NUM_SAMPLED}, or one fewer than the artists"):
        assert number in text, number
    # The help follows the constants: change them and it says the new numbers.
    for name, value in (("MIN_STEPS", 1234), ("MAX_RATE", 77), ("ARTISTS_PER_RATE", 91),
                        ("PAIRS_PER_ARTIST", 333), ("MOVE_GROWTH", 0.7), ("KMEANS_CLUSTERS", 12),
                        ("NUM_SAMPLED", 17)):
        monkeypatch.setattr(options, name, value)
    text = " ".join(train_help().split())
    for number in ("at least 1,234", "at most 77", "artists / 91", "333 x artists", "x1.7",
                   "(default: 12)", "(default: 17, or one fewer"):
        assert number in text, number


@pytest.mark.slow
def test_the_notebook_runs_on_the_demo_catalog(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv(data_utils.DATA_ENV, data_utils.DEMO_SOURCE)
    monkeypatch.setenv("BANDS2VEC_LOGS", str(tmp_path / "logs"))
    notebook = nbformat.read(os.path.join(REPO, "examples", "bands2vec.ipynb"), as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(REPO, "examples")}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "300 artists, 642 reviews from demo" in text and "average loss" in text
    assert "embeddings/embeddings [300, 64]" in text
    assert "Shares: " in text and text.count("Artist: ") >= 17
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 3
    run = bands2vec.open_run(str(tmp_path / "logs"), "notebook")
    assert run.record.artists == 300 and run.quality["genre"]["trained"] > 0.8


def test_the_notebooks_saved_outputs_carry_no_machine_path():
    """The outputs saved in the notebook are read by everyone: no path of the machine that ran
    it."""
    import nbformat

    notebook = nbformat.read(os.path.join(REPO, "examples", "bands2vec.ipynb"), as_version=4)
    texts = [text for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
             for text in [output.get("text", ""), output.get("evalue", ""),
                          *output.get("traceback", []),
                          *(value for kind, value in output.get("data", {}).items()
                            if kind.startswith("text/"))]]
    assert len(texts) > 20 and any("data/database.sqlite" in text for text in texts)
    absolute = re.compile(r"""(?:^|[\s'"(\[=])(?:(?:/[\w.-]+){2,}|~/|[A-Za-z]:\\)""")
    assert not [text for text in texts if absolute.search(text)]


def test_the_docs_name_the_current_numbers():
    """The options page states the default rules with the constants' numbers, as the help does."""
    with open(os.path.join(REPO, "docs", "options.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    for number in (f"{options.MOVE_PER_MEMBERSHIP:g} x context memberships",
                   f"at least {options.MIN_STEPS:,}",
                   f"x{1 + options.MOVE_GROWTH:g} for every tenfold of artists past "
                   f"{options.MOVE_GROWTH_ABOVE:,}",
                   f"{options.PAIRS_PER_ARTIST} x artists / steps",
                   f"from {options.BATCH_SIZES[0]:,} to {options.BATCH_SIZES[1]:,}",
                   f"artists / {options.ARTISTS_PER_RATE}, at most {options.MAX_RATE}",
                   f"| `--clusters K` | {options.KMEANS_CLUSTERS} |",
                   f"| `--num-sampled N` | {options.NUM_SAMPLED}, "
                   f"or one fewer than the artists of a smaller catalog |"):
        assert number in text, number


def test_options_that_make_training_diverge_are_the_librarys_own_error(tmp_path):
    # The largest learning rate the options' checks take overflows the loss.
    with pytest.raises(bands2vec.Bands2VecError, match="training diverged at step"):
        bands2vec.train("demo",
                        bands2vec.TrainOptions(steps=20, learning_rate=options.MAX_LEARNING_RATE),
                        logs=str(tmp_path),
                        plots=False, say=quiet)
