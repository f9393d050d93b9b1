"""Faults inside a run: whatever fails or stops it, after whatever phase, the folder is gone or
tells its state in run.json and how to go on; files written whole or not at all; a run whose
checkpoint or metadata is gone or damaged; every phase saying what it does. (The hostile inputs from
outside are in test_hostile_inputs.py; signals, kill -9 and a second writer among them in
test_hostile_runs.py.)"""
import dataclasses
import errno
import glob
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import atomic_files
import errors
import metadata
import plots
import quality
import run_folder
import run_life
import run_outputs
import run_record
import vector_files
import bands2vec
from helpers import REPO, assert_refused, quiet, run_cli, run_state



# ---------------------------------------------------------------------------------------------
# One guard for the whole run
# ---------------------------------------------------------------------------------------------

def _full_disk(path):
    """A stand-in for a writer that fails as a full disk does, writing `path`."""
    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return fail


def _failed_demo_run(tmp_path):
    """The error a new demo run `r` in `tmp_path` fails with."""
    with pytest.raises(OSError) as raised:
        bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r",
                        say=quiet)
    return raised.value


@pytest.mark.slow
def test_a_failure_in_the_plots_leaves_a_usable_run_that_plot_completes(tmp_path, monkeypatch):
    import plots

    monkeypatch.setattr(plots, "write_plots", _full_disk(tmp_path / "r" / "tsne_clusters.png"))
    error = _failed_demo_run(tmp_path)
    state, missing, command = run_state(tmp_path / "r")
    assert ((state, missing) == ("incomplete", ["plots"])
            and command.startswith("python run.py plot "))
    assert error.__notes__ == [f"{tmp_path / 'r'} is usable, without its plots: "
                               f"complete it with: {command}"]
    assert atomic_files.os_error_line(error).endswith("No space left on device; free some space "
                                                      "there, or use another --logdir")
    assert bands2vec.open_run(str(tmp_path)).vectors.most_similar(
        "!?!", topn=2)  # it can be asked already
    monkeypatch.undo()
    result = run_cli(*command.split()[2:])
    assert result.returncode == 0, result.stderr
    assert run_state(tmp_path / "r")[0] == "finished" and all(
        os.path.isfile(p) for p in bands2vec.open_run(str(tmp_path)).plots.values())


