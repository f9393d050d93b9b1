"""A run's folder in the logs: its path, making it, its one writer's lock, finding a run to read.

What each file of a run holds is told by the module that writes it: run_record (run.json), metadata
(metadata.tsv), vector_files (vectors.npy, .tsv, .txt), tensorboard_files and plots.
"""
import contextlib
import datetime
import fcntl
import itertools
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
import unicodedata
import warnings

import atomic_files
import checks
import metadata
import run_record
from atomic_files import FILE_MODE, FOLDER_MODE
from errors import RunError, shown
from interrupts import signals_as_a_flag

# The checkpoint has a folder of its own: the projector offers every 2-d variable of a checkpoint
# in the run folder (NCE's weights too); with none there it shows just the tensor its config names.
CHECKPOINT_DIR = "checkpoints"
# The projector's own vectors.tsv and metadata.tsv, for a sampled map.
PROJECTOR_SAMPLE_DIR = "projector"
# Letters and symbols that print as nothing (Hangul fillers, the Braille blank): a run name needs
# a character besides them, or it cannot be seen.
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Links followed in a --logdir before it is left to the system, which refuses a loop of them.
LINKS_FOLLOWED = 40
# A lock holder's line is quoted in a refusal up to this long: its command may be long.
HOLDER_CHARACTERS = 300


def run_path(logs, name=None):
    """The path for run `name` (default: the time) in `logs`, which is made and must be writable."""
    if not logs.strip():
        raise RunError("--logdir is empty: name a directory for the logs, such as logs")
    _refuse_planted_link(logs)
    logs = _as_the_system_reads(logs)
    for run in (logs, os.path.dirname(os.path.abspath(logs))):  # a run's folder, or checkpoints/
        if os.path.lexists(os.path.join(run, run_record.RUN_FILE)):
            where = "a run's folder" if run == logs else f"a folder of the run {run}"
            raise RunError(f"{logs}: {where}, which --overwrite would remove with a new run in it; "
                           f"choose a --logdir of runs, such as {os.path.dirname(run) or '.'}")
    if name is not None:
        check_run_name(name)
    try:
        os.makedirs(logs, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=logs)
        probe.close()
    except OSError as error:
        problem = ("is a file, not a folder" if os.path.lexists(logs) and not os.path.isdir(logs)
                   else "cannot be made" if not os.path.isdir(logs) else "is not writable")
        raise RunError(f"{logs}: log directory {problem} ({error.strerror or error}); "
                       f"choose another --logdir") from None
    if name is None:
        name = _unused_name(logs, datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S"))
    _check_name_length(logs, name)
    return os.path.join(logs, name)


def _as_the_system_reads(logs):
    """`logs`, or where the system takes it where it has a `..`, which after a link is the parent
    of the folder the link leads to: a run's files are written by paths made with
    os.path.abspath, which would take `link/..` as the folder the link is in."""
    return os.path.realpath(logs) if os.pardir in logs.split(os.sep) else logs


def _refuse_planted_link(logs):
    """A RunError if the path `logs` goes through a symbolic link another user made, as the system
    follows it (into the links it leads to, and `..` after a link): whoever may write beside it
    could aim new runs, and --overwrite's removals, at a folder of their choice."""
    parts, reached = logs.split(os.sep)[::-1], os.sep if logs.startswith(os.sep) else os.getcwd()
    for _ in range(LINKS_FOLLOWED):
        while parts and not os.path.islink(os.path.join(reached, parts[-1])):
            part = parts.pop()
            reached = (os.path.dirname(reached) if part == ".." else
                       reached if part in ("", ".") else os.path.join(reached, part))
        if not parts:
            return
        link = os.path.join(reached, parts.pop())
        if os.lstat(link).st_uid not in (os.geteuid(), 0):
            raise RunError(f"{logs}: goes through {link}, a symbolic link uid "
                           f"{os.lstat(link).st_uid} made, and runs are written only where you "
                           f"chose; give a --logdir that does not go through it")
        target = os.readlink(link)
        parts += target.split(os.sep)[::-1]
        reached = os.sep if target.startswith(os.sep) else reached


def _unused_name(logs, name):
    """`name`, or `name-2`, `name-3`... the first no run in `logs` has or is taking: two runs
    started in one second are two runs, not one refused."""
    candidates = (name if n == 1 else f"{name}-{n}" for n in itertools.count(1))
    return next(candidate for candidate in candidates
                if not any(map(os.path.lexists, (os.path.join(logs, candidate),
                                                 lock_path(os.path.join(logs, candidate))))))


def _check_name_length(logs, name, option="--run"):
    """A RunError if `name` is too long for a run in `logs`: its lock file's name is longest."""
    try:
        longest = os.pathconf(logs, "PC_NAME_MAX") - len(".lock.")
    except OSError:  # no such folder (yet): the usual limit
        longest = 255 - len(".lock.")
    length = len(name.encode("utf-8", "surrogateescape"))
    if length > longest:
        raise RunError(f"{option} is {length:,} bytes long; a run name here takes at most "
                       f"{longest}")


def check_run_name(name, option="--run"):
    """`name` if it can name a run; else a one-line RunError saying why not."""
    problem = _name_problem(name)
    if problem:
        raise RunError(f"{option} {shown(name)}: {problem}; choose another, such as my-run")
    return name


def _name_problem(name):
    """Why `name` cannot name a run, or None: a run's name is one folder name, not hidden (a run's
    lock is `.NAME.lock`, and no run can be named so), not read as an option (`-x`), without
    control or invisible characters (a zero-width space) or spaces at its ends."""
    problems = [
        (not name.strip(), "it is empty"),
        (os.sep in name, f"a run name is one folder name, without '{os.sep}'"),
        (not checks.is_utf8(name), "it is not UTF-8 text (Python's escape of a name in another "
                                   "encoding), which TensorFlow cannot write"),
        (name.startswith("."), "it starts with '.', as hidden files and the runs' locks do"),
        (name.startswith("-"), "it starts with '-', as an option does"),
        (any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name),
         "it has a control character (or an invisible one), such as a line break"),
        (name != name.strip(), "it starts or ends with a space"),
        (not any(map(_visible, name)), "it has no visible character")]
    return next((problem for found, problem in problems if found), None)


