"""Hostile ground for a run: unusable log folders and a full disk, damaged runs and questions to
them, a signal in each phase, kill -9, two writers and planted locks, each as whole processes. Every
case keeps the promise (helpers.assert_promise): exit 0, 2 or 130, no traceback, a refusal in at
most two lines, every run folder left with a run.json telling its state and no temporary file. The
full-disk and read-only cases mount a small tmpfs (root on Linux), and are skipped where that is
refused. Bad data, options and TF_CONFIG: test_hostile_inputs.py.

    python -m pytest tests/test_hostile_runs.py
"""
import io
import json
import os
import shutil
import shlex
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import bands2vec
import expressions
import metadata
import plots
import run_folder
import run_record
import tensorboard_files
import vector_files
from helpers import (CHECKPOINT_SECONDS, METADATA_HEADER, REPO, answer_lines, assert_promise,
                     assert_refused, free_ports, has_open, quiet, run_cli, run_state, signalled)

# Each case is whole processes: the end-to-end tier.
pytestmark = pytest.mark.slow


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size): a new folder on a tmpfs of that size, unmounted afterwards; the test is skipped
    where mounting is refused (it takes root)."""
    mounted = []

    def mount(size):
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        try:
            refused = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                      str(folder)],
                                     capture_output=True).returncode
        except OSError:  # no mount command
            refused = True
        if refused:
            pytest.skip("mounting a tmpfs was refused here")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)



# ---------------------------------------------------------------------------------------------
# Log directories and disks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    ("a-file", "a-file: log directory is a file, not a folder (File exists); "
               "choose another --logdir"),
    ("", "--logdir is empty"),
    ("a-file/logs", "a-file/logs: log directory cannot be made (Not a directory); "
                    "choose another --logdir"),
], ids=["logdir is a file", "empty logdir", "under a file"])
def test_unusable_log_directory(tmp_path, bad, message):
    (tmp_path / "a-file").write_text("")
    logs = str(tmp_path / bad) if bad else bad
    assert_promise(run_cli("--data", "demo", "--logdir", logs), logs, 2, "log", message, lines=1)


def test_run_exists_without_overwrite(demo_copy):
    logs = demo_copy.parent
    result = run_cli("--data", "demo", "--run", "r", "--logdir", str(logs))
    runs = assert_promise(result, logs, 2, f"{demo_copy} already exists: pass --overwrite", lines=1)
    assert runs["r"].state == "finished"


def test_a_read_only_folder(tmpfs, demo_run):
    """A read-only log directory, and a run in one: plot, export and --resume refused, questions
    answered."""
    mount = tmpfs("1m")
    shutil.copytree(demo_run, mount / "r", ignore=shutil.ignore_patterns("*.png", "events.*"))
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    for args in (["plot"], ["export"], ["--resume", "--steps", "400"]):
        result = run_cli(*args, "--logdir", str(mount), "--run", "r")
        assert_refused(result, "Read-only file system")
        assert_promise(result, mount, 2,
                       f"{mount / 'r'}: cannot be written (Read-only file system)")
    result = run_cli("--data", "demo", "--logdir", str(mount))
    assert_refused(result, "log directory is not writable (Read-only file system)")
    assert_promise(result, mount, 2)
    assert run_cli("similar", "!?!", "--logdir", str(mount)).returncode == 0


def test_resume_into_checkpoints_it_cannot_write_is_refused_before_training(tmpfs, demo_copy):
    """It trained first and failed at its first checkpoint, the training lost."""
    checkpoints = demo_copy / "checkpoints"
    saved = demo_copy.parent.parent / "saved-checkpoints"
    shutil.move(checkpoints, saved)
    checkpoints.mkdir()
    mount = tmpfs("1m")
    subprocess.run(["mount", "--bind", str(mount), str(checkpoints)], check=True)
    try:
        shutil.copytree(saved, checkpoints, dirs_exist_ok=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(checkpoints)], check=True)
        result = run_cli("--resume", "--steps", "400", "--logdir", str(demo_copy.parent),
                         "--run", "r")
        assert_refused(result, f"{checkpoints}: cannot be written (Read-only file system), "
                               f"so --resume could not save what it trains; "
                               f"check who may write there")
        assert "Training" not in result.stdout
        assert assert_promise(result, demo_copy.parent, 2)["r"].stats.steps == 300
    finally:
        subprocess.run(["umount", "-l", str(checkpoints)], capture_output=True)


@pytest.mark.parametrize("size, data, message, left", [
    # Not even the checkpoint fits: nothing is left.
    ("300k", "demo", "cannot write the checkpoint (", None),
    # The plots do not fit.
    ("1m", "demo", "No space left on device; free some space there, or use another --logdir",
     "incomplete"),
    # The exports of 8,630 artists do not fit. (Its first line says "a file: 557568 requested and
    # 124896 written", numpy's word for it, without the path or the reason.)
    ("8m", "full_data", "is usable, without its exports", "incomplete"),
], ids=["300k", "1m", "8m, full data"])
def test_a_full_disk(tmpfs, request, size, data, message, left):
    mount = tmpfs(size)
    data = request.getfixturevalue(data) if data == "full_data" else data
    steps = ["--steps", "100"] if size != "1m" else []  # fewer steps, the same files
    result = run_cli("--data", data, "--logdir", str(mount), "--run", "r", *steps)
    runs = assert_promise(result, mount, 2, message)
    if left is None:
        assert_refused(result,
                       "No space left on device); free some space there, or use another --logdir",
                       f"{mount / 'r'} is removed: it had no checkpoint, so nothing was kept",
                       lines=2)
        assert runs == {}
    else:
        assert len(result.stderr.strip().splitlines()) == 2
        state, missing, command = run_state(mount / "r")
        assert state == left and missing and command in result.stderr


def _fill(mount, leave):
    """Fill the tmpfs `mount` but for about `leave` bytes, with a file beside its logs."""
    stats = os.statvfs(mount)
    with open(mount / "filler", "wb") as f:
        os.posix_fallocate(f.fileno(), 0, stats.f_bavail * stats.f_frsize - leave)


def test_a_new_run_with_150k_free(tmpfs):
    mount = tmpfs("2m")
    _fill(mount, 150_000)
    logs = mount / "logs"
    result = run_cli("--data", "demo", "--logdir", str(logs), "--run", "r", "--steps", "50",
                     "--no-plots")
    assert_refused(result, f"{logs / 'r'}", "No space left on device", "free some space there",
                   f"{logs / 'r'} is removed: it had no checkpoint", lines=2)
    assert assert_promise(result, logs, 2) == {}


def test_a_disk_with_no_room_at_all_is_named(tmpfs, demo_trained):
    """The lock's first write failed first, and every command said
    `a file: No space left on device`."""
    mount = tmpfs("2m")
    logs = mount / "logs"
    shutil.copytree(demo_trained, logs / "r",
                    ignore=shutil.ignore_patterns("events.*", "vectors.t*"))
    _fill(mount, 0)
    for command, run in ((["--data", "demo"], "new"), (["export"], "r"),
                         (["--resume", "--steps", "400"], "r")):
        result = run_cli(*command, "--logdir", str(logs), "--run", run)
        assert_refused(result, f"run.py: error: {logs / f'.{run}.lock'}: No space left on device; "
                               f"free some space")
        assert_promise(result, logs, 2)


def test_resume_with_150k_free_leaves_the_run_as_it_was(tmpfs, demo_trained):
    mount = tmpfs("2m")
    logs = mount / "logs"
    shutil.copytree(demo_trained, logs / "r",
                    ignore=shutil.ignore_patterns("events.*", "vectors.t*"))
    before = (logs / "r" / run_record.RUN_FILE).read_text()
    _fill(mount, 150_000)
    result = run_cli("--resume", "--logdir", str(logs), "--run", "r", "--steps", "400",
                     "--no-plots")
    assert_refused(result, f"{logs / 'r'}", "No space left on device", "free some space there",
                   "keeps its checkpoint at step 300", lines=2)
    assert_promise(result, logs, 2)
    # finished at step 300, as it was
    assert (logs / "r" / run_record.RUN_FILE).read_text() == before


@pytest.mark.parametrize("command, path", [("export", vector_files.VECTORS_FILE), ("plot", "tsne")])
def test_a_full_disk_names_the_file_it_could_not_write(tmpfs, demo_run, command, path):
    mount = tmpfs("2m")
    logs = mount / "logs"
    shutil.copytree(demo_run, logs / "r",
                    ignore=shutil.ignore_patterns("events.*", "*.png", "vectors.t*"))
    _fill(mount, 20_000)
    result = run_cli(command, "--logdir", str(logs), "--run", "r")
    assert_refused(result, f"{logs / 'r' / path}", "No space left on device; free some space there")
    assert assert_promise(result, logs, 2)["r"].state == "finished"


# ---------------------------------------------------------------------------------------------
# Damaged runs, and questions
# ---------------------------------------------------------------------------------------------

def test_an_unknown_artist_among_questions(demo_run):
    logs = os.path.dirname(demo_run)
    result = run_cli("similar", "-", "-k", "2", "--logdir", logs,
                     stdin="lune, marée\nno such band\n!?!\n")
    assert_promise(result, logs, 2, "run.py: error: unknown artist 'no such band'", lines=1)
    blocks = result.stdout.strip().split("\n\n")  # the others are answered
    assert [block.splitlines()[0] for block in blocks] == ["Nearest to lune, marée:",
                                                           "Nearest to !?!:"]
    assert all(len(answer_lines(block)) == 2 for block in blocks)


def test_a_question_with_a_line_break_is_headed_on_one_line(demo_run):
    """Probe 15: its header was two lines, the second a line of its own that read as an answer's."""
    logs = os.path.dirname(demo_run)
    result = run_cli("query", "-k", "2", "--logdir", logs, "lune, marée\n+ !?!", "!?!")
    assert_promise(result, logs, 0)
    assert result.stdout.splitlines()[0] == "Nearest to lune, marée\\u000a+ !?!:"