@pytest.mark.parametrize("fails_at", [vector_files.VECTORS_FILE, "tsne_clusters.png"])
def test_a_completion_that_fails_keeps_what_the_run_had_whole(demo_copy, monkeypatch, fails_at):
    """Probe 20: a --resume of a run missing its plots, on a disk full at vectors.npy, wrote that
    it lacked its vectors, metadata and every other file, which were all there, whole."""
    record = run_record.read(str(demo_copy))
    record.set_state(str(demo_copy), "incomplete", missing=["plots"])
    run_record.write(str(demo_copy), record)
    monkeypatch.setattr(vector_files, "write_vectors", _full_disk(demo_copy / fails_at)
                        if fails_at == vector_files.VECTORS_FILE else vector_files.write_vectors)
    monkeypatch.setattr(plots, "write_plots", _full_disk(demo_copy / fails_at))
    with pytest.raises(OSError) as raised:
        bands2vec.resume(str(demo_copy.parent), "r", say=quiet)
    state, missing, command = run_state(demo_copy)
    assert ((state, missing) == ("incomplete", ["plots"])
            and command.startswith("python run.py plot"))
    assert raised.value.__notes__ == [f"{demo_copy} is usable, without its plots: complete it "
                                      f"with: {command}"]


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_full_disk_that_stops_run_json_too_still_says_how_to_complete_the_run(tmp_path,
                                                                                monkeypatch):
    """The failure's advice came only from a run.json it could save: a disk full at the plots, and
    again as run.json was saved, ended on run.json's own error with no word of --resume or plot."""
    import plots
    save = run_record.write
    saves = []

    def saved_unless_failing(folder, record):
        saves.append(record.missing)
        if saves.count(["plots"]) == 2:  # the first once the quality is written, then the failure's
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                          os.path.join(folder, run_record.RUN_FILE))
        return save(folder, record)

    monkeypatch.setattr(plots, "write_plots", _full_disk(tmp_path / "r" / "tsne_clusters.png"))
    monkeypatch.setattr(run_record, "write", saved_unless_failing)
    error = _failed_demo_run(tmp_path)
    assert error.filename.endswith("tsne_clusters.png")  # the first failure, not run.json's
    state, missing, command = run_state(tmp_path / "r")
    assert state == "incomplete" and "plots" in missing
    assert error.__notes__[0].endswith(f"complete it with: {command}")


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_checkpoint_run_json_cannot_count_is_found_by_resume(tmp_path, monkeypatch):
    """Probe 15, a disk full as the last checkpoint was saved: run.json still said step 0, the run
    said it kept its checkpoint at step 0, and --resume trained nothing and reported 0.0 s."""
    save = run_record.write

    def full_once_trained(folder, record):
        if record.state == "training":
            return save(folder, record)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                      os.path.join(folder, run_record.RUN_FILE))

    monkeypatch.setattr(run_record, "write", full_once_trained)
    monkeypatch.setattr(vector_files, "write_vectors",
                        _full_disk(tmp_path / "r" / vector_files.VECTORS_FILE))
    error = _failed_demo_run(tmp_path)
    assert error.filename.endswith(
        vector_files.VECTORS_FILE)  # not run.json's: the run goes on to say
    assert error.__notes__ == [f"{tmp_path / 'r'} is trained, without its vectors, metadata, "
                               f"exports, projector, quality, plots: complete it with: "
                               f"{run_state(tmp_path / 'r')[2]}"]
    assert (run_state(tmp_path / "r")[0] == "training"
            and run_record.read(str(tmp_path / "r")).stats.steps == 0)
    monkeypatch.undo()
    said = []
    run = bands2vec.resume(str(tmp_path), "r", plots=False, say=said.append)
    assert (f"{tmp_path / 'r'}: its checkpoint is of step 100, though run.json counted 0: "
            f"going on from step 100" in said)
    assert f"{tmp_path / 'r'} has trained all its 100 steps: writing the files it lacks" in said
    assert (run.record.state == "finished" and run.record.stats.steps == 100
            and run.record.stats.pairs > 0)


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_new_run_whose_first_checkpoint_fails_says_it_is_removed(tmp_path, monkeypatch):
    import training

    monkeypatch.setattr(training, "save_checkpoint", _full_disk(tmp_path / "r" / "checkpoints"))
    error = _failed_demo_run(tmp_path)
    assert not (tmp_path / "r").exists()
    assert error.__notes__ == [f"{tmp_path / 'r'} is removed: it had no checkpoint, "
                               f"so nothing was kept"]


