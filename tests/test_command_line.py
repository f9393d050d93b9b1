"""The command line's conventions: --version, a mistyped command, one --json shape for any number
of questions, questions from stdin whatever it holds, evaluate's object, which run answers, a
resumed run's totals. Fast cases call run.py's main in this process; the slow ones need a process
of their own."""
import glob
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import bands2vec
import metadata
import run
import run_life
import run_record
import vector_files
from helpers import REPO, RUN_PY, answer_lines, assert_refused, cli_command, quiet, run_cli


def _main(capsys, *args, stdin=None, monkeypatch=None):
    """run.py's main in this process: (exit status, stdout, stderr); `stdin` bytes, or None for a
    closed one."""
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin",
                            None if stdin is None else io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        status = run.main(list(args))
    except SystemExit as stop:  # argparse's own exits: --version, --help, a bad command
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_refusal(status, err):
    assert status == 2 and len(err.splitlines()) == 1 and err.startswith("run.py: error: "), err


def test_control_characters_are_written_as_escapes(capsys, demo_copy):
    # a name in a shared log folder that would clear the screen
    path = demo_copy / metadata.METADATA_FILE
    rows = path.read_text(encoding="utf-8").split("\n")
    # and a line separator, which breaks lines for some readers
    rows[1] = "\x1b[2J\u202e\u2028" + rows[1]
    path.write_text("\n".join(rows), encoding="utf-8")
    logs = str(demo_copy.parent)
    status, out, err = _main(capsys, "similar", "lune, marée", "-k", "299", "--logdir", logs)
    assert (status == 0 and "Artist: \\u001b[2J\\u202e\\u2028" in out
            and not {"\x1b", "\u202e", "\u2028"} & set(out))
    status, out, err = _main(capsys, "similar", "lune, marée", "-k", "299", "--json", "--logdir",
                             logs)
    # the same JSON, escaped either way
    names = [row["artist"] for row in json.loads(out)[0]["results"]]
    assert (status == 0 and any(name.startswith("\x1b[2J\u202e\u2028") for name in names)
            and "\u2028" not in out)


def test_an_output_encoding_that_cannot_write_an_answer(monkeypatch, demo_trained):
    """PYTHONIOENCODING=ascii printed `'ascii' codec can't encode character` and no answer: now what
    it cannot write is a JSON escape, which --json reads back as the same text, with a note saying
    so once."""
    logs = os.path.dirname(demo_trained)
    monkeypatch.setattr(run.EscapedStream, "noted", False)
    for args in (["björk-ish", "-k", "2"], ["björk-ish", "--json"]):
        out, err = io.BytesIO(), io.BytesIO()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="ascii"))
        monkeypatch.setattr(sys, "stderr",
                            io.TextIOWrapper(err, encoding="ascii", errors="backslashreplace"))
        status = run.main(["similar", *args, "--logdir", logs])
        sys.stdout.flush(), sys.stderr.flush()
        assert status == 0, err.getvalue()
        text = out.getvalue().decode("ascii")
        assert (text.startswith("bj\\u00f6rk-ish: ")
                or json.loads(text)[0]["question"] == "björk-ish")
        notes = err.getvalue().decode("ascii").splitlines()
        assert notes == ([] if "--json" in args else [
            "run.py: note: the output's encoding, ascii, cannot write every character: those are "
            "written as \\u escapes; set PYTHONIOENCODING=utf-8 (or a UTF-8 locale) to see "
            "them"]), notes


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8"])
def test_json_answers_are_json_in_any_output_encoding(monkeypatch, demo_trained, encoding):
    """With PYTHONIOENCODING=latin-1, --json wrote ö as the byte 0xF6: not UTF-8, so not JSON."""
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding=encoding))
    status = run.main(["similar", "björk-ish", "--json", "--logdir", os.path.dirname(demo_trained)])
    sys.stdout.flush()
    assert status == 0 and json.loads(out.getvalue().decode("utf-8"))[0]["question"] == "björk-ish"
    assert ("björk-ish".encode() in out.getvalue()) == (encoding == "utf-8")  # else \u00f6