@pytest.mark.parametrize("args, message", [
    (["query", "!?! - !?!"], "the question cancels out to the zero vector"),
    (["similar", "lune, marée", "-k", "0"], "-k must be at least 1"),
    (["similar", "lune, marée", "--run", "nope"], "nope: no such run"),
    (["plot", "--clusters", "0"], "--clusters must be at least 1"),
], ids=["an artist minus itself", "k of 0", "no such run", "plot into 0 clusters"])
def test_bad_questions(demo_run, args, message):
    logs = os.path.dirname(demo_run)
    assert_promise(run_cli(*args, "--logdir", logs), logs, 2, message, lines=1)


@pytest.mark.parametrize("command, length, message", [
    ("query", 1_000_000,
     "an expression of 1,000,000 characters is longer than any of 1,000 artists here"),
    ("similar", 1_000_000, "unknown artist 'xxxxxxxx"),
    ("query", 20_000_000,
     "a line of stdin is longer than 1,048,576 bytes; each line is one question"),
    ("similar", 20_000_000,
     "a line of stdin is longer than 1,048,576 bytes; each line is one question"),
])
def test_a_question_longer_than_any_is_refused_at_once(demo_trained, command, length, message):
    """One of 20 million characters took 4.7 s and 900 MB, compared with every artist's name for the
    close ones. Now a question longer than any answer is refused unread, and a line of stdin past
    1 MiB as it is read (an endless one filled the memory)."""
    logs = os.path.dirname(demo_trained)
    result = run_cli(command, "-", "--logdir", logs, stdin="x" * length + "\n", timeout=60)
    assert_promise(result, logs, 2, message, lines=1)
    assert "did you mean" not in result.stderr and len(result.stderr) < 300