@pytest.mark.slow  # trains in-process, a few seconds
def test_ctrl_c_again_while_the_first_is_told_still_says_what_the_run_keeps(tmp_path, monkeypatch):
    """Three Ctrl-C 50 ms apart during t-SNE: the second landed while run.json was saved as
    incomplete, and the run said "interrupted before a run folder was made: nothing was written"."""
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt  # as the first Ctrl-C does, in the map's t-SNE

    def saved_under_ctrl_c(folder, record, state, **kwargs):
        if state == "incomplete" and kwargs.get("missing") == ["plots"]:
            os.kill(os.getpid(), signal.SIGINT)  # the second, as run.json is written
        return save(folder, record, state, **kwargs)

    save = run_life._save
    monkeypatch.setattr(plots, "write_plots", ctrl_c)
    monkeypatch.setattr(run_life, "_save", saved_under_ctrl_c)
    try:
        with pytest.raises(errors.RunInterrupted, match="^Interrupted while writing the plots; "):
            bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path),
                            name="r", say=quiet)
    except KeyboardInterrupt:  # not what the run's life says, and pytest would stop at it
        pytest.fail("the second Ctrl-C came out as a bare KeyboardInterrupt")
    assert run_state(tmp_path / "r")[:2] == ("incomplete", ["plots"])


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_failure_after_training_is_completed_by_resume_without_training(tmp_path, monkeypatch):

    monkeypatch.setattr(run_outputs, "kmeans_clusters",
                        lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r",
                        plots=False, say=quiet)
    state, missing, command = run_state(tmp_path / "r")
    assert (state == "incomplete" and missing[:2] == ["metadata", "exports"]
            and "--resume" in command)
    vectors = np.load(tmp_path / "r" / vector_files.VECTORS_FILE)
    monkeypatch.setattr(run_outputs, "kmeans_clusters", quality.kmeans_clusters)
    said = []
    run = bands2vec.resume(str(tmp_path), "r", plots=False, say=said.append)
    assert run.record.state == "finished" and run.record.stats.steps == 100
    assert not any("average loss" in line for line in said)  # no training: the files it lacked
    assert np.array_equal(run.vectors.vectors, vectors)


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_resumption_that_fails_leaves_run_json_as_it_was(tmp_path, monkeypatch):
    import training

    run = bands2vec.train("demo", bands2vec.TrainOptions(steps=100), logs=str(tmp_path), name="r",
                          plots=False, say=quiet)
    before = open(os.path.join(run.folder, run_record.RUN_FILE)).read()
    monkeypatch.setattr(training, "train_vectors",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as raised:
        bands2vec.resume(str(tmp_path), "r", steps=200, say=quiet)
    assert open(os.path.join(run.folder, run_record.RUN_FILE)).read() == before
    assert ("keeps its checkpoint at step 100: continue with: python run.py --resume"
            in raised.value.__notes__[0])
    # Probe 16: it dropped the --steps asked for, and pasted, was refused: all 100 steps trained.
    assert raised.value.__notes__[0].endswith(" --run r --steps 200")


def test_a_failed_start_leaves_no_run_folder(tmp_path, monkeypatch, demo_catalog):
    import training

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(training, "train_vectors", fail)
    with pytest.raises(RuntimeError):
        bands2vec.train(demo_catalog, logs=str(tmp_path), plots=False, say=quiet)
    assert os.listdir(tmp_path) == []


def test_a_signal_before_the_folder_leaves_nothing(tmp_path, monkeypatch, capsys):
    import run

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_life, "load_catalog", ctrl_c)  # Ctrl-C while the data loads
    assert run.main(["--data", "demo", "--logdir", str(tmp_path / "logs")]) == 130
    assert capsys.readouterr().err == ("run.py: interrupted before a run folder was made: "
                                       "nothing was written\n")
    assert not (tmp_path / "logs").exists()


def test_a_signal_before_a_resumption_loads_says_the_run_is_as_it_was(demo_copy, monkeypatch,
                                                                      capsys):
    """It said `interrupted before a run folder was made`, of a run whose folder is there."""
    import run

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    before = (demo_copy / run_record.RUN_FILE).read_text()
    monkeypatch.setattr(run_life, "load_catalog", ctrl_c)  # Ctrl-C while the data loads
    assert run.main(["--resume", "--logdir", str(demo_copy.parent),
                     "--run", "r", "--steps", "400"]) == 130
    assert capsys.readouterr().err == ("run.py: interrupted before the run went on: "
                                       "it is as it was\n")
    assert (demo_copy / run_record.RUN_FILE).read_text() == before


@pytest.mark.slow
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
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.splitlines()[-1] == "True", (result.stdout, result.stderr)
    assert os.listdir(tmp_path / "logs") == []  # nor its lock file