def test_a_message_naming_a_folder_with_a_line_break_is_one_line(capsys, tmp_path):
    logs = tmp_path / "my\nlogs"
    status, out, err = _main(capsys, "similar", "burial", "--logdir", str(logs))
    assert status == 2 and err.count("\n") == 1 and f"{tmp_path}/my\\u000alogs" in err, err


def test_a_note_naming_a_folder_with_a_line_break_is_one_line(capsys, tmp_path, demo_copy):
    """A note (a damaged vectors.npy read from the checkpoint instead) spread over three lines, and
    a folder's name could forge a `run.py: error:` line."""
    logs = tmp_path / "nl\nrun.py: error: forged"
    shutil.copytree(demo_copy, logs / "d")
    (logs / "d" / "vectors.npy").write_text("junk")
    status, out, err = _main(capsys, "similar", "björk-ish", "--logdir", str(logs), "--run", "d")
    assert status == 0 and all(line.startswith("run.py: note: ") for line in err.splitlines()), err


def test_a_signal_python_swallowed_is_raised_at_the_runs_next_line(capsys, monkeypatch):
    """A SIGTERM whose KeyboardInterrupt lands in a callback Python ignores errors of (its import
    lock's, as the data loads) stops the run at its next line, before a run folder is made."""
    def load_swallowing_a_signal(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as swallowed:  # what Python does with it inside such a callback
            sys.unraisablehook(types.SimpleNamespace(exc_type=KeyboardInterrupt,
                                                     exc_value=swallowed, exc_traceback=None,
                                                     err_msg=None, object=None))
        return real_load(*args, **kwargs)

    real_load = run_life.load_catalog
    monkeypatch.setattr(run_life, "load_catalog", load_swallowing_a_signal)
    status, out, err = _main(capsys, "--data", "demo", "--logdir", "/nonexistent/never-made")
    assert status == 130 and "Training" not in out
    assert err == "run.py: interrupted before a run folder was made: nothing was written\n"


def test_an_answer_with_its_output_closed_is_refused(capsys, monkeypatch, demo_trained):
    monkeypatch.setattr(sys, "stdout", None)
    status = run.main(["similar", "lune, marée", "--logdir", str(demo_trained)])
    monkeypatch.undo()
    assert status == 2
    assert capsys.readouterr().err == ("run.py: error: standard output is closed; nothing could be "
                                       "printed\n")


# ---------------------------------------------------------------------------------------------
# --version, and a command mistyped
# ---------------------------------------------------------------------------------------------

def test_the_version_is_one_string_in_one_place(capsys):
    assert re.fullmatch(r"\d+\.\d+\.\d+", bands2vec.__version__)
    assert _main(capsys, "--version") == (0, f"Bands2Vec {bands2vec.__version__}\n", "")
    written = [path for path in glob.glob(os.path.join(REPO, "*.py"))
               if f'"{bands2vec.__version__}"' in open(path, encoding="utf-8").read()]
    assert written == [os.path.join(REPO, "bands2vec.py")]


@pytest.mark.parametrize("isolation", ["-P", "-I"])
def test_run_py_finds_its_modules_where_python_leaves_its_folder_off_the_path(tmp_path, isolation):
    """Python's safe path (-P, PYTHONSAFEPATH=1, -I) made every command a ModuleNotFoundError."""
    result = subprocess.run([sys.executable, isolation, RUN_PY, "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, f"Bands2Vec {bands2vec.__version__}\n")


@pytest.mark.parametrize("word, said", [
    ("simlar", "unknown command 'simlar'; did you mean 'similar'?"),
    ("evalute", "unknown command 'evalute'; did you mean 'evaluate'?"),
    ("qeury", "unknown command 'qeury'; did you mean 'query'?"),
    ("exprot", "unknown command 'exprot'; did you mean 'export'?"),
    ("Plot", "unknown command 'Plot'; did you mean 'plot'?"),
    ("burial", "unknown command 'burial'; the commands are train, similar, query, plot, evaluate, "
               "export"),
])
def test_a_mistyped_command_gets_the_nearest(capsys, word, said):
    status, out, err = _main(capsys, word, "burial", "-k", "3")
    _one_line_refusal(status, err)
    assert err == f"run.py: error: {said}\n" and out == ""


def test_options_alone_still_train():
    """Training is the default command: a first word that is an option is training's."""
    assert run.parse_args([]).command == "train"
    args = run.parse_args(["--steps", "5", "--run", "similar"])
    assert args.command == "train" and args.steps == 5 and args.run == "similar"


# ---------------------------------------------------------------------------------------------
# Questions: one --json shape, stdin as it comes
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def logs(demo_trained):
    return ["--logdir", os.path.dirname(demo_trained)]


def test_json_is_one_list_for_one_question_or_many(capsys, logs, demo_trained):
    vectors = bands2vec.open_run(demo_trained).vectors
    first, second = vectors.names[0], vectors.names[1]
    status, out, err = _main(capsys, "similar", first, "-k", "3", "--json", *logs)
    assert status == 0 and err == ""
    (one,) = json.loads(out)
    assert one["question"] == first and [row["artist"] for row in one["results"]] == [
        name for name, _ in vectors.most_similar(first, topn=3)]
    assert set(one["results"][0]) == {"artist", "similarity", "mean_score", "genres", "shares",
                                      "tied_with"}

    status, out, err = _main(capsys, "similar", first, "no such band", second, "-k", "3", "--json",
                             *logs)
    answers = json.loads(out)
    assert status == 2 and err.startswith("run.py: error: unknown artist 'no such band'")
    assert [answer["question"] for answer in answers] == [first, "no such band", second]
    assert answers[0] == one and "unknown artist 'no such band'" in answers[1]["error"]
    assert len(out.splitlines()) == 3  # an answer a line

    status, out, _ = _main(capsys, "query", f"{first} - {first}", "--json", *logs)
    assert status == 2 and "zero vector" in json.loads(out)[0]["error"]


def test_invalid_utf8_on_stdin_becomes_replacement_characters(capsys, monkeypatch, logs,
                                                              demo_trained):
    name = bands2vec.open_run(demo_trained).vectors.names[0]
    status, out, err = _main(capsys, "similar", "-", "--json", "-k", "2", *logs,
                             monkeypatch=monkeypatch, stdin=b"\xff\xfe\n" + name.encode() + b"\n")
    answers = json.loads(out)
    assert status == 2 and [answer["question"] for answer in answers] == ["\ufffd\ufffd", name]
    assert len(answers[1]["results"]) == 2 and "\ufffd\ufffd" in answers[0]["error"]
    out.encode("utf-8")  # no lone surrogate for raw bytes: what was printed is UTF-8
    assert "\udcff" not in out + err


@pytest.mark.parametrize("args, stdin", [(["query", ""], None), (["similar", "-"], b""),
                                         (["similar", "  ", "-"], b"\n \n")],
                         ids=["an empty expression", "empty stdin", "blank lines"])
def test_nothing_asked_is_said(capsys, monkeypatch, logs, args, stdin):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert _main(capsys, *args, "--json", *logs) == (0, "[]\n", "")
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    assert _main(capsys, *args, *logs) == (
        0, "", "run.py: nothing was asked: every question given is empty\n")


def test_an_endless_line_on_stdin_is_refused_as_it_is_read(capsys, monkeypatch, logs):
    """`similar - < /dev/zero` read the one endless line into memory, 20 GB in 2.5 minutes, deaf to
    SIGTERM."""
    with open("/dev/zero", "rb") as zeros:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(zeros))
        status, out, err = _main(capsys, "similar", "-", "--json", *logs)
    _one_line_refusal(status, err)
    assert err == ("run.py: error: a line of stdin is longer than 1,048,576 bytes; each line is "
                   "one question\n")
    assert out == ""


def test_with_stderr_closed_the_json_answer_is_still_json(capsys, monkeypatch, logs, demo_trained):
    """print(file=None) writes to stdout: with stderr closed, the error line began the --json
    answer."""
    name = bands2vec.open_run(demo_trained).vectors.names[0]
    monkeypatch.setattr(sys, "stderr", None)
    status, out, _ = _main(capsys, "similar", "no such artist", name, "-k", "1", "--json", *logs)
    unknown, answer = json.loads(out)
    assert (status == 2 and unknown["error"].startswith("unknown artist")
            and len(answer["results"]) == 1)


def test_a_stderr_that_cannot_be_written_costs_no_answer(capsys, monkeypatch, tmp_path,
                                                         demo_trained):
    """On a full disk, the note of which run answers (or a question's error line) failed, and the
    answers with it: exit 1 and nothing on stdout."""
    for name in ("a", "b"):  # two runs: a note says which answers
        shutil.copytree(demo_trained, tmp_path / name)
    asked = bands2vec.open_run(demo_trained).vectors.names[0]
    with open("/dev/full", "w", buffering=1) as full:  # as stderr is, a line at a time
        monkeypatch.setattr(sys, "stderr", full)
        status, out, _ = _main(capsys, "similar", asked, "no such artist", "-k", "2", "--json",
                               "--logdir", str(tmp_path))
    answer, unknown = json.loads(out)
    assert status == 2 and len(answer["results"]) == 2 and "error" in unknown


def test_a_logdir_that_is_a_file_is_named_so(capsys, demo_trained):
    """Its advice was to train with that --logdir, which then refuses it."""
    path = os.path.join(demo_trained, run_record.RUN_FILE)
    status, out, err = _main(capsys, "similar", "x", "--logdir", path)
    _one_line_refusal(status, err)
    assert err == (f"run.py: error: {path}: not a folder; --logdir names the folder the runs are "
                   f"in\n")


def test_a_stdin_open_for_writing_only_is_named(capsys, monkeypatch, logs, tmp_path):
    """`similar - 0>file` said `a file: Bad file descriptor`."""
    with open(tmp_path / "out", "wb") as written:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(written))
        status, out, err = _main(capsys, "similar", "-", *logs)
    _one_line_refusal(status, err)
    assert err == ("run.py: error: - reads the questions from stdin, which cannot be read (not "
                   "open for reading)\n")


def test_a_closed_stdin_is_one_line(capsys, monkeypatch, logs):
    status, out, err = _main(capsys, "similar", "-", *logs, monkeypatch=monkeypatch, stdin=None)
    _one_line_refusal(status, err)
    assert "- reads the questions from stdin, which is closed" in err and out == ""


def test_vectors_that_are_not_numbers_give_no_nan_in_json(capsys, demo_copy):
    vectors = np.load(demo_copy / vector_files.VECTORS_FILE)
    vectors[:5] = np.nan
    np.save(demo_copy / vector_files.VECTORS_FILE, vectors)
    name = bands2vec.open_run(str(demo_copy)).vectors.names[7]
    # With its checkpoint, the run is answered from it, with a note; without, refused in one line.
    status, out, err = _main(capsys, "similar", name, "--json", "--logdir", str(demo_copy.parent))
    assert status == 0 and err.startswith("run.py: note: ") and "NaN or infinite values" in err, err
    assert "NaN" not in out and len(json.loads(out)[0]["results"]) == 10
    shutil.rmtree(demo_copy / "checkpoints")
    status, out, err = _main(capsys, "similar", name, "--json", "--logdir", str(demo_copy.parent))
    _one_line_refusal(status, err)
    assert ("vectors.npy: damaged (5 of its vectors with NaN or infinite values)" in err
            and out == "")


def test_a_vectors_npy_declaring_a_terabyte_is_read_as_damaged(capsys, demo_copy):
    """A 77 KB vectors.npy whose header declares (300, 10**9) was `out of memory; try a smaller
    --batch-size` for a question: it is damaged, read from the checkpoint with a note whose command
    exports this run."""
    run_dir = demo_copy.rename(demo_copy.parent / "my run;x")  # the command must name it, quoted
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (300, 10**9)})
    (run_dir / vector_files.VECTORS_FILE).write_bytes(header.getvalue() + bytes(300 * 64 * 4))
    logs = str(run_dir.parent)
    status, out, err = _main(capsys, "similar", "lune, marée", "--json", "--logdir", logs, "--run",
                             "my run;x")
    (note,) = err.splitlines()
    assert status == 0 and len(json.loads(out)[0]["results"]) == 10
    assert note.startswith(f"run.py: note: {run_dir / vector_files.VECTORS_FILE}: damaged (its "
                           f"header declares (300, 1000000000) float32, 1,200,000,000,000 bytes, "
                           f"where it holds 76,800); read the vectors from the checkpoint")
    assert note.endswith(f"(`python run.py export --logdir {logs} --run 'my run;x'` writes "
                         f"vectors.npy)")
    shutil.rmtree(run_dir / "checkpoints")
    status, out, err = _main(capsys, "similar", "lune, marée", "--json", "--logdir", logs, "--run",
                             "my run;x")
    _one_line_refusal(status, err)
    assert "where it holds 76,800), and no checkpoint to read instead" in err and out == ""


