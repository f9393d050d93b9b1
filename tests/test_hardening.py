"""The whole run hardened: whatever fails or stops it, after whatever phase, the folder is gone or tells its
state in run.json and how to go on; one writer per run; errors of the system in one line; checkpoints that
a kill -9 cannot take back more than minutes of; small catalogs; every phase saying what it does."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import atomic_files
import data_utils
import demo_data
import quality
import run_folder
import run_life
import run_outputs
import run_record
import training
import vector_files
import bands2vec
from conftest import REPO, quiet


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, os.path.join(REPO, "run.py"), *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def _refusal(result, *fragments, lines=1):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == lines, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _signalled(args, trigger, signum, checkpoint_seconds=None):
    """Run `python run.py ARGS` and send `signum` once a line of its output contains `trigger`."""
    command = [sys.executable, "-u", os.path.join(REPO, "run.py"), *args]
    if checkpoint_seconds is not None:  # checkpoints every few seconds, as a long run has them every few minutes
        command[2:3] = ["-c", f"import sys; sys.path.insert(0, {REPO!r}); import training; "
                              f"training.CHECKPOINT_SECONDS = {checkpoint_seconds}; import run; "
                              f"sys.exit(run.main(sys.argv[1:]))"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if trigger in line:
                process.send_signal(signum)
                break
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, "".join(lines) + stdout, stderr


def _state(run_dir):
    record = run_record.read(str(run_dir))
    return record.state, record.missing, record.next


# ---------------------------------------------------------------------------------------------
# One guard for the whole run
# ---------------------------------------------------------------------------------------------

def test_a_failure_in_the_plots_leaves_a_usable_run_that_plot_completes(tmp_path, monkeypatch):
    import plots

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "r" / "tsne_clusters.png"))

    monkeypatch.setattr(plots, "write_plots", full_disk)
    with pytest.raises(OSError) as raised:
        bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r", say=quiet)
    state, missing, command = _state(tmp_path / "r")
    assert (state, missing) == ("incomplete", ["plots"]) and command.startswith("python run.py plot ")
    assert raised.value.__notes__ == [f"{tmp_path / 'r'} is usable, without its plots: complete it with: {command}"]
    assert atomic_files.os_error_line(raised.value).endswith("No space left on device; free some space there, or use "
                                                       "another --logdir")
    assert bands2vec.open_run(str(tmp_path)).vectors.most_similar("!?!", topn=2)  # it can be asked already
    monkeypatch.undo()
    result = _run(*command.split()[2:])
    assert result.returncode == 0, result.stderr
    assert _state(tmp_path / "r")[0] == "finished" and all(os.path.isfile(p) for p in bands2vec.open_run(
        str(tmp_path)).plots.values())


def test_a_failure_after_training_is_completed_by_resume_without_training(tmp_path, monkeypatch):
    import artist_vectors

    monkeypatch.setattr(run_outputs, "kmeans_clusters", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r", plots=False,
                        say=quiet)
    state, missing, command = _state(tmp_path / "r")
    assert state == "incomplete" and missing[:2] == ["metadata", "exports"] and "--resume" in command
    vectors = np.load(tmp_path / "r" / vector_files.VECTORS_FILE)
    monkeypatch.setattr(run_outputs, "kmeans_clusters", quality.kmeans_clusters)
    said = []
    run = bands2vec.resume(str(tmp_path), "r", plots=False, say=said.append)
    assert run.record.state == "finished" and run.record.stats.steps == 100
    assert not any("average loss" in line for line in said)  # no training: the files it lacked
    assert np.array_equal(run.vectors.vectors, vectors)


def test_a_resumption_that_fails_leaves_run_json_as_it_was(tmp_path, monkeypatch):
    import training

    run = bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r", plots=False,
                          say=quiet)
    before = open(os.path.join(run.folder, run_record.RUN_FILE)).read()
    monkeypatch.setattr(training, "train_vectors", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as raised:
        bands2vec.resume(str(tmp_path), "r", steps=200, say=quiet)
    assert open(os.path.join(run.folder, run_record.RUN_FILE)).read() == before
    assert "keeps its checkpoint at step 100: continue with: python run.py --resume" in raised.value.__notes__[0]


@pytest.mark.parametrize("trigger, signum, state, missing, next_command", [
    ("t-SNE iteration 100 ", signal.SIGTERM, "incomplete", ["plots"], "python run.py plot"),
    ("Measuring", signal.SIGINT, "incomplete", ["quality", "plots"], "python run.py --resume"),
    ("average loss", signal.SIGTERM, "interrupted", None, "python run.py --resume"),
])
def test_a_signal_in_any_phase(tmp_path, trigger, signum, state, missing, next_command):
    logs = str(tmp_path / "logs")
    code, stdout, stderr = _signalled(["--data", "demo", "--logdir", logs, "--run", "r", "--steps", "600"],
                                      trigger, signum)
    assert code == 130 and len(stderr.strip().splitlines()) == 1 and next_command in stderr, stderr
    assert _state(tmp_path / "logs" / "r")[:2] == (state, missing)
    result = _run(*_state(tmp_path / "logs" / "r")[2].split()[2:])
    assert result.returncode == 0, result.stderr
    assert _state(tmp_path / "logs" / "r")[0] == "finished"


def test_a_signal_before_the_folder_leaves_nothing(tmp_path, monkeypatch, capsys):
    import run

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_life, "load_catalog", ctrl_c)  # Ctrl-C while the data loads
    assert run.main(["--data", "demo", "--logdir", str(tmp_path / "logs")]) == 130
    assert capsys.readouterr().err == "run.py: interrupted before a run folder was made: nothing was written\n"
    assert not (tmp_path / "logs").exists()


def test_tensorflow_loads_before_the_folder_so_a_signal_then_leaves_nothing(tmp_path):
    # In a fresh process: the seconds TensorFlow takes to load come before the run folder is made.
    script = (f"import sys; sys.path.insert(0, {REPO!r}); import bands2vec, run_folder\n"
              f"def made(*args):\n"
              f"    print('tensorflow' in sys.modules)\n"
              f"    raise KeyboardInterrupt\n"
              f"run_folder.make_run_folder = made\n"
              f"try:\n"
              f"    bands2vec.train('demo', logs={str(tmp_path / 'logs')!r}, name='r', say=print)\n"
              f"except KeyboardInterrupt:\n"
              f"    pass\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.stdout.splitlines()[-1] == "True", (result.stdout, result.stderr)
    assert os.listdir(tmp_path / "logs") == []  # nor its lock file


# ---------------------------------------------------------------------------------------------
# kill -9 and periodic checkpoints
# ---------------------------------------------------------------------------------------------

def test_kill_9_loses_only_the_steps_since_the_last_checkpoint(tmp_path, full_data):
    logs = str(tmp_path / "logs")
    code, stdout, stderr = _signalled(["--data", full_data, "--logdir", logs, "--run", "r", "--steps", "50000",
                                       "--no-plots"], "step  4000/", signal.SIGKILL, checkpoint_seconds=1)
    assert code == -signal.SIGKILL
    assert stderr == ""  # several checkpoints, and none of TensorFlow's notes about them
    record = run_record.read(str(tmp_path / "logs" / "r"))
    # Checkpoints every second of a run at about 1,000 steps a second: at most a few seconds lost.
    assert record.state == "training" and 1000 <= record.stats.steps <= 4000
    assert record.next == f"python run.py --resume --logdir {logs} --run r"
    steps = record.stats.steps
    result = _run("similar", "coil", "--logdir", logs)
    _refusal(result, "no run with vectors to ask yet (r: still training, or stopped before")
    result = _run("--resume", "--logdir", logs, "--run", "r", "--steps", str(steps + 300), "--no-plots")
    assert result.returncode == 0, result.stderr
    assert f"step {steps + 300}/{steps + 300}" in result.stdout and _state(tmp_path / "logs" / "r")[0] == "finished"
    assert os.listdir(logs) == ["r"]  # the dead process's lock was taken over, and removed


# ---------------------------------------------------------------------------------------------
# One writer per run
# ---------------------------------------------------------------------------------------------

def test_one_writer_per_run(tmp_path, demo_run):
    logs = tmp_path / "logs"
    shutil.copytree(demo_run, logs / "r")
    with run_folder.writing(str(logs / "r")):
        holder = f"process {os.getpid()}"
        for args in (["--data", "demo", "--run", "r", "--overwrite"], ["--resume", "--run", "r", "--steps", "400"],
                     ["plot", "--run", "r"], ["export", "--run", "r"]):
            _refusal(_run(*args, "--logdir", str(logs)), f"{logs / 'r'} is being written by {holder}")
        assert _run("similar", "!?!", "--logdir", str(logs)).returncode == 0  # readers are not writers
    assert os.listdir(logs) == ["r"]
    # A lock file left by a process that has gone is taken over.
    (logs / ".r.lock").write_text("process 99999999 (run.py, killed)")
    assert _run("export", "--run", "r", "--logdir", str(logs)).returncode == 0
    assert os.listdir(logs) == ["r"]


# ---------------------------------------------------------------------------------------------
# The operating system's errors, in one line
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    """A folder on a 1 MB tmpfs, unmounted afterwards; skipped where mounting is refused."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs was refused here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk(tmpfs):
    result = _run("--data", "demo", "--logdir", str(tmpfs), "--run", "r")
    _refusal(result, "No space left on device; free some space there, or use another --logdir", lines=2)
    state, missing, command = _state(tmpfs / "r")
    assert state == "incomplete" and missing and command in result.stderr