@pytest.mark.slow
def test_every_phase_says_what_it_does(tmp_path):
    lines = []
    bands2vec.train("demo", bands2vec.TrainOptions(steps=300), logs=str(tmp_path), name="r",
                    say=lines.append)
    iterations = plots.tsne_iterations()
    for start in ("Using the built-in demo catalog", "Training 300 steps", "[####",
                  "Clustering 300 artists", "Writing vectors.tsv", "Measuring the vectors' quality",
                  f"t-SNE of 300 artists ({iterations} iterations)", "  t-SNE iteration ",
                  f"  t-SNE iteration {iterations} of {iterations}"):
        assert any(line.startswith(start) for line in lines), start


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
# A run whose checkpoint or metadata is gone or damaged (more in test_hostile_runs.py)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["similar", "lune, marée"], ["query", "lune, marée - !?!"],
                                     pytest.param(["plot"], marks=pytest.mark.slow),  # t-SNE
                                     pytest.param(["evaluate"], marks=pytest.mark.slow)])
def test_missing_checkpoint(demo_copy, command):
    # vectors.npy is another whole copy of the vectors: the questions are still answered.
    shutil.rmtree(demo_copy / run_folder.CHECKPOINT_DIR)
    result = run_cli(*command, "--logdir", str(demo_copy.parent))
    assert result.returncode == 0 and not result.stderr, result.stderr
    os.remove(demo_copy / vector_files.VECTORS_FILE)
    assert_refused(run_cli(*command, "--logdir", str(demo_copy.parent)), "no such file",
                   "no checkpoint")


def test_damaged_metadata(demo_copy):
    with open(demo_copy / metadata.METADATA_FILE, "a") as f:
        f.write("one\ttoo few\n")
    assert_refused(run_cli("similar", "lune, marée", "--logdir", str(demo_copy.parent)),
                   "malformed metadata")



@pytest.mark.parametrize("plant", [os.mkfifo, lambda path: os.symlink("/dev/zero", path)],
                         ids=["a FIFO", "a link to /dev/zero"])
def test_a_run_file_that_is_no_regular_file_is_refused_not_read_for_ever(demo_copy, plant):
    # A FIFO blocks its reader and /dev/zero never ends: each of a run's files read back is refused.
    readers = {run_record.RUN_FILE: run_record.read, metadata.METADATA_FILE: metadata.read_columns,
               vector_files.VECTORS_FILE: lambda folder: vector_files.read_vectors(folder, 300)}
    for name, read in readers.items():
        path = demo_copy / name
        kept = path.read_bytes()
        path.unlink()
        plant(str(path))
        with pytest.raises(errors.RunError, match="not a regular file"):
            read(str(demo_copy))
        path.unlink()
        path.write_bytes(kept)

# ---------------------------------------------------------------------------------------------
# A resumption that cannot go on as asked: one line, run.json as it was, never a silent restart
# ---------------------------------------------------------------------------------------------

def _checkpoint_state(run_dir):
    return os.path.join(run_dir, run_folder.CHECKPOINT_DIR, "checkpoint")


def _point_elsewhere(run_dir):
    path = _checkpoint_state(run_dir)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("model.ckpt", "/elsewhere/model.ckpt"))


@pytest.mark.parametrize("damage, named", [
    (lambda run_dir: os.remove(_checkpoint_state(run_dir)),
     "checkpoints/checkpoint: missing, though run.json "
     "says the run was checkpointed at step 300"),
    (lambda run_dir: [os.remove(path)
                      for path in glob.glob(os.path.join(run_dir, "checkpoints", "*.index"))],
     "checkpoints/model.ckpt-300.index: missing"),
    (lambda run_dir: [os.remove(path)
                      for path in glob.glob(os.path.join(run_dir, "checkpoints", "*.data-*"))],
     "checkpoints/model.ckpt-300.data-00000-of-00001: missing"),
    (_point_elsewhere,
     "checkpoints/checkpoint: names /elsewhere/model.ckpt-300, not a checkpoint in"),
    (lambda run_dir: open(_checkpoint_state(run_dir), "w").write("garbage {"),
     "checkpoints/checkpoint: unreadable"),
    (lambda run_dir: open(_checkpoint_state(run_dir), "wb").write(
        b'\xff\xfe model_checkpoint_path: "model.ckpt-300"'),
     "checkpoints/checkpoint: unreadable"),
    (lambda run_dir: os.truncate(_checkpoint_state(run_dir), 2 * 2**30),  # sparse: read whole, 9 GB
     "checkpoints/checkpoint: 2,147,483,648 bytes, where a run writes a few hundred"),
    (lambda run_dir: open(_checkpoint_state(run_dir), "w").write(
        'model_checkpoint_path: "model.ckpt-300\\000"'),
     "checkpoints/checkpoint: unreadable, or it names no checkpoint"),
], ids=["no checkpoint file", "no index", "no data shard", "pointing elsewhere", "garbage",
        "not UTF-8", "2 GB", "a NUL"])