def test_an_unreadable_vectors_npy_is_named_so_not_damaged(capsys, demo_copy):
    """A vectors.npy that cannot be opened (another user's, a folder in its place) is not damaged:
    the note gives the system's reason."""
    path = demo_copy / vector_files.VECTORS_FILE
    path.unlink()
    path.mkdir()
    status, out, err = _main(capsys, "similar", "lune, marée", "-k", "2", "--logdir",
                             str(demo_copy.parent))
    (note,) = err.splitlines()
    assert status == 0 and len(answer_lines(out)) == 2, err
    assert note.startswith(f"run.py: note: {path}: unreadable (not a regular file); read the "
                           f"vectors from the ")
    assert "damaged" not in note


def test_a_metadata_tsv_of_gigabytes_is_one_line(capsys, demo_copy):
    """Followed by 3 GB of NULs (a sparse file), it took 34 s and 3 GB, then `out of memory; try a
    smaller --batch-size`; with more rows than the run's artists it was read whole too."""
    path = demo_copy / metadata.METADATA_FILE
    rows = path.read_text(encoding="utf-8")
    os.truncate(path, 3 * 2**30)
    status, out, err = _main(capsys, "similar", "lune, marée", "--logdir", str(demo_copy.parent))
    _one_line_refusal(status, err)
    assert err == (f"run.py: error: {path}: malformed metadata (a row longer than 1,048,576 "
                   f"characters, where a run writes a few hundred)\n") and out == ""
    path.write_text(rows + rows.split("\n", 1)[1] * 1000, encoding="utf-8")  # 300,300 artists' rows
    status, out, err = _main(capsys, "evaluate", "--logdir", str(demo_copy.parent))
    _one_line_refusal(status, err)
    assert err == (f"run.py: error: {path}: malformed metadata (more rows than the 300 artists "
                   f"run.json counts)\n")


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------