def test_a_damaged_newest_run_is_skipped_by_questions_naming_it(demo_copy):
    logs = demo_copy.parent
    shutil.copytree(demo_copy, logs / "newer")
    (logs / "newer" / run_record.RUN_FILE).write_text("{not json")
    os.utime(logs / "newer" / run_record.RUN_FILE, (time.time() + 10,) * 2)
    result = run_cli("similar", "lune, marée", "-k", "2", "--logdir", str(logs))
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 2, result.stderr
    assert result.stderr.startswith(f"run.py: note: skipped {logs / 'newer'}: unreadable run.json "
                                    f"(not JSON: ")
    assert f"; answering from {demo_copy}, the newest run that can answer\n" in result.stderr


def test_a_query_of_every_artist_says_none_is_left(demo_run, demo_catalog):
    """Probe 16: in text it printed nothing at all, with exit status 0."""
    logs = os.path.dirname(demo_run)
    everyone = " + ".join("'" + name.replace("'", "''") + "'" for name in demo_catalog.names)
    result = run_cli("query", everyone, "--logdir", logs)
    assert_promise(result, logs, 0)
    assert (result.stdout == ""
            and result.stderr.endswith(": no artist is left to answer, as it names every one\n"))
    assert (json.loads(run_cli("query", everyone, "--json", "--logdir", logs).stdout)[0]["results"]
            == [])


def test_k_of_a_billion(demo_run, demo_catalog):
    logs = os.path.dirname(demo_run)
    result = run_cli("similar", "!?!", "-k", "1000000000", "--logdir", logs)
    assert_promise(result, logs, 0)
    assert len(answer_lines(result.stdout)) == len(demo_catalog) - 1  # every other artist


def test_questions_without_a_run(tmp_path):
    result = run_cli("similar", "coil", "--logdir", str(tmp_path / "logs"))
    assert_promise(result, tmp_path / "logs", 2, "no trained run found; train one with", lines=1)


def _damage_checkpoint(run_dir, how):
    checkpoints = run_dir / run_folder.CHECKPOINT_DIR
    for name in os.listdir(checkpoints):
        if (how == "garbage" and name.startswith("model.ckpt")
                and name.endswith((".index", ".data-00000-of-00001"))):
            (checkpoints / name).write_bytes(b"\x00garbage" * 10)
        elif how == "truncated" and name.endswith(".data-00000-of-00001"):
            with open(checkpoints / name, "r+b") as f:
                f.truncate(100)


@pytest.mark.parametrize("command, how", [(["similar", "lune, marée"], "garbage"),
                                          (["evaluate"], "garbage"), (["evaluate"], "truncated")])
def test_corrupt_checkpoint(demo_copy, command, how):
    _damage_checkpoint(demo_copy, how)
    result = run_cli(*command, "--logdir", str(demo_copy.parent))
    assert result.returncode == 0 and not result.stderr, result.stderr
    with open(demo_copy / vector_files.VECTORS_FILE, "r+b") as f:
        f.truncate(1000)  # a truncated copy as well: nothing whole is left
    result = run_cli(*command, "--logdir", str(demo_copy.parent))
    assert_refused(result, "unreadable checkpoint")
    assert_promise(result, demo_copy.parent, 2)


def test_damaged_vectors_are_read_from_the_checkpoint(demo_copy):
    with open(demo_copy / vector_files.VECTORS_FILE, "r+b") as f:
        f.truncate(1000)
    result = run_cli("similar", "lune, marée", "-k", "3", "--logdir", str(demo_copy.parent))
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 3
    (note,) = result.stderr.splitlines()
    assert (note.startswith("run.py: note: ") and "vectors.npy: damaged" in note
            and "checkpoint" in note)
    assert_promise(result, demo_copy.parent, 0)


# Root reads any file: without these capabilities it meets permissions as other users do.
WITHOUT_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                    "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unreadable_vectors_npy_is_named_so_with_the_command_that_exports_this_run(demo_copy):
    """It was `damaged (Permission denied)`, and the note's `python run.py export` would export
    another run."""
    path = demo_copy / vector_files.VECTORS_FILE
    path.chmod(0)
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("root reads any file, and setpriv, to read as another user would, is not here")
    logs = str(demo_copy.parent)
    result = run_cli("similar", "lune, marée", "-k", "3", "--logdir", logs, "--run", "r",
                     prefix=prefix)
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 3, result.stderr
    (note,) = result.stderr.splitlines()
    assert note.startswith(f"run.py: note: {path}: unreadable (Permission denied); read the "
                           f"vectors from the ")
    assert note.endswith(
        f"(`{shlex.join(['python', 'run.py', 'export', '--logdir', logs, '--run', 'r'])}` "
        f"writes vectors.npy)")
    assert_promise(result, demo_copy.parent, 0)


def test_a_run_folder_this_user_cannot_open_is_named_so(demo_copy):
    """It was `no trained run there (no run.json); train it with ...`, and the training then
    refused."""
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("root opens any folder, and setpriv, to open as another user would, "
                    "is not here")
    demo_copy.chmod(0)
    try:
        result = run_cli("similar", "lune, marée", "--logdir", str(demo_copy.parent), "--run", "r",
                         prefix=prefix)
    finally:
        demo_copy.chmod(0o755)
    assert_refused(result, f"run.py: error: {demo_copy}: a folder this user cannot open "
                           f"(Permission denied; it is uid {os.geteuid()}'s), so no run.json can "
                           f"be read there; ask its owner")


def test_overwrite_of_a_run_holding_another_users_folder_leaves_the_run_whole(demo_copy):
    """Probe 16: in a run others could write in, another user's folder made --overwrite remove half
    the run (its events, tsne.npz), then fail naming `f`."""
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("root removes any file, and setpriv, to remove as another user would, "
                    "is not here")
    theirs = demo_copy / "junk"
    theirs.mkdir()
    (theirs / "f").write_text("x")
    os.chown(theirs / "f", 65534, 65534)
    os.chown(theirs, 65534, 65534)
    before = sorted(os.listdir(demo_copy))
    result = run_cli("--data", "demo", "--logdir", str(demo_copy.parent), "--run", "r",
                     "--overwrite", "--steps", "30", "--no-plots", prefix=prefix)
    assert_refused(result, f"run.py: error: {theirs}: --overwrite cannot remove what it holds "
                           f"(Permission denied; it is uid 65534's), so the run is left as it was; "
                           f"ask its owner to remove it")
    assert sorted(os.listdir(demo_copy)) == before