def test_a_checkpoint_run_json_counts_but_that_is_gone_is_named_not_restarted(demo_copy, damage,
                                                                              named, capsys):
    import run

    damage(str(demo_copy))
    before = (demo_copy / run_record.RUN_FILE).read_text()
    assert run.main(["--resume", "--logdir", str(demo_copy.parent),
                     "--run", "r", "--steps", "400"]) == 2
    said = capsys.readouterr()
    (line,) = said.err.splitlines()
    assert (line.startswith(f"run.py: error: {demo_copy}/") and named in line
            and "--overwrite" in line), line
    assert "Training" not in said.out and (demo_copy / run_record.RUN_FILE).read_text() == before


@pytest.mark.slow  # trains in-process, a few seconds
def test_a_run_stopped_before_its_first_checkpoint_restarts_from_zero_and_says_so(demo_copy):
    record = run_record.read(str(demo_copy))
    record.stats = run_record.Stats()
    record.set_state(str(demo_copy), "training")
    run_record.write(str(demo_copy), record)
    shutil.rmtree(demo_copy / run_folder.CHECKPOINT_DIR)
    said = []
    run = bands2vec.resume(str(demo_copy.parent), "r", steps=50, plots=False, say=said.append)
    assert f"{demo_copy} stopped before its first checkpoint: training from step 0" in said
    assert run.record.state == "finished" and run.record.stats.steps == 50


@pytest.mark.parametrize("steps, message", [
    (10, "has already trained 300 steps, more than --steps 10; "
         "pass --steps N above 300 to train on"),
    (300, "has trained all its 300 steps; pass --steps N above 300 to train on"),
])
def test_resume_with_no_steps_left_says_how_many_it_has(demo_copy, steps, message):
    before = (demo_copy / run_record.RUN_FILE).read_text()
    with pytest.raises(errors.RunError, match=message):
        bands2vec.resume(str(demo_copy.parent), "r", steps=steps, say=quiet)
    assert (demo_copy / run_record.RUN_FILE).read_text() == before


def test_resume_with_fewer_steps_than_an_incomplete_run_has_says_to_leave_them_out(demo_copy):
    record = run_record.read(str(demo_copy))
    record.set_state(str(demo_copy), "incomplete", missing=["quality"])
    run_record.write(str(demo_copy), record)
    with pytest.raises(errors.RunError, match="more than --steps 150; leave --steps out to write "
                                              "the files it lacks, or pass --steps N above 300 "
                                              "to train on"):
        bands2vec.resume(str(demo_copy.parent), "r", steps=150, say=quiet)