def _visible(character):
    """Whether a character shows as ink: not a space, mark (a lone accent) or control, nor one of
    the letters and symbols that print blank."""
    return unicodedata.category(character)[0] not in "ZMC" and character not in BLANK_CHARACTERS


def make_run_folder(folder, overwrite=False):
    """The folder of a new run, replacing a run there (or an empty folder, or a link) with
    `overwrite`: never a folder or file that is not a run, which a slip of --run could name."""
    if os.path.lexists(folder):
        if not overwrite:
            raise RunError(f"{folder} already exists: pass --overwrite to replace it, "
                           f"or another --run name")
        if os.path.islink(folder):
            os.remove(folder)  # the link only, not what it names
        elif not _is_a_run(folder):
            raise RunError(f"{folder} is not a run (it has no {run_record.RUN_FILE} of one): "
                           f"--overwrite replaces only a run; choose another --run name, or move "
                           f"it away yourself")
        else:
            _check_removable(folder)
            shutil.rmtree(folder, onerror=_named_in_full)
    os.makedirs(folder, FOLDER_MODE)
    atomic_files.pin(folder)  # this folder, from now on


def _check_removable(folder):
    """A RunError naming the first folder in the run whose files this user cannot remove (another
    user's, in a run's folder others may write in): found before any is removed, not halfway."""
    def refused(path):
        owner = os.lstat(path).st_uid
        fix = ("give yourself leave to write in it (chmod u+rwx)" if owner == os.geteuid() else
               "ask its owner to remove it")
        raise RunError(f"{path}: --overwrite cannot remove what it holds (Permission denied; it "
                       f"is uid {owner}'s), so the run is left as it was; {fix}")

    me = os.geteuid()
    for path, folders, files in os.walk(folder, onerror=lambda error: refused(error.filename)):
        status = os.lstat(path)
        # In a sticky folder of another user's, only one's own files can be removed (but by root).
        sticky = me and status.st_mode & stat.S_ISVTX and status.st_uid != me and any(
            os.lstat(os.path.join(path, name)).st_uid != me for name in folders + files)
        if (folders or files) and not os.access(path, os.W_OK | os.X_OK) or sticky:
            refused(path)