def test_evaluate_returns_a_documented_object(capsys, logs, demo_trained):
    opened = bands2vec.open_run(demo_trained)
    evaluation = opened.evaluate(k=5)
    assert isinstance(evaluation, bands2vec.Evaluation)
    report = evaluation.report
    assert report["k"] == 5 and report["artists"] == len(opened.vectors)
    assert report["genre"]["trained"] > report["genre"]["random"]
    clusters = evaluation.clusters
    assert sum(cluster.size for cluster in clusters) == len(opened.vectors)
    assert [cluster.size for cluster in clusters] == sorted((cluster.size for cluster in clusters),
                                                            reverse=True)
    biggest = clusters[0]
    members = np.flatnonzero(opened.vectors.kmeans_clusters == biggest.cluster)
    assert (len(members) == biggest.size
            and set(biggest.examples) <= {opened.vectors.names[i] for i in members})
    assert list(biggest.genres.values()) == sorted(biggest.genres.values(), reverse=True)

    status, out, _ = _main(capsys, "evaluate", "-k", "5", "--json", *logs)
    printed = json.loads(out)
    assert status == 0 and printed == json.loads(json.dumps(evaluation.as_dict()))
    assert printed["clusters"][0] == {"cluster": biggest.cluster, "size": biggest.size,
                                      "genres": biggest.genres, "mean_score": biggest.mean_score,
                                      "examples": biggest.examples}
    status, out, _ = _main(capsys, "evaluate", "-k", "5", *logs)
    assert f"{biggest.size:>5}  " in out and ", ".join(biggest.examples) in out