def test_overwrite_of_a_run_with_a_folder_it_cannot_write_leaves_the_run_whole(demo_copy):
    """Probe 16: with its checkpoints/ made read-only, --overwrite removed run.json and
    metadata.tsv, then failed; every advice after failed in a loop."""
    prefix = WITHOUT_OVERRIDE if os.geteuid() == 0 else []
    if prefix and not shutil.which("setpriv"):
        pytest.skip("root removes any file, and setpriv, to remove as another user would, "
                    "is not here")
    checkpoints = demo_copy / "checkpoints"
    before = sorted(os.listdir(demo_copy))
    checkpoints.chmod(0o555)
    try:
        result = run_cli("--data", "demo", "--logdir", str(demo_copy.parent), "--run", "r",
                         "--overwrite", "--steps", "30", "--no-plots", prefix=prefix)
    finally:
        checkpoints.chmod(0o755)
    assert_refused(result, f"run.py: error: {checkpoints}: --overwrite cannot remove what it holds "
                           f"(Permission denied; it is uid {os.geteuid()}'s), so the run is left "
                           f"as it was; give yourself leave to write in it (chmod u+rwx)")
    assert sorted(os.listdir(demo_copy)) == before


def test_a_folder_at_vectors_npy_is_answered_with_advice_that_works_when_followed(demo_copy):
    """The note said `export` writes vectors.npy, but export refuses to replace a folder."""
    path = demo_copy / vector_files.VECTORS_FILE
    vectors = np.load(path)
    path.unlink()
    path.mkdir()
    logs = str(demo_copy.parent)
    export = shlex.join(["python", "run.py", "export", "--logdir", logs, "--run", "r"])
    result = run_cli("similar", "lune, marée", "-k", "3", "--logdir", logs, "--run", "r")
    assert result.returncode == 0 and len(answer_lines(result.stdout)) == 3, result.stderr
    (note,) = result.stderr.splitlines()
    assert note.endswith(f"(once what is at {path} is removed, `{export}` writes vectors.npy)")
    path.rmdir()
    result = run_cli(*shlex.split(export)[2:])
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(path), vectors)


def test_a_question_out_of_memory_is_not_told_to_train_smaller(demo_copy):
    """`out of memory; try a smaller --batch-size or --embedding-size` is advice for training; a
    question that runs out of memory reading a run (here 300 vectors of 500,000 dimensions, 600 MB,
    under `ulimit -v` 1.2 GB) is told what happened."""
    record = json.loads((demo_copy / run_record.RUN_FILE).read_text())
    record["options"]["embedding_size"] = columns = 500_000
    (demo_copy / run_record.RUN_FILE).write_text(json.dumps(record))
    path = demo_copy / vector_files.VECTORS_FILE
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (300, columns)})
    header = path.stat().st_size
    os.truncate(path, header + 300 * columns * 4)  # sparse: it takes no disk
    with open(path, "r+b") as f:  # one value that is not 0: vectors all the same are damage
        f.seek(header)
        f.write(np.float32(1).tobytes())
    shutil.rmtree(demo_copy / run_folder.CHECKPOINT_DIR)
    result = run_cli("similar", "lune, marée", "--logdir", str(demo_copy.parent),
                     memory_limit=1200 * 2**20)
    assert_promise(result, demo_copy.parent, 2, "run.py: error: out of memory reading the run\n",
                   lines=1)