def _named_in_full(function, path, error):
    """shutil.rmtree's error, naming the file by its path (rmtree names it by its name only)."""
    error = error[1]
    raise OSError(error.errno, error.strerror, path) from None


def _is_a_run(folder):
    """Whether `folder` is an empty folder, or one whose run.json is a run's."""
    if not os.path.isdir(folder):
        return False
    if not os.listdir(folder):
        return True
    try:
        run_record.read(folder)
    except RunError:
        return False
    return True


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
    path = lock_path(folder)
    while True:
        fd = _open_lock(folder, path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 1000, 0))
            os.close(fd)
            raise RunError(f"{folder} is being written by {holder}; "
                           f"wait for it to finish, or stop it first") from None
        if _same_file(fd, path):
            if _own_writable(fd):
                break
            _remove_stale_lock(folder, path, fd)  # another user's, stale: then one of our own
        os.close(fd)  # gone or removed since our open: lock the file there now
    try:
        check_own_folders(folder)
        if os.path.isdir(folder):
            atomic_files.pin(folder)
            for written in (folder, os.path.join(folder, PROJECTOR_SAMPLE_DIR)):
                atomic_files.remove_temporaries(written)
            atomic_files.remove_temporaries(checkpoint_dir(folder), atomic_files.TF_TEMPORARY)
        os.ftruncate(fd, 0)
        command = shlex.join([os.path.basename(sys.argv[0])] + sys.argv[1:])
        try:
            os.pwrite(fd, f"process {os.getpid()} ({command})".encode("utf-8", "replace"), 0)
        except OSError as error:  # a full disk: named, as its other writes are
            error.filename = path
            raise
        yield
    finally:
        # Ending, the run has said its state: a Ctrl-C now must not replace what it said.
        with signals_as_a_flag():
            atomic_files.unpin(folder)
            # While locked: whoever opened it meanwhile sees it gone and opens anew. A lock that
            # cannot be removed is taken over by the next writer: it must not undo the work.
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)


def check_own_folders(folder):
    """A RunError if the run's folder, or a folder in it that the run writes in, is a symbolic
    link or another user's, or if the run's folder is no longer the one this process began to
    write (atomic_files.pin): whoever may write in the logs could have put a link there, or moved
    the folder away and put another in its place, to make the run write elsewhere. Checked when
    the lock is taken and before TensorFlow writes; atomic_write writes in the pinned folder."""
    for path in (folder, checkpoint_dir(folder), os.path.join(folder, PROJECTOR_SAMPLE_DIR)):
        if os.path.islink(path):
            where = os.path.dirname(path)
            raise RunError(f"{path}: a symbolic link, which run.py never makes, and a run is "
                           f"written only in folders of its own; remove it (and see who put it "
                           f"in {where})")
        if os.path.isdir(path) and os.stat(path).st_uid != os.geteuid():
            raise RunError(f"{path}: another user's folder, and a run is written only in folders "
                           f"of its own; copy the run to a folder of yours to write it")
    try:
        atomic_files.check_pinned(os.path.join(folder, run_record.RUN_FILE))
    except OSError:
        raise RunError(f"{folder}: {atomic_files.MOVED}; stopped rather than write in it "
                       f"(see who moved it)") from None


def _holder(text):
    """Who holds a lock, as writing() writes it: `process 4242 (run.py ...)`, or `process 4242`
    where the rest is no command line of run.py's. Whoever may write in the logs can write a lock
    file, so nothing else in it is repeated: without a process number, `another process`."""
    holder = re.fullmatch(r"process (\d{1,9}) \((.*)\)", text.decode("utf-8", "replace"))
    if not holder:
        return "another process"
    return f"process {holder[1]}" + (f" ({holder[2]})" if _run_py_command(holder[2]) else "")


