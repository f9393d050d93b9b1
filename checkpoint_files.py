"""A run's checkpoint files: the latest one found, and handed to TensorFlow through descriptors
checked as regular files. TensorFlow opens files by path, so a file checked and then swapped for a
FIFO before TensorFlow opened it would make it wait for ever; a link to a descriptor cannot be
swapped."""
import contextlib
import glob
import os
import re
import stat
import tempfile

from atomic_files import PROC_FDS
from errors import RunError
from run_folder import checkpoint_dir

STATE_FILE = "checkpoint"  # TensorFlow's name for the file that names the latest checkpoint
# The checkpoint state's size: a run writes a few hundred bytes; TensorFlow reads it whole.
STATE_MAX_BYTES = 1_000_000


class UnreadableCheckpoint(RunError):
    """The checkpoint to continue from cannot be read: the run cannot go on from it."""


def latest_checkpoint(folder):
    """The path of the run's last checkpoint, or None where none was written (no
    checkpoints/checkpoint). One that names no checkpoint of the run's own, or one whose files are
    gone, is an UnreadableCheckpoint naming the file."""
    from bands2vec_graph import tf1

    directory = checkpoint_dir(folder)
    state_file = os.path.join(directory, STATE_FILE)
    if not os.path.lexists(state_file):
        return None
    with readable([state_file], most_bytes=STATE_MAX_BYTES) as private:
        try:
            state = tf1.train.get_checkpoint_state(private)  # None if it cannot be read
        except ValueError:  # not UTF-8
            state = None
    path = state.model_checkpoint_path if state else None
    if path and path.startswith(private + os.sep):  # a relative path, as this project saves
        path = os.path.normpath(os.path.join(directory, os.path.relpath(path, private)))
    problem = ("unreadable, or it names no checkpoint" if not path or "\0" in path else
               f"names {path}, not a checkpoint in {directory}"
               if os.path.dirname(os.path.realpath(path)) != os.path.realpath(directory) else
               f"names {path}, not a checkpoint of a step"
               if not re.fullmatch(r".+-[0-9]{1,18}", os.path.basename(path)) else
               None)
    if problem:
        raise UnreadableCheckpoint(f"{state_file}: {problem}; the run cannot continue from it: "
                                   f"put back its own, or train it anew with --overwrite")
    if not os.path.lexists(f"{path}.index"):
        raise _unreadable(f"{path}.index", "missing")
    with readable(checkpoint_parts(path)):
        return path


def checkpoint_step(checkpoint):
    """The step the checkpoint at prefix `checkpoint` was saved at, as the Saver names it."""
    return int(checkpoint.rpartition("-")[2])


def checkpoint_parts(checkpoint):
    """The files of the checkpoint at prefix `checkpoint`: its index and its data shards, all of
    them; an UnreadableCheckpoint naming the first shard missing."""
    digits = "[0-9]" * 5  # TensorFlow's shard numbers
    shards = glob.glob(f"{glob.escape(checkpoint)}.data-{digits}-of-{digits}")
    count = max([int(shard[-5:]) for shard in shards] + [1])
    expected = [f"{checkpoint}.data-{shard:05d}-of-{count:05d}" for shard in range(count)]
    missing = [shard for shard in expected if not os.path.lexists(shard)]
    if missing:
        raise _unreadable(missing[0], "missing")
    return [f"{checkpoint}.index", *expected]


@contextlib.contextmanager
def readable_checkpoint(checkpoint):
    """The prefix TensorFlow is to read the checkpoint at `checkpoint` by, its files checked."""
    with readable(checkpoint_parts(checkpoint)) as private:
        yield os.path.join(private, os.path.basename(checkpoint))


@contextlib.contextmanager
def readable(paths, most_bytes=None):
    """A private folder of links, each named as a file of `paths` and leading to a descriptor of
    it opened and checked here as a regular file; an UnreadableCheckpoint naming a file that is
    not one, or one of over `most_bytes` where that is given. The folder is named through a
    descriptor of its own, so it cannot be swapped either. Where no such folder can be made (no
    /proc/self/fd, a full disk), the files' own, checked."""
    fds = []
    try:
        fds = [_opened_regular(path, most_bytes) for path in paths]
        with _linked(paths, fds) as private:
            yield private or os.path.dirname(paths[0])
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def _linked(paths, fds):
    """The private folder of links to `fds`, named as `paths`, through its own descriptor; None
    where it cannot be made. It is made in the temporary folder, else beside the files."""
    if not os.path.isdir(PROC_FDS):
        yield None
        return
    folder = _private_folder(os.path.dirname(paths[0]))
    if folder is None:
        yield None
        return
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # no descriptor to spare
        os.rmdir(folder)
        yield None
        return
    try:
        try:
            for path, fd in zip(paths, fds):
                os.symlink(os.path.join(PROC_FDS, str(fd)), os.path.basename(path),
                           dir_fd=folder_fd)
            linked = os.path.join(PROC_FDS, str(folder_fd))
        except OSError:  # no room for a link, say
            linked = None
        yield linked
    finally:
        for name in os.listdir(folder_fd):
            os.unlink(name, dir_fd=folder_fd)
        os.close(folder_fd)
        with contextlib.suppress(OSError):  # already gone, or another folder in its place
            os.rmdir(folder)


def _private_folder(beside):
    """A new folder only this user may write in: in the temporary folder, else in `beside`; None
    where neither can be made."""
    for where in (None, beside):
        with contextlib.suppress(OSError):
            return tempfile.mkdtemp(prefix="bands2vec-checkpoint-", dir=where)
    return None


def _opened_regular(path, most_bytes=None):
    """A descriptor of `path` if it is a regular file (or a link to one) of at most `most_bytes`;
    opened without waiting, so that a FIFO is refused rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise _unreadable(path, error.strerror) from None
    status = os.fstat(fd)
    problem = ("not a regular file (a FIFO or a device, say)" if not stat.S_ISREG(status.st_mode)
               else f"{status.st_size:,} bytes, where a run writes a few hundred"
               if most_bytes is not None and status.st_size > most_bytes else None)
    if problem:
        os.close(fd)
        raise _unreadable(path, problem)
    return fd


def _unreadable(path, problem):
    return UnreadableCheckpoint(f"{path}: {problem}; the run cannot continue from its checkpoint: "
                                f"put back its own, or train it anew with --overwrite")
