"""A run's folder in the logs: its path, making it, its one writer's lock, finding a run to read.

What each file of a run holds is told by the module that writes it: run_record (run.json), metadata
(metadata.tsv), vector_files (vectors.npy, .tsv, .txt), tensorboard_files and plots.
"""
import contextlib
import datetime
import fcntl
import os
import shutil
import sys
import tempfile

import metadata
import run_record
from atomic_files import FILE_MODE
from errors import RunError

# The checkpoint has a folder of its own: the projector offers every 2-d variable of a checkpoint
# in the run folder (NCE's weights too); with none there it shows just the tensor its config names.
CHECKPOINT_DIR = "checkpoints"
# The projector's own vectors.tsv and metadata.tsv, for a sampled map.
PROJECTOR_SAMPLE_DIR = "projector"


def run_path(logs, name=None):
    """The path for run `name` (default: the time) in `logs`, which is made and must be writable."""
    if not logs.strip():
        raise RunError("--logdir is empty: name a directory for the logs, such as logs")
    try:
        os.makedirs(logs, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=logs)
        probe.close()
    except OSError as error:
        raise RunError(f"{logs}: log directory is not writable ({error.strerror or error}); "
                       f"choose another --logdir") from None
    name = name or datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if os.sep in name or name in ("", ".", ".."):
        raise RunError(f"--run {name!r}: a run name is one folder name, without '{os.sep}'")
    longest = os.pathconf(logs, "PC_NAME_MAX") - len(".lock.")  # its lock file's name is longest
    length = len(name.encode("utf-8", "surrogateescape"))
    if length > longest:
        raise RunError(f"--run is {length:,} bytes long; a run name here takes at most {longest}")
    return os.path.join(logs, name)


def make_run_folder(folder, overwrite=False):
    """The folder of a new run, replacing one there with `overwrite`."""
    if os.path.lexists(folder):
        if not overwrite:
            raise RunError(f"{folder} already exists: pass --overwrite to replace it, "
                           f"or another --run name")
        (shutil.rmtree(folder) if os.path.isdir(folder) and not os.path.islink(folder)
         else os.remove(folder))
    os.makedirs(folder)


def checkpoint_dir(folder):
    return os.path.join(folder, CHECKPOINT_DIR)


def has_checkpoint(folder):
    return os.path.isfile(os.path.join(checkpoint_dir(folder), "checkpoint"))


@contextlib.contextmanager
def writing(folder):
    """Hold the run's writer lock, a file beside its folder (so that --overwrite does not delete it)
    while it is written: one process writes a run at a time, and a second is refused in one line
    naming the first. The kernel drops the lock of a process that has gone, however it went, so a
    stale lock is taken over."""
    path = os.path.join(os.path.dirname(folder) or ".", f".{os.path.basename(folder)}.lock")
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            raise RunError(f"{folder}: cannot be written ({error.strerror}); "
                           f"check who may write in {os.path.dirname(folder) or '.'}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunError(f"{folder} is being written by {holder}; "
                           f"wait for it to finish, or stop it first") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder removed it between our open and our lock: lock the file there now
    try:
        os.ftruncate(fd, 0)
        command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
        os.pwrite(fd, f"process {os.getpid()} ({command})".encode("utf-8", "replace"), 0)
        yield
    finally:
        os.unlink(path)  # while locked: whoever opened it meanwhile sees it gone and opens anew
        os.close(fd)


def _same_file(fd, path):
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def find_run(logs, name=None, usable=False):
    """The run folder to read: `logs/name`, `logs` itself if it is a run, else its latest run.
    With `usable`, only a run with vectors to ask (metadata.tsv): not one training or cut short."""
    def ready(path):
        return os.path.isfile(os.path.join(path, run_record.RUN_FILE)) and (
            not usable or os.path.isfile(os.path.join(path, metadata.METADATA_FILE)))

    if name:
        path = os.path.join(logs, name)
        if not os.path.isfile(os.path.join(path, run_record.RUN_FILE)):
            raise RunError(f"{path}: no trained run there (no {run_record.RUN_FILE}); train with "
                           f"`python run.py` first")
        if not ready(path):
            record = run_record.read(path)
            raise RunError(f"{path}: no vectors to ask yet (its state: {record.state}); "
                           f"{record.next or 'train it again'}")
        return path
    if ready(logs):
        return logs
    names = run_names(logs)
    runs = [os.path.join(logs, d) for d in names if ready(os.path.join(logs, d))]
    if not runs:
        if names:
            raise RunError(f"{logs}: no run with vectors to ask yet ({', '.join(names)}: "
                           f"still training, or stopped before; "
                           f"their run.json says how to go on)")
        raise RunError(f"{logs}: no trained run found; "
                       f"train one with `python run.py --logdir {logs}`")
    return max(runs, key=lambda path: os.path.getmtime(os.path.join(path, run_record.RUN_FILE)))


def run_names(logs):
    """The names of the runs in `logs` (its folders with a run.json), sorted."""
    folders = sorted(os.listdir(logs)) if os.path.isdir(logs) else []
    return [d for d in folders if os.path.isfile(os.path.join(logs, d, run_record.RUN_FILE))]