def test_plot_recomputes_a_tsne_cache_that_would_not_fit_in_memory(demo_copy):
    """A tsne.npz member declaring a terabyte was `out of memory` for `plot`, every time."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    with zipfile.ZipFile(demo_copy / plots.TSNE_CACHE, "w") as archive:
        archive.writestr("key.npy", header.getvalue() + bytes(64))
        archive.writestr("coordinates.npy", b"")
    result = run_cli("plot", "--logdir", str(demo_copy.parent), "--run", "r")
    assert_promise(result, demo_copy.parent, 0)
    assert all((demo_copy / name).stat().st_size > 20_000 for name in plots.PLOTS.values())
    vectors = bands2vec.open_run(str(demo_copy)).vectors
    assert plots.cached_coordinates(str(demo_copy),
                                    plots.map_artists(vectors).unit_vectors) is not None


def test_resume_from_a_truncated_checkpoint(demo_copy):
    _damage_checkpoint(demo_copy, "truncated")
    result = run_cli("--resume", "--run", "r", "--steps", "400", "--logdir", str(demo_copy.parent))
    runs = assert_promise(result, demo_copy.parent, 2, "unreadable checkpoint",
                          "the run cannot continue from it: train it anew with --overwrite",
                          lines=1)
    assert runs["r"].state == "finished" and runs["r"].stats.steps == 300  # as it was


@pytest.mark.parametrize("part, planted", [("checkpoint", "fifo"), (".index", "fifo"),
                                          (".data-00000-of-00001", "fifo"),
                                          ("checkpoint", "/dev/zero")])
def test_a_fifo_or_a_device_in_the_checkpoints_is_refused_not_waited_on(demo_copy, part, planted):
    checkpoints = demo_copy / run_folder.CHECKPOINT_DIR
    path = checkpoints / (part if part == "checkpoint" else f"model.ckpt-300{part}")
    path.unlink()
    os.mkfifo(path) if planted == "fifo" else os.symlink(planted, path)
    result = run_cli("--resume", "--run", "r", "--steps", "400", "--no-plots", "--logdir",
                     str(demo_copy.parent), timeout=120)
    runs = assert_promise(result, demo_copy.parent, 2, f"{path}: not a regular file", lines=1)
    assert runs["r"].state == "finished" and runs["r"].stats.steps == 300  # as it was


@pytest.mark.parametrize("megabytes", [1200, 2000, 2500])
def test_a_memory_limit_tensorflow_does_not_fit_in_is_one_line(tmp_path, megabytes):
    """`ulimit -v 1200000`: TensorFlow's libraries cannot be mapped, and its ImportError was a
    43-line traceback. Probe 16: at 2 GB and 2.5 GB TensorFlow's C++ aborted, creating a thread
    (exit 134 or 127), and left run.json saying `training`."""
    logs = tmp_path / "logs"
    result = run_cli("--data", "demo", "--steps", "50", "--logdir", str(logs), "--run", "r",
                     memory_limit=megabytes * 1024 ** 2)
    assert_promise(result, logs, 2, f"run.py: error: the memory limit (`ulimit -v`) is "
                                    f"{megabytes:,} MB, and training with TensorFlow takes about "
                                    f"2.5 GB of address space: raise it",
                   lines=1)
    assert not (logs / "r").exists()


def test_an_hparams_config_the_run_cannot_replace_leaves_the_run_whole(demo_copy):
    """In a shared log folder the log folder's hparams config is whoever trained first's: a run
    trained, then said `.events.out.tfevents.hparams.3c5af715: Operation not permitted` and was left
    incomplete, its advice failing the same way."""
    logs = demo_copy.parent
    os.mkdir(logs / tensorboard_files.EXPERIMENT_FILE)  # no file can replace it, as another user's
    result = run_cli("--resume", "--run", "r", "--steps", "350", "--no-plots", "--logdir",
                     str(logs), timeout=300)
    runs = assert_promise(result, logs, 0,
                          f"run.py: note: {logs / tensorboard_files.EXPERIMENT_FILE}: not replaced")
    assert runs["r"].state == "finished" and runs["r"].stats.steps == 350


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user takes root")
def test_another_users_hparams_config_is_left_as_it_is(demo_copy):
    """In a shared log folder that is not sticky, a run replaced another user's hparams config: a
    file outside the run's folder, and not the user's."""
    config = demo_copy.parent / tensorboard_files.EXPERIMENT_FILE
    config.write_bytes(b"theirs")
    os.chown(config, 65534, 65534)
    with pytest.warns(UserWarning, match=f"^{config}: not replaced "
                                         f"\\(another user's file \\(uid 65534\\)\\)"):
        run = bands2vec.resume(str(demo_copy.parent), "r", steps=350, plots=False, say=quiet)
    assert (run.record.state == "finished" and config.read_bytes() == b"theirs"
            and config.stat().st_uid == 65534)


def test_a_file_size_limit_is_one_line_and_loses_no_training(tmp_path, demo_copy):
    logs = tmp_path / "new"
    result = run_cli("--data", "demo", "--no-plots", "--steps", "100", "--logdir", str(logs),
                     "--run", "n", file_limit=40 * 1024, timeout=300)
    assert_promise(result, logs, 2, "File too large", "`ulimit -f`",
                   "is removed: it had no checkpoint")
    result = run_cli("--resume", "--steps", "350", "--no-plots", "--logdir", str(demo_copy.parent),
                     "--run", "r", file_limit=60 * 1024, timeout=300)
    runs = assert_promise(result, demo_copy.parent, 2, "File too large",
                          "keeps its checkpoint at step ")
    assert (f"{demo_copy}/checkpoints" in result.stderr
            and "/proc/" not in result.stderr)  # its own path
    # Trained on, it says where it stands (or, failing before its first new checkpoint, as it was).
    assert ((runs["r"].state, runs["r"].stats.steps)
            in {("interrupted", 350), ("finished", 300)}), runs["r"]


@pytest.mark.parametrize("command, limit, path", [("export", 20 * 1024, "vectors.npy"),
                                                  ("plot", 60 * 1024, "tsne_top300.png")])
def test_a_file_size_limit_on_export_and_plot_is_named(demo_copy, command, limit, path):
    """numpy's short write was `19200 requested and 5088 written`; a plot's `File too large`,
    without advice."""
    result = run_cli(command, "--logdir", str(demo_copy.parent), "--run", "r", file_limit=limit,
                     timeout=300)
    runs = assert_promise(result, demo_copy.parent, 2, f"{demo_copy / path}: File too large; ",
                          "the shell's `ulimit -f`", lines=1)
    assert runs["r"].state == "finished"


def test_overwrite_replaces_a_run_never_a_folder_that_is_not_one(tmp_path):
    logs = tmp_path / "logs"
    (logs / "important").mkdir(parents=True)
    (logs / "important" / "notes.txt").write_text("mine")
    (logs / "a-file").write_text("mine too")
    (logs / "empty").mkdir()
    (logs / "an-app").mkdir()
    (logs / "an-app" / "run.json").write_text("{}")  # a file of that name, not a run's
    for name in ("important", "a-file", "an-app"):
        result = run_cli("--data", "demo", "--steps", "50", "--no-plots", "--logdir", str(logs),
                         "--run", name, "--overwrite")
        assert_refused(result, f"{logs / name} is not a run (it has no run.json of one): "
                               f"--overwrite replaces only a run")
    assert ((logs / "important" / "notes.txt").read_text() == "mine"
            and (logs / "a-file").read_text() == "mine too")
    result = run_cli("--data", "demo", "--steps", "50", "--no-plots", "--logdir", str(logs),
                     "--run", "empty", "--overwrite")
    assert result.returncode == 0 and run_state(logs / "empty")[0] == "finished", result.stderr


def test_a_run_json_that_does_not_fit_the_checkpoint_is_named(demo_copy):
    _edit_json(demo_copy, lambda fields: fields["options"].update(ensemble=3))
    result = run_cli("--resume", "--run", "r", "--steps", "400", "--logdir", str(demo_copy.parent))
    runs = assert_promise(result, demo_copy.parent, 2, f"{demo_copy / run_record.RUN_FILE}: its "
                          f"options do not fit the run's checkpoint "
                          f"(it holds no member_1/embeddings/embeddings)", lines=1)
    assert "--overwrite" not in result.stderr
    assert runs["r"].stats.steps == 300 and runs["r"].options.ensemble == 3  # as it was


def _edit_json(run_dir, edit):
    with open(run_dir / run_record.RUN_FILE, encoding="utf-8") as f:
        fields = json.load(f)
    edit(fields)
    (run_dir / run_record.RUN_FILE).write_text(json.dumps(fields))


def _nan_vectors_alone(run_dir):
    vectors = np.load(run_dir / vector_files.VECTORS_FILE)
    vectors[[3, 7]] = np.nan
    np.save(run_dir / vector_files.VECTORS_FILE, vectors)
    shutil.rmtree(run_dir / run_folder.CHECKPOINT_DIR)


def _metadata_value(column, value):
    """A damage: line 3 of metadata.tsv given `value` in `column`."""
    def damage(run_dir):
        path = run_dir / metadata.METADATA_FILE
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        rows[2][METADATA_HEADER.index(column)] = value
        path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return damage


def _fifo_metadata(run_dir):
    (run_dir / metadata.METADATA_FILE).unlink()
    os.mkfifo(run_dir / metadata.METADATA_FILE)


TERMS = " + ".join(["lune, marée", "!?!"] * expressions.MAX_TERMS)


@pytest.mark.parametrize("damage, args, message", [
    (lambda run_dir: _edit_json(run_dir, lambda fields: fields["options"].update(mood_share=0.3)),
     ["similar", "!?!"],
     "unreadable run.json (options: unknown field 'mood_share', not one this version writes)"),
    (lambda run_dir: _edit_json(run_dir, lambda fields: fields.pop("stats")), ["evaluate"],
     "unreadable run.json (no 'stats')"),
    (lambda run_dir: _edit_json(run_dir, lambda fields: fields.update(version=3)), ["export"],
     "unreadable run.json (version 3, from a newer Bands2Vec than this one"),
    (_metadata_value("score_bucket", "9" * 20), ["similar", "!?!"],
     "metadata.tsv: malformed metadata (line 3: score_bucket is '99999999999999999999', too big)"),
    # Probe 16's smaller faults: they were read as they were.
    (_metadata_value("score_bucket", "11"), ["similar", "!?!"],
     "metadata.tsv: malformed metadata (line 3: score_bucket is '11', outside 0 to 10)"),
    (_metadata_value("reviews", "-3"), ["evaluate"],
     "metadata.tsv: malformed metadata (line 3: reviews is '-3', outside 1 to 1e+09)"),
    # Probe 17: questions answered for the planted row, and the artist it named could not be asked.
    (_metadata_value("artist", "!?!"), ["similar", "!?!"],
     "metadata.tsv: malformed metadata (line 3: artist '!?!' is line 2's too)"),
    # Probe 19: names no run writes were read, and `plot` drew a name of 1,000,000 characters for
    # minutes.
    (_metadata_value("artist", " "), ["evaluate"],
     "metadata.tsv: malformed metadata (line 3: artist is blank)"),
    (_metadata_value("artist", " !?! "), ["evaluate"],
     "metadata.tsv: malformed metadata (line 3: artist ' !?! ' has spaces around it)"),
    (_metadata_value("artist", "x" * 1_001), ["plot"],
     "metadata.tsv: malformed metadata (line 3: artist of 1,001 characters, where a name has at "
     "most 1,000)"),
    (_nan_vectors_alone, ["evaluate"],
     "vectors.npy: damaged (2 of its vectors with NaN or infinite values), "
     "and no checkpoint to read instead"),
    (lambda run_dir: _edit_json(run_dir, lambda fields: fields["options"].update(ensemble=4)),
     ["similar", "!?!"], "its vectors have 64 columns, and run.json says 4 members of 64 "
                         "dimensions (256): one of the two is damaged or another run's"),
    (None, ["query", TERMS], f"an expression takes at most {expressions.MAX_TERMS:,} artists"),
    (None, ["evaluate", "-k", "0"], "-k must be at least 1, not 0"),
    # It said `no vectors to ask yet (its state: finished); tensorboard --logdir ...`.
    (_fifo_metadata, ["similar", "!?!", "--run", "r"],
     "metadata.tsv: not a regular file (a FIFO, a device"),
    (_fifo_metadata, ["evaluate", "--json"], "metadata.tsv: not a regular file (a FIFO, a device"),
], ids=["run.json with an unknown option", "run.json without stats", "run.json of a newer version",
        "score bucket too big", "score bucket past 10", "reviews -3", "an artist twice",
        "a blank artist", "an artist with spaces around it", "an artist too long",
        "NaN vectors without a checkpoint", "run.json with another ensemble", "too many terms",
        "evaluate k 0",
        "metadata.tsv a FIFO", "metadata.tsv a FIFO, no --run"])
def test_what_the_library_refuses_is_one_line(demo_copy, damage, args, message):
    if damage:
        damage(demo_copy)
    result = run_cli(*args, "--logdir", str(demo_copy.parent))
    assert_refused(result, message)
    if "run.json" not in message:  # the promise reads the run's run.json, which the others damage
        assert_promise(result, demo_copy.parent, 2)


def test_a_query_of_many_terms_is_answered(demo_copy):
    terms = " + ".join(["lune, marée", "!?!"] * (expressions.MAX_TERMS // 2))
    # 1,000 terms took 22 s to parse before; test_library_errors times the parser.
    result = run_cli("query", terms, "-k", "3", "--logdir", str(demo_copy.parent), timeout=60)
    answers = [line for line in result.stdout.splitlines() if line.startswith("Artist: ")]
    assert result.returncode == 0 and len(answers) == 3, result.stderr


# ---------------------------------------------------------------------------------------------
# Signals, kill -9 and two writers
# ---------------------------------------------------------------------------------------------

def test_a_signal_while_loading_leaves_nothing(tmp_path, full_data):
    logs = tmp_path / "logs"
    database = os.path.realpath(full_data)
    result = signalled(["--data", full_data, "--logdir", str(logs), "--run", "r"],
                       has_open(database), signal.SIGTERM)
    assert_promise(result, logs, 130,
                   "run.py: interrupted before a run folder was made: nothing was written")
    assert not (logs / "r").exists()


@pytest.mark.parametrize("trigger, signum, state, missing, next_command", [
    ("t-SNE iteration ", signal.SIGTERM, "incomplete", ["plots"], "python run.py plot"),
    ("Measuring", signal.SIGINT, "incomplete", ["quality", "plots"], "python run.py --resume"),
    ("Clustering", signal.SIGINT, "incomplete",
     ["metadata", "exports", "projector", "quality", "plots"],
     "python run.py --resume"),
    ("average loss", signal.SIGTERM, "interrupted", None, "python run.py --resume"),
    ("average loss", signal.SIGHUP, "interrupted", None, "python run.py --resume"),
], ids=["SIGTERM during t-SNE", "SIGINT while measuring", "SIGINT while clustering",
        "SIGTERM while training", "SIGHUP (a closed terminal) while training"])
def test_a_signal_in_any_phase(tmp_path, trigger, signum, state, missing, next_command):
    logs = tmp_path / "logs"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", "r", "--steps", "600"],
                       trigger, signum)
    assert result.returncode == 130 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert next_command in result.stderr
    assert_promise(result, logs, 130)
    assert run_state(logs / "r")[:2] == (state, missing)
    result = run_cli(*run_state(logs / "r")[2].split()[2:])
    assert result.returncode == 0, result.stderr
    assert run_state(logs / "r")[0] == "finished"


def _loads_numpy(process):
    """A trigger for `signalled`: the process is loading its modules (numpy's is mapped)."""
    try:
        with open(f"/proc/{process.pid}/maps") as maps:
            return "_multiarray_umath" in maps.read()
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_modules_load_says_nothing_was_done(tmp_path, signum):
    """Probe 15: Ctrl-C was a traceback of the import it cut, and SIGTERM ended it with no word."""
    logs = tmp_path / "logs"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", "r"],
                       _loads_numpy, signum)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "run.py: interrupted as it started; nothing was done\n"
    assert not logs.exists()