def _without_clusters(run_dir):
    """metadata.tsv with every k-means cluster -1, as ArtistVectors.save writes where there are
    none."""
    path = run_dir / metadata.METADATA_FILE
    rows = [row.split("\t") for row in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0][-1] == "cluster"
    path.write_text("\n".join("\t".join(row[:-1] + [row[-1] if i == 0 else "-1"])
                              for i, row in enumerate(rows)) + "\n", encoding="utf-8")


def test_evaluate_of_a_run_without_clusters_lists_none(capsys, demo_copy):
    """It was a TypeError traceback from the clusters' summary."""
    _without_clusters(demo_copy)
    evaluation = bands2vec.open_run(str(demo_copy)).evaluate(k=5)
    assert evaluation.clusters == [] and "cluster_genre_nmi" not in evaluation.report
    status, out, err = _main(capsys, "evaluate", "--json", "--logdir", str(demo_copy))
    assert status == 0 and json.loads(out)["clusters"] == [] and err == ""
    # Probe 15: in text, a KeyError traceback.
    status, out, err = _main(capsys, "evaluate", "--logdir", str(demo_copy))
    assert status == 0 and err == ""
    assert "NMI of k-means clusters with primary genre            -   (its metadata.tsv holds " \
           "no k-means clusters)" in out
    assert out.endswith("Clusters: none (its metadata.tsv holds no k-means clusters)\n")