def test_a_read_only_folder(tmpfs, demo_run):
    shutil.copytree(demo_run, tmpfs / "r", ignore=shutil.ignore_patterns("*.png", "events.*"))
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for args in (["plot"], ["export"], ["--resume", "--steps", "400"]):
        _refusal(_run(*args, "--logdir", str(tmpfs), "--run", "r"), "Read-only file system")
    _refusal(_run("--data", "demo", "--logdir", str(tmpfs)), "log directory is not writable (Read-only file system)")
    assert _run("similar", "!?!", "--logdir", str(tmpfs)).returncode == 0


# ---------------------------------------------------------------------------------------------
# Catalogs of any size, and progress
# ---------------------------------------------------------------------------------------------

def test_small_catalogs(tmp_path):
    import data_utils
    from synthetic_catalog import write_tables

    _refusal(_run("--data", write_tables(demo_data.demo_tables(2, seed=3), str(tmp_path / "2")),
                  "--logdir", str(tmp_path / "logs")), "2 artists with a score; a run needs at least 3")
    five = write_tables(demo_data.demo_tables(5, seed=3), str(tmp_path / "5"))
    result = _run("--data", five, "--logdir", str(tmp_path / "logs"), "--run", "r")
    assert result.returncode == 0, result.stderr
    record = run_record.read(str(tmp_path / "logs" / "r"))
    assert record.options.num_sampled == 4 and record.options.batch_size == 8
    assert record.quality["k"] == 4
    result = _run("similar", data_utils.load_catalog(five).names[0], "-k", "100", "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 4
    assert json.loads(_run("evaluate", "--json", "-k", "50", "--logdir", str(tmp_path / "logs")).stdout)["k"] == 4


def test_every_phase_says_what_it_does(tmp_path):
    lines = []
    bands2vec.train("demo", bands2vec.TrainOptions(steps=300), logs=str(tmp_path), name="r", say=lines.append)
    for start in ("Using the built-in demo catalog", "Training 300 steps", "[####", "Clustering 300 artists",
                  "Writing vectors.tsv", "Measuring the vectors' quality", "t-SNE of 300 artists",
                  "  t-SNE iteration 250 of 500", "  t-SNE iteration 500 of 500"):
        assert any(line.startswith(start) for line in lines), start