@pytest.mark.parametrize("gap", [0.05, 0.3])
def test_a_second_signal_while_the_first_saves_keeps_the_training(tmp_path, gap):
    logs = tmp_path / "logs"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", "r", "--steps", "100000",
                        "--no-plots"], "500/", signal.SIGTERM, again=gap)
    assert_promise(result, logs, 130, "Interrupted at step ", "checkpoint saved", lines=1)
    record = run_record.read(str(logs / "r"))
    assert record.state == "interrupted" and record.stats.steps >= 500
    assert f"Interrupted at step {record.stats.steps:,}: " in result.stderr
    checkpoints = os.listdir(logs / "r" / run_folder.CHECKPOINT_DIR)
    assert f"model.ckpt-{record.stats.steps}.index" in checkpoints, checkpoints


def test_a_signal_while_the_graph_is_built_is_one_line(tmp_path):
    logs = tmp_path / "logs"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", "r", "--steps", "300",
                        "--no-plots"], "Training ", signal.SIGTERM)
    assert_promise(result, logs, 130, "Interrupted before the first checkpoint", lines=1)
    assert not (logs / "r").exists()


def test_interrupted_training_on_the_full_data_saves_a_consistent_run_and_resumes(tmp_path,
                                                                                  full_data):
    from artist_vectors import ArtistVectors

    logs = tmp_path / "logs"
    result = signalled(["--data", full_data, "--logdir", str(logs), "--run", "r", "--steps",
                        "1000000", "--no-plots"], "average loss", signal.SIGINT)
    assert result.returncode == 130, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Interrupted at step" in result.stderr
    assert "--resume" in result.stderr
    assert_promise(result, logs, 130)

    run_dir = str(logs / "r")
    record = run_record.read(run_dir)
    steps = record.stats.steps
    assert record.state == "interrupted" and 250 <= steps < 1_000_000
    with open(os.path.join(run_dir, metadata.METADATA_FILE), encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 8630 + 1
    vectors = ArtistVectors.load(run_dir)  # checkpoint and metadata agree
    assert len(vectors) == 8630 and np.all(np.isfinite(vectors.vectors))
    # no temporary files left
    assert not [name for name in os.listdir(run_dir) if name.startswith(".")]

    result = run_cli("--resume", "--logdir", str(logs), "--run", "r", "--steps", str(steps + 100),
                     "--no-plots")
    assert result.returncode == 0, result.stderr
    record = run_record.read(run_dir)
    assert record.state == "finished" and record.stats.steps == steps + 100
    assert (record.stats.pairs == (steps + 100) * record.options.batch_size
            and record.stats.part_from == steps)
    assert (f"of which {100 * record.options.batch_size:,} in the 100 steps from step {steps:,}"
            in result.stdout)

    result = run_cli("--resume", "--logdir", str(logs), "--run", "r", "--steps", str(steps + 200),
                     "--data", "demo")
    assert_refused(result, "trained on other data")
    assert_refused(run_cli("--resume", "--logdir", str(logs), "--run", "r"), "has trained all its")
    assert_refused(run_cli("--resume", "--logdir", str(logs), "--run", "r", "--seed", "3"),
                   "only --steps")


def test_kill_9_loses_only_the_steps_since_the_last_checkpoint(tmp_path, full_data):
    logs = str(tmp_path / "logs")
    result = signalled(["--data", full_data, "--logdir", logs, "--run", "r", "--steps", "50000",
                        "--no-plots"],
                       "step  4000/", signal.SIGKILL, settings={CHECKPOINT_SECONDS: 1})
    assert result.returncode == -signal.SIGKILL
    assert result.stderr == ""  # several checkpoints, and none of TensorFlow's notes about them
    record = run_record.read(str(tmp_path / "logs" / "r"))
    # Checkpoints every second of a run at about 1,000 steps a second: at most a few seconds lost.
    assert record.state == "training" and 1000 <= record.stats.steps <= 4000
    assert record.next == f"python run.py --resume --logdir {logs} --run r"
    steps = record.stats.steps
    result = run_cli("similar", "coil", "--logdir", logs)
    assert_refused(result, "no run with vectors to ask yet (r: still training, or stopped before")
    result = run_cli("--resume", "--logdir", logs, "--run", "r", "--steps", str(steps + 300),
                     "--no-plots")
    assert result.returncode == 0, result.stderr
    assert (f"step {steps + 300}/{steps + 300}" in result.stdout
            and run_state(tmp_path / "logs" / "r")[0] == "finished")
    assert_promise(result, logs, 0)
    # The dead process's lock was taken over, and removed; beside the run, the log folder's hparams.
    assert sorted(os.listdir(logs)) == sorted(["r", tensorboard_files.EXPERIMENT_FILE])


def test_kill_9_while_writing_leaves_a_trained_run_that_resume_completes(tmp_path):
    logs = tmp_path / "logs"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", "r", "--steps", "300",
                        "--no-plots"], "Clustering", signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL and result.stderr == ""
    record = run_record.read(str(logs / "r"))
    # Trained to its last step, as its checkpoint is: not step 0.
    assert record.state == "incomplete" and record.stats.steps == 300 and record.missing
    assert record.next == f"python run.py --resume --logdir {logs} --run r"
    if "metadata" in record.missing:  # the vectors, without what questions need: --resume writes it
        assert_refused(run_cli("similar", "!?!", "--logdir", str(logs), "--run", "r"),
                       "no vectors to ask yet (its state: incomplete); python run.py --resume")
    result = run_cli(*shlex.split(record.next)[2:], "--no-plots")
    assert "has trained all its 300 steps: writing the files it lacks" in result.stdout
    assert assert_promise(result, logs, 0)["r"].state == "finished"
    assert run_cli("similar", "!?!", "--logdir", str(logs)).returncode == 0