@pytest.mark.slow  # t-SNE
def test_plot_of_a_run_without_clusters_clusters_it(demo_copy):
    """It was a TypeError after the t-SNE: the plot by cluster had none to colour by."""
    _without_clusters(demo_copy)
    said = []
    paths = bands2vec.open_run(str(demo_copy)).plot(say=said.append)
    assert (said[0].startswith("Clustering 300 artists into ")
            and all(map(os.path.isfile, paths.values())))


# ---------------------------------------------------------------------------------------------
# Which run answers
# ---------------------------------------------------------------------------------------------

def test_a_folder_no_run_can_be_named_is_not_the_latest_run(capsys, tmp_path, demo_trained):
    """A newer copy under a name that is not UTF-8 was the latest run, and refused: one `mkdir` in a
    shared log folder stopped every question there that named no run."""
    shutil.copytree(demo_trained, tmp_path / "ok")
    time.sleep(0.01)
    shutil.copytree(os.fsencode(demo_trained), os.path.join(os.fsencode(str(tmp_path)), b"bad\xff"))
    assert bands2vec.open_run(str(tmp_path)).folder == str(tmp_path / "ok")
    status, out, err = _main(capsys, "similar", "x", "--logdir", str(tmp_path))
    assert status == 2 and err.startswith("run.py: error: unknown artist 'x'"), err