@pytest.mark.slow  # reads the checkpoint state with TensorFlow
def test_a_checkpoint_older_than_run_json_counts_is_named_not_trained_over(demo_copy):
    """run.json is saved after each checkpoint: one that counts more steps than the latest
    checkpoint holds has lost its later checkpoint, and resuming would silently train those steps
    again."""
    record = run_record.read(str(demo_copy))
    record.stats = dataclasses.replace(record.stats, steps=400)
    record.set_state(str(demo_copy), "interrupted")
    run_record.write(str(demo_copy), record)
    before = (demo_copy / run_record.RUN_FILE).read_text()
    with pytest.raises(errors.RunError, match="model.ckpt-300: a checkpoint of step 300, though "
                                              "run.json says the run was checkpointed at step 400; "
                                              "put back the later one"):
        bands2vec.resume(str(demo_copy.parent), "r", steps=500, plots=False, say=quiet)
    assert (demo_copy / run_record.RUN_FILE).read_text() == before


def test_a_cluster_run_that_overshot_its_steps_is_completed_by_its_own_advice(demo_copy):
    """A cluster's trainers overshoot the run's steps by a few: a chief interrupted as it wrote
    left `incomplete` at 603 of 600 steps, and `--resume` said it had trained more than 600."""
    record = run_record.read(str(demo_copy))
    record.stats = dataclasses.replace(record.stats, steps=record.options.steps + 3)
    record.set_state(str(demo_copy), "incomplete", missing=["quality"])
    run_record.write(str(demo_copy), record)
    said = []
    run = bands2vec.resume(str(demo_copy.parent), "r", plots=False, say=said.append)
    assert f"{demo_copy} has trained all its 300 steps: writing the files it lacks" in said
    assert run.record.state == "finished" and run.record.stats.steps == 303
    with pytest.raises(errors.RunError, match="has trained all its 303 steps"):
        bands2vec.resume(str(demo_copy.parent), "r", say=quiet)  # finished now


@pytest.mark.parametrize("options, message", [
    (["--overwrite"], "--resume continues a run and --overwrite replaces it: give one of them"),
    (["--clusters", "4"],
     "--resume continues with the run's own options, not --clusters; only --steps"),
    (["--seed", "3", "--batch-size", "8"], "own options, not --batch-size, --seed; only --steps"),
], ids=["overwrite", "clusters", "seed and batch size"])
def test_resume_refuses_what_would_change_the_run(demo_copy, options, message, capsys):
    import run

    before = (demo_copy / run_record.RUN_FILE).read_text()
    assert run.main(["--resume", "--logdir", str(demo_copy.parent), "--run", "r", *options]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("run.py: error: --resume continues ") and message in line
    assert (demo_copy / run_record.RUN_FILE).read_text() == before


def test_a_signal_before_a_resumption_trains_says_the_run_is_as_it_was(demo_copy, monkeypatch,
                                                                       capsys):
    """Ctrl-C early in `--resume --steps 3000` of a finished run advised `--resume` without the
    steps, which then refused: it has trained all its steps."""
    import run
    import training

    def ctrl_c(*args, **kwargs):  # Ctrl-C while the graph is built, before the first step
        raise KeyboardInterrupt

    before = (demo_copy / run_record.RUN_FILE).read_text()
    monkeypatch.setattr(training, "train_vectors", ctrl_c)
    assert run.main(["--resume", "--logdir", str(demo_copy.parent),
                     "--run", "r", "--steps", "3000"]) == 130
    assert capsys.readouterr().err == (f"run.py: Interrupted before training went on: "
                                       f"{demo_copy} is as it was\n")
    assert (demo_copy / run_record.RUN_FILE).read_text() == before


@pytest.mark.parametrize("error, restart", [
    (errors.RunError("logs/r/checkpoints: cannot write the checkpoint (No space left on device)"),
     ""),
    (errors.ClusterLost("chief 0: lost the parameter servers (Operation timed out.)"),
     "restart the ps tasks, then "),
], ids=["a full disk", "a cluster's ps lost"])
def test_a_resumption_of_a_run_without_a_checkpoint_that_fails_says_how_to_go_on(
        demo_copy, monkeypatch, error, restart):
    """A run killed before its first checkpoint, resumed, then failing (a cluster's ps lost): the
    error's one line said nothing of the run, whose run.json still said `training`, nor what to
    paste."""
    import training

    shutil.rmtree(demo_copy / "checkpoints")  # what kill -9 before the first checkpoint leaves
    record = run_record.read(str(demo_copy))
    record.stats = dataclasses.replace(record.stats, steps=0)
    record.set_state(str(demo_copy), "training")
    run_record.write(str(demo_copy), record)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(training, "train_vectors", fail)
    with pytest.raises(type(error)) as raised:
        bands2vec.resume(str(demo_copy.parent), "r", plots=False, say=quiet)
    assert raised.value.__notes__ == [f"{demo_copy} has no checkpoint yet: {restart}continue with: "
                                      f"{run_record.next_command(str(demo_copy))}, "
                                      f"which trains it from step 0"]


def test_a_signal_once_the_folder_is_named_says_it_is_removed(tmp_path, monkeypatch, capsys):
    import run
    import training

    def ctrl_c(*args, **kwargs):  # Ctrl-C while the graph is built, before the first step
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_vectors", ctrl_c)
    assert run.main(["--data", "demo", "--logdir", str(tmp_path), "--run", "r"]) == 130
    said = capsys.readouterr()
    assert f"logs in {tmp_path / 'r'}" in said.out
    assert said.err == f"run.py: Interrupted before the first checkpoint: {tmp_path / 'r'} " \
                       f"is removed, nothing was kept\n"
    assert os.listdir(tmp_path) == []


def test_a_stop_as_a_new_file_is_made_leaves_no_file(tmp_path, monkeypatch):
    """Probe 15's loop of the signal tests: SIGTERM as t-SNE ended left `.tsne.npz.3431a5fd`, made
    but not yet named for its removal."""
    chmod = os.fchmod

    def stopped(fd, mode):  # the new file is made, and Ctrl-C comes
        chmod(fd, mode)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "fchmod", stopped)
    with pytest.raises(KeyboardInterrupt):
        atomic_files.write_text(str(tmp_path / "f.txt"), "text")
    assert os.listdir(tmp_path) == []