def test_the_command_to_go_on_is_pasted_into_a_shell_as_it_is(tmp_path):
    logs, name = tmp_path / "my logs", "my run;echo PWNED"
    result = signalled(["--data", "demo", "--logdir", str(logs), "--run", name, "--steps", "600",
                        "--no-plots"], "average loss", signal.SIGTERM)
    assert_promise(result, logs, 130)
    command = run_record.read(str(logs / name)).next
    assert f"continue with: {command}" in result.stderr
    assert shlex.split(command) == ["python", "run.py", "--resume", "--logdir", str(logs),
                                    "--run", name]
    # Pasted into a shell, where `python` is this one, in the repository.
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    pasted = subprocess.run(["bash", "-c", f"{command} --no-plots"], cwd=REPO,
                            env=dict(os.environ, PATH=path),
                            capture_output=True, text=True, timeout=300)
    assert (pasted.returncode == 0
            and "PWNED" not in pasted.stdout.splitlines()), pasted.stderr  # no echo ran
    assert run_state(logs / name)[0] == "finished"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_to_a_waiting_ps_task(tmp_path, signum):
    chief, ps = free_ports(2)
    config = {"cluster": {"chief": [f"127.0.0.1:{chief}"], "ps": [f"127.0.0.1:{ps}"]},
              "task": {"type": "ps", "index": 0}}
    result = signalled(["--data", "demo", "--logdir", str(tmp_path)], "serving the variables",
                       signum, env={"TF_CONFIG": json.dumps(config)}, timeout=120)
    assert_promise(result, tmp_path, 130,
                   "ps 0: interrupted; the trainers lose the variables it served")
    assert len(result.stderr.splitlines()) == 1 and os.listdir(tmp_path) == []