def _run_py_command(command):
    """Whether `command` is a command line writing() could have written for run.py: printable,
    not too long, and in shell words the first of which is run.py."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return (command.isprintable() and len(command) <= HOLDER_CHARACTERS and bool(words)
            and words[0] == "run.py" and shlex.join(words) == command)


def writer_of(folder):
    """Who writes the run `folder` now (its lock's holder), or None where nobody does."""
    try:
        fd = os.open(lock_path(folder), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _holder(os.pread(fd, 1000, 0))
    finally:
        os.close(fd)


def lock_path(folder):
    """The lock of run `folder`: a hidden file beside it, which no run name can be."""
    return os.path.join(os.path.dirname(folder) or ".", f".{os.path.basename(folder)}.lock")


def _open_lock(folder, path):
    """The lock file's descriptor, made if absent; read-only where it is another user's that we
    may not write. Whoever may write in the logs could have put a link there to a file of ours, or
    a FIFO: the lock is opened without following a link, and only a regular file of its own is
    used (never truncated or written otherwise)."""
    where = os.path.dirname(folder) or "."
    flags = os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, FILE_MODE)
        except PermissionError:  # another user's lock, to lock and see who holds it
            fd = os.open(path, os.O_RDONLY | flags)
    except OSError as error:
        if os.path.islink(path):
            raise RunError(f"{path}: the lock of {folder} is a symbolic link, which run.py never "
                           f"makes; remove it (and see who put it in {where})") from None
        if os.path.lexists(path):  # a folder, or another user's file we may not even read
            owner = os.lstat(path).st_uid
            whose = "" if owner == os.geteuid() else f"; it is uid {owner}'s"
            raise RunError(f"{path}: the lock of {folder} cannot be opened ({error.strerror}"
                           f"{whose}); remove it, or ask the owner of {where} to, or use "
                           f"another --run") from None
        raise RunError(f"{folder}: cannot be written ({error.strerror}); "
                       f"check who may write in {where}") from None
    status = os.fstat(fd)  # no link left (0) is a lock its holder has just removed: tried anew
    if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:
        os.close(fd)
        kind = "a hard link to another file" if stat.S_ISREG(status.st_mode) else \
            "not a regular file"
        raise RunError(f"{path}: the lock of {folder} is {kind}, which run.py never makes; "
                       f"remove it (and see who put it in {where})")
    return fd


def _own_writable(fd):
    """Whether the lock at `fd` is this user's and open for writing, as writing() needs it."""
    return (os.fstat(fd).st_uid == os.geteuid()
            and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR)


def _remove_stale_lock(folder, path, fd):
    """Remove the lock at `path`, another user's that nobody holds (we hold it, at `fd`): the
    lock's holder removes it when done, so it is left from a run that died. A RunError where it
    cannot be removed: a sticky log folder keeps another user's files."""
    try:
        os.unlink(path)
    except OSError as error:
        owner = os.fstat(fd).st_uid
        os.close(fd)
        where = os.path.dirname(folder) or "."
        raise RunError(f"{path}: the lock of {folder}, left by a run of another user's (uid "
                       f"{owner}), cannot be removed ({error.strerror}); ask them, or the owner "
                       f"of {where}, to remove it, or use another --run") from None


def _same_file(fd, path):
    try:
        return os.fstat(fd).st_ino == os.lstat(path).st_ino
    except FileNotFoundError:
        return False


def find_run(logs, name=None, usable=False, option="--run"):
    """The run folder to read: `logs/name`, `logs` itself if it is a run, else its latest run.
    With `usable`, only a run with vectors to ask (metadata.tsv): not one training or cut short.
    `option` is what gave the name, as an error names it."""
    logs = _as_the_system_reads(logs)
    if os.path.lexists(logs) and not os.path.isdir(logs):
        raise RunError(f"{logs}: not a folder; --logdir names the folder the runs are in")

    def ready(path):
        return os.path.isfile(os.path.join(path, run_record.RUN_FILE)) and (
            not usable or os.path.isfile(os.path.join(path, metadata.METADATA_FILE)))

    if name is not None:
        path = os.path.join(logs, check_run_name(name, option))
        _check_name_length(logs, name, option)
        if not os.path.lexists(os.path.join(path, run_record.RUN_FILE)):
            if os.path.isdir(path) and not os.access(path, os.X_OK):  # its run.json hidden
                raise RunError(f"{path}: a folder this user cannot open (Permission denied; it is "
                               f"uid {os.stat(path).st_uid}'s), so no run.json can be read there; "
                               f"ask its owner")
            train = (f"give a run's folder, or one of the runs in {logs}: "
                     f"{', '.join(run_names(logs)) or 'none yet'}" if option == "--against" else
                     "a link, where no run is trained" if os.path.islink(path) else
                     f"train it with `{run_record.train_command(logs, name)}`"
                     if not os.path.lexists(path) else
                     f"train it with `{run_record.train_command(logs, name)} --overwrite`"
                     if os.path.isdir(path) and not os.listdir(path) else
                     "what is there is no run's: train one under another --run name")
            there = ("no such run" if not os.path.lexists(path) else
                     f"no trained run there (no {run_record.RUN_FILE})")
            raise RunError(f"{path}: {there}; {train}")
        return _ready_run(path, ready(path), usable)
    if os.path.lexists(os.path.join(logs, run_record.RUN_FILE)):  # a run's own folder
        return _ready_run(logs, ready(logs), usable)
    names = run_names(logs)
    runs = [os.path.join(logs, d) for d in names if ready(os.path.join(logs, d))]
    if usable and not runs:  # none to ask: a planted metadata.tsv may be why
        for path in [logs, *(os.path.join(logs, d) for d in names)]:
            _refuse_planted_metadata(path)
    if not runs:
        if names:
            raise RunError(f"{logs}: no run with vectors to ask yet ({', '.join(names)}: "
                           f"still training, or stopped before; "
                           f"their run.json says how to go on)")
        run = os.path.dirname(os.path.abspath(logs))
        if os.path.lexists(os.path.join(run, run_record.RUN_FILE)):  # its checkpoints/, say
            raise RunError(f"{logs}: a folder of the run {run}, which holds no runs; give that "
                           f"run's folder, or the folder it is in, as --logdir")
        raise RunError(f"{logs}: no trained run found; train one with "
                       f"`{run_record.train_command(logs)}`")
    runs.sort(key=lambda path: os.path.getmtime(os.path.join(path, run_record.RUN_FILE)))
    return _newest_readable(runs[::-1]) if usable else runs[-1]


def _ready_run(path, ready, usable):
    """The run folder `path` if it is `ready` to read, else a RunError saying how it gets there."""
    if usable:
        _refuse_planted_metadata(path)
    if not ready:
        record, writer = run_record.read(path), writer_of(path)
        if record.state == "finished" and not writer:  # its vectors' labels are gone
            raise RunError(f"{path}: a finished run without its {metadata.METADATA_FILE}, which "
                           f"labels its vectors and only its training writes: put it back")
        go_on = (f"it is being written by {writer}: ask once it is done" if writer else
                 record.next_step(path))
        raise RunError(f"{path}: no vectors to ask yet (its state: {record.state}); {go_on}")
    return path


def _newest_readable(runs):
    """The first of `runs` (newest first) whose run.json can be read, with a warning naming each
    newer one skipped: whoever may write in the logs must not block every question there with a
    damaged run. A RunError of the newest where none can be read."""
    skipped = []
    for path in runs:
        try:
            run_record.read(path)
        except RunError as error:
            skipped.append(error)
            continue
        for error in skipped:
            warnings.warn(f"skipped {error}; answering from {path}, the newest run that can answer",
                          stacklevel=3)
        return path
    raise skipped[0]


def _refuse_planted_metadata(path):
    """A RunError if the run at `path` has something at metadata.tsv that is no file: it said the
    run had no vectors yet, and how to train it."""
    planted = os.path.join(path, metadata.METADATA_FILE)
    if os.path.lexists(planted) and not os.path.isfile(planted):
        raise RunError(f"{planted}: not a regular file (a FIFO, a device, a folder or a broken "
                       f"link), which run.py never makes; remove it, and see who put it there")


def run_names(logs):
    """The names of the runs in `logs` (its folders with a run.json, named as a run can be: one
    planted under a name no run has is none), sorted."""
    folders = sorted(os.listdir(logs)) if os.path.isdir(logs) else []
    return [d for d in folders if _name_problem(d) is None
            and os.path.isfile(os.path.join(logs, d, run_record.RUN_FILE))]