def _counting(folder, steps):
    """run.json of the run at `folder` made to count `steps`, as if its last checkpoint came
    after."""
    record = run_record.read(str(folder))
    record.stats = dataclasses.replace(record.stats, steps=steps)
    run_record.write(str(folder), record)


@pytest.mark.slow  # resumes in-process, reading the checkpoint with TensorFlow
def test_a_checkpoint_ahead_of_run_json_gives_the_vectors(demo_copy):
    """vectors.npy is then older than the checkpoint: the run's vectors are the checkpoint's."""
    trained = np.load(demo_copy / vector_files.VECTORS_FILE)
    np.save(demo_copy / vector_files.VECTORS_FILE, trained[::-1])  # older vectors, say
    _counting(demo_copy, 200)
    said = []
    run = bands2vec.resume(str(demo_copy.parent), "r", plots=False, say=said.append)
    assert (f"{demo_copy}: its checkpoint is of step 300, though run.json counted 200: "
            f"going on from step 300" in said)
    assert run.record.state == "finished" and run.record.stats.steps == 300
    assert np.array_equal(np.load(demo_copy / vector_files.VECTORS_FILE), trained)


@pytest.mark.slow  # resumes in-process, reading the checkpoint with TensorFlow
def test_another_runs_checkpoint_ahead_of_run_json_is_refused(demo_copy, demo_ensemble):
    """Probe 16: taken without a check, it made run.json say `finished` at its step, beside older
    vectors."""
    shutil.rmtree(demo_copy / "checkpoints")
    shutil.copytree(os.path.join(demo_ensemble, "checkpoints"), demo_copy / "checkpoints")
    _counting(demo_copy, 200)
    with pytest.raises(errors.RunError) as refused:
        bands2vec.resume(str(demo_copy.parent), "r", plots=False, say=quiet)
    assert str(refused.value) == (f"{demo_copy / 'checkpoints'}: vectors of 192 numbers, "
                                  f"where the run's options give 64: not this run's")