def test_the_note_of_which_run_answers_is_one_line_whatever_run_json_says(capsys, tmp_path,
                                                                          demo_trained):
    """run.json's `data` went into the note as it was: a line break in it forged a line of
    run.py's."""
    for name in ("a", "b"):
        shutil.copytree(demo_trained, tmp_path / name)
    path = tmp_path / "b" / run_record.RUN_FILE
    path.write_text(path.read_text().replace('"data": "demo"',
                                             '"data": "demo\\nrun.py: error: forged"'))
    os.utime(path, (time.time() + 10,) * 2)  # the latest run
    name = bands2vec.open_run(demo_trained).vectors.names[0]
    status, out, err = _main(capsys, "similar", name, "-k", "1", "--logdir", str(tmp_path))
    (note,) = err.splitlines()
    assert status == 0 and note.endswith(
        "artists from demo\\u000arun.py: error: forged); --run NAME asks another")


def test_which_run_answers_is_said_where_there_are_several(capsys, tmp_path, demo_trained):
    logs = tmp_path / "logs"
    shutil.copytree(demo_trained, logs / "older")
    name = bands2vec.open_run(demo_trained).vectors.names[0]
    status, out, err = _main(capsys, "similar", name, "--logdir", str(logs))
    assert status == 0 and err == "" and out  # one run: nothing to say
    shutil.copytree(demo_trained, logs / "newer")
    os.utime(logs / "newer" / "run.json")  # the latest
    status, out, err = _main(capsys, "similar", name, "--logdir", str(logs))
    assert status == 0 and err == (f"run.py: note: answering from {logs / 'newer'}, the latest of "
                                   f"2 runs in {logs} (300 artists from the demo catalog); --run "
                                   f"NAME asks another\n")
    assert _main(capsys, "similar", name, "--logdir", str(logs), "--run", "older")[2] == ""


# ---------------------------------------------------------------------------------------------
# A resumed run's totals
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow  # training again
def test_a_resumed_run_says_the_runs_totals(capsys, demo_copy):
    before = bands2vec.open_run(str(demo_copy)).record.stats
    resumed = bands2vec.resume(str(demo_copy.parent), "r", steps=before.steps + 20, plots=False,
                               say=quiet)
    stats, batch = resumed.record.stats, resumed.options.batch_size
    assert stats.steps == before.steps + 20 and stats.pairs == stats.steps * batch
    assert (stats.part_from == before.steps
            and stats.seconds == pytest.approx(before.seconds + stats.part_seconds))
    run._say_summary(resumed, str(demo_copy.parent))
    out = capsys.readouterr().out
    assert f"Pairs seen:  {stats.pairs:,} in {stats.steps:,} steps (" in out
    assert f"of which {20 * batch:,} in the 20 steps from step {before.steps:,} just trained" in out


@pytest.mark.slow  # training again
@pytest.mark.parametrize("when", ["before the summary", "as the run is read",
                                  "as the library returns"])
def test_a_stop_that_comes_as_a_run_ends_is_said_not_swallowed(capsys, demo_copy, monkeypatch,
                                                               when):
    """SIGTERM as a run closed its side process was held, then dropped: exit 0 and nothing said.
    Probe 17: one as the library read the finished run said `interrupted before the run went on: it
    is as it was` (or `nothing was written`), status 130; so did one as the library returned."""
    def stopped_meanwhile(original):
        def call(*args):
            if when == "before the summary":
                os.kill(os.getpid(), signal.SIGTERM)  # held: the summary is printed whole
            done = original(*args)
            if when != "before the summary":
                os.kill(os.getpid(), signal.SIGTERM)
            return done
        return call

    steps = str(bands2vec.open_run(str(demo_copy)).record.stats.steps + 10)
    if when == "as the run is read":  # the library's Run of the finished run
        monkeypatch.setattr(bands2vec.Run, "__init__", stopped_meanwhile(bands2vec.Run.__init__))
    elif when == "as the library returns":  # the last few steps before run.py has the Run
        monkeypatch.setattr(bands2vec, "_run", stopped_meanwhile(bands2vec._run))
    else:
        monkeypatch.setattr(run, "_say_summary", stopped_meanwhile(run._say_summary))
    status = run.main(["--resume", "--logdir", str(demo_copy.parent), "--run", "r", "--steps",
                       steps, "--no-plots"])
    said = capsys.readouterr()
    assert status == 0 and "Next:" in said.out
    assert said.err == (f"run.py: note: {demo_copy}: a stop came as the run ended, with nothing "
                        f"left to stop; it is complete\n")