def test_one_writer_per_run(tmp_path, demo_run):
    """A second writer, such as --overwrite while a run trains, is refused; readers are not
    writers."""
    logs = tmp_path / "logs"
    shutil.copytree(demo_run, logs / "r")
    with run_folder.writing(str(logs / "r")):  # held here as a training run holds it
        holder = f"process {os.getpid()}"
        for args in (["--data", "demo", "--run", "r", "--overwrite"],
                     ["--resume", "--run", "r", "--steps", "400"],
                     ["plot", "--run", "r"], ["export", "--run", "r"]):
            result = run_cli(*args, "--logdir", str(logs))
            assert_refused(result, f"{logs / 'r'} is being written by {holder}")
            assert assert_promise(result, logs, 2)["r"].state == "finished"
        # readers are not writers
        assert run_cli("similar", "!?!", "--logdir", str(logs)).returncode == 0
    assert os.listdir(logs) == ["r"]
    # A lock file left by a process that has gone is taken over.
    (logs / ".r.lock").write_text("process 99999999 (run.py, killed)")
    assert run_cli("export", "--run", "r", "--logdir", str(logs)).returncode == 0
    assert os.listdir(logs) == ["r"]


@pytest.mark.parametrize("plant", ["link", "fifo"])
def test_a_lock_planted_by_another_user(demo_copy, tmp_path, plant):
    """`ln -s ~/notes.txt logs/.r.lock` (or a FIFO there) by whoever may write in the logs: refused
    in one line, and the file the link points to is left as it was."""
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's notes\n")
    logs, lock = demo_copy.parent, demo_copy.parent / ".r.lock"
    os.symlink(victim, lock) if plant == "link" else os.mkfifo(lock)
    result = run_cli("export", "--logdir", str(logs), "--run", "r")
    assert_refused(result, f"{lock}: the lock of {demo_copy} is ",
                   "which run.py never makes; remove it")
    assert victim.read_text() == "the user's notes\n"