# ---------------------------------------------------------------------------------------------
# As processes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", [["similar", "!?!"], ["similar", "!?!", "--json"], ["--version"],
                                 ["query", "--help"]],
                         ids=["text", "json", "version", "help"])
@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered", "buffered"])
def test_a_full_standard_output_is_named(demo_trained, how, unbuffered):
    """It said `a file: No space left on device; ... or use another --logdir`; --version and --help
    (probe 15) printed nothing and exited 0; with stdout buffered (no PYTHONUNBUFFERED), Python's
    flush at exit printed `Exception ignored in: <_io.TextIOWrapper name='<stdout>' ...>` and exited
    120."""
    with open("/dev/full", "w", buffering=1) as full:  # as stderr is, a line at a time
        result = subprocess.run(cli_command(*how, "--logdir", str(demo_trained)), stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=600,
                                env=dict(os.environ, PYTHONUNBUFFERED=unbuffered))
    assert_refused(result, "run.py: error: standard output: No space left on device; the output "
                           "could not all be written: send it to a file on a disk with room, or to "
                           "a pipe")


@pytest.mark.slow
def test_the_command_line_as_processes(demo_trained):
    logs = ["--logdir", os.path.dirname(demo_trained)]
    assert run_cli("--version").stdout == f"Bands2Vec {bands2vec.__version__}\n"
    assert_refused(run_cli("simlar", "burial", *logs),
                   "unknown command 'simlar'; did you mean 'similar'?")
    # A closed stdin (the shell's <&-), and bytes that are not UTF-8 on a real one.
    closed = subprocess.run([sys.executable, RUN_PY, "similar", "-", *logs],
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0),
                            capture_output=True, text=True, timeout=600)
    assert_refused(closed, "- reads the questions from stdin, which is closed")
    result = subprocess.run([sys.executable, RUN_PY, "similar", "-", "--json", *logs],
                            input=b"\xff\xfe\n", capture_output=True, timeout=600)
    assert result.returncode == 2
    assert json.loads(result.stdout.decode("utf-8"))[0]["question"] == "\ufffd\ufffd"
    assert run_cli("query", "", "--json", *logs).stdout == "[]\n"


@pytest.mark.slow  # trains
def test_a_training_run_outlives_the_reader_of_its_output(tmp_path):
    """`python run.py | head -1`: the run died at its second line, before its folder was made, with
    exit status 1 and nothing said."""
    process = subprocess.Popen(cli_command("--data", "demo", "--steps", "400", "--no-plots",
                                           "--logdir", str(tmp_path), "--run", "r"),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdout.readline()
        process.stdout.close()  # as `head -1` does
        err = process.stderr.read().decode()
        assert process.wait(timeout=300) == 0, err
    finally:
        process.kill()
        process.wait()
    assert err == ("run.py: note: the reader of the output has gone; the run goes on without "
                   "showing its lines\n")
    record = run_record.read(str(tmp_path / "r"))
    assert (record.state, record.stats.steps) == ("finished", 400)


def test_a_question_whose_reader_has_gone_ends_quietly(demo_trained):
    """A question's answer is all it does: with its reader gone there is nothing left to do."""
    process = subprocess.Popen(cli_command("similar", "-", "-k", "200", "--logdir",
                                           str(demo_trained)),
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    names = bands2vec.open_run(str(demo_trained)).vectors.names
    process.stdout.close()
    _, err = process.communicate(input="\n".join(names).encode(), timeout=120)
    assert (process.returncode, err) == (1, b"")
