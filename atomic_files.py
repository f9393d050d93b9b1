"""Files written whole or not at all, and only in the folder a run began to write (pinned); a run's
files read only where they are files; and what to tell the user when a write is refused."""
import contextlib
import errno
import os
import re
import resource
import secrets
import stat
import time

from interrupts import signals_deferred


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # the mode open() gives, as the checkpoint and events files have
# A run's folders are the run's alone: where others could write in them (umask 000), they could put
# a folder or a link where the run writes next.
FOLDER_MODE = 0o755
# Folders this process writes a run in, by absolute path: (device, inode) as it began to.
_PINNED = {}
# ... and a descriptor of each, held open while pinned, for paths handed to TensorFlow.
_PINNED_FDS = {}
MOVED = "moved away while this process wrote it, another folder or a link in its place"
# Linux's names for this process's open descriptors: a path through one is resolved from the
# folder the descriptor holds, whatever its old path names now.
PROC_FDS = "/proc/self/fd"


def pin(folder):
    """Take `folder` as it is now for the folder to write at its path, until unpin(folder): whoever
    may write beside it could move it away and put another (or a link) there. A folder in a pinned
    one (checkpoints/) is taken there, without following a link put at its name."""
    unpin(folder)
    fd = _opened_folder(os.path.abspath(folder))
    status = os.fstat(fd)
    _PINNED[os.path.abspath(folder)] = (status.st_dev, status.st_ino)
    _PINNED_FDS[os.path.abspath(folder)] = fd


def unpin(folder):
    """Let go of `folder`, and of the folders pinned in it."""
    folder = os.path.abspath(folder)
    for pinned in [path for path in _PINNED if _within(path, folder)]:
        del _PINNED[pinned]
        os.close(_PINNED_FDS.pop(pinned))


def _within(path, folder):
    """Whether `path` is `folder` or in it."""
    inside = os.path.relpath(path, folder)
    return inside != os.pardir and not inside.startswith(os.pardir + os.sep)


def through_pin(path):
    """`path` (a pinned folder, or a path in one) as a path through the pinned folder's open
    descriptor (/proc/self/fd/N/...), for TensorFlow, which opens files by path: the kernel resolves
    it in the folder as it was pinned, even if it is renamed between a check and the write. The
    path itself where nothing holding it is pinned, or where /proc/self/fd does not exist."""
    path = os.path.abspath(path)
    # The deepest pinned folder holding it: checkpoints/ itself, not the run's folder and its
    # name checkpoints (a link may be put there).
    holders = [folder for folder in _PINNED_FDS if _within(path, folder)]
    if holders:
        folder = max(holders, key=len)
        through = os.path.join(PROC_FDS, str(_PINNED_FDS[folder]))
        if not os.path.isdir(through):
            return path
        return through if folder == path else os.path.join(through, os.path.relpath(path, folder))
    return path


def unpinned(text):
    """`text` with each path through a pinned folder's descriptor (through_pin's) written as the
    folder's own path, the one the user knows: /proc/self/fd/N means nothing once the run ends."""
    for folder, fd in _PINNED_FDS.items():
        text = re.sub(re.escape(os.path.join(PROC_FDS, str(fd))) + r"(?!\d)",
                      lambda match, folder=folder: folder, text)
    return text


def check_pinned(path):
    """An OSError naming the folder if a pinned folder holding `path` (its folder, or that one's,
    as for checkpoints/) is no longer the one pinned."""
    if _pinned(os.path.dirname(os.path.abspath(path))):
        os.close(_folder_fd(path))


def _pinned(folder):
    """The pinned folder that is `folder` or holds it (as a run's holds checkpoints/), or None."""
    parent = os.path.dirname(folder)
    return folder if folder in _PINNED else parent if parent in _PINNED else None


def _folder_fd(path):
    """A descriptor of the folder `path` is in (_opened_folder)."""
    return _opened_folder(os.path.dirname(os.path.abspath(path)))


def _opened_folder(folder):
    """A descriptor of `folder`, to write in whatever its path names meanwhile. In a pinned run
    folder (or a folder of one, as checkpoints/), no link is followed on the way and the folder
    must be the one pinned; else an OSError naming it."""
    pinned = _pinned(folder)
    if pinned is None:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fd = _open_folder(pinned)
    if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != _PINNED[pinned]:
        os.close(fd)
        raise OSError(errno.EXDEV, f"{MOVED}; nothing is written there", pinned)
    if pinned == folder:
        return fd
    try:
        return os.open(os.path.basename(folder), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                       dir_fd=fd)
    except OSError as error:
        raise OSError(error.errno, error.strerror, folder) from None
    finally:
        os.close(fd)


def _open_folder(folder):
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise OSError(errno.EXDEV, f"{MOVED}; nothing is written there", folder) from None


def atomic_write(path, write):
    """Call `write(file)` on a new temporary file beside `path`, then rename it over `path`. Both
    steps are made in the folder as one open descriptor holds it (_folder_fd), whatever its path
    names meanwhile, and neither follows a link someone may have put at `path` (the new file is
    made with O_EXCL and O_NOFOLLOW; a rename replaces the link itself), so no file outside the
    folder is written. A failed write is an OSError naming `path`; so is a device, FIFO or folder
    at `path`, which a rename would replace."""
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    if not replaceable(path):
        raise OSError(errno.EINVAL, "not a regular file, which a write would replace; remove it, "
                                    "and see who put it there", path)
    folder_fd, tmp = _folder_fd(path), None
    try:
        with signals_deferred():  # a stop as the file is made must find its name, to remove it
            tmp, fd = _new_file(folder_fd, name, path)
            file = os.fdopen(fd, "wb")
        with file:
            write(file)
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except OSError as error:
        if tmp is None:  # no new file: _new_file's error names `path`
            raise
        # Named before the removal frees what the disk lacked; the file's size says whether it
        # stopped at the file-size limit.
        named = _named(error, path, folder, os.stat(tmp, dir_fd=folder_fd).st_size)
        _remove(tmp, folder_fd)
        raise named from None
    except BaseException:
        if tmp is not None:
            _remove(tmp, folder_fd)
        raise
    finally:
        os.close(folder_fd)


def temporary_names(name=".+"):
    """The names _new_file gives the new files beside a file named `name` (a pattern): a dot, the
    name, a dot and 8 hex digits."""
    return re.compile(rf"\.{name}\.[0-9a-f]{{8}}")


TEMPORARY = temporary_names()
# The names TensorFlow writes a checkpoint through: its state (`.tmp` and 32 hex digits), and its
# data and index files (`.tempstate` and digits).
TF_TEMPORARY = re.compile(r".+\.(tmp[0-9a-f]{32}|tempstate[0-9]+)")


def remove_temporaries(folder, names=TEMPORARY, stale_seconds=None):
    """Remove the new files atomic_write (or, with TF_TEMPORARY, TensorFlow's checkpoint) left in
    `folder` (a pinned one, or a folder of it) where its write failed or its process was killed
    (kill -9): for the folder's writer, which holds the run's lock, so no other write is under
    way. Where others may write meanwhile (the log folder), with `stale_seconds`: only this user's
    files older than that, which no write under way can be."""
    with contextlib.suppress(OSError):  # no such folder (yet)
        fd = _opened_folder(os.path.abspath(folder))
        try:
            for name in filter(names.fullmatch, os.listdir(fd)):
                with contextlib.suppress(OSError):  # a folder of that name is not ours to remove
                    status = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stale_seconds is None or _stale(status, stale_seconds):
                        os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)


def _stale(status, seconds):
    return status.st_uid == os.geteuid() and time.time() - status.st_mtime > seconds


def _new_file(folder_fd, name, path):
    """(its name, a descriptor) of a new hidden file beside `name`, readable as open() makes files
    (mkstemp's 0600 would hide it from another user's TensorBoard); else an OSError naming `path`,
    not the hidden file (/proc/self/fd/1, say, has no folder to make one in)."""
    while True:
        tmp = f".{name}.{secrets.token_hex(4)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=folder_fd)
        except FileExistsError:
            continue
        except OSError as error:
            raise OSError(error.errno, f"cannot make the new file beside it that replaces it "
                                       f"({error.strerror})", path) from None
        os.fchmod(fd, FILE_MODE)
        return tmp, fd


def _remove(tmp, folder_fd):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=folder_fd)


def replaceable(path):
    """Whether a write may replace what is at `path`: nothing, a regular file or a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return True
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _named(error, path, folder, size):
    """`error` naming `path`: a file object's and numpy's failed writes name no file, and numpy's
    (`557568 requested and 124896 written`) no reason either, which a full disk is, or the
    file-size limit where the file of `size` bytes has reached it."""
    if error.filename is not None:
        return error
    number = error.errno
    if number is None and os.statvfs(folder).f_bavail == 0:
        number = errno.ENOSPC
    elif number is None and size >= resource.getrlimit(resource.RLIMIT_FSIZE)[0] >= 0:
        number = errno.EFBIG  # the soft limit; RLIM_INFINITY is -1
    return OSError(number, os.strerror(number) if number else str(error), path)


def open_regular(path, mode="rb", encoding=None):
    """`path` opened for reading if it is a regular file; else an OSError naming it. A FIFO or a
    device put in a run's place (a link to /dev/zero, say) would block the reader or never end:
    it is opened without waiting (O_NONBLOCK) and refused before a byte is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return os.fdopen(fd, mode, encoding=encoding)


def write_bytes(path, data):
    atomic_write(path, lambda f: f.write(data))


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


# What to do about an operating-system error where a run is written or read, by its errno.
_OS_ADVICE = {errno.ENOSPC: "free some space there, or use another --logdir",
              errno.EDQUOT: "free some space there, or use another --logdir",
              errno.EACCES: "check who may write there, or use another --logdir",
              errno.EPERM: "check who may write there, or use another --logdir",
              errno.EROFS: "use another --logdir",
              errno.ENAMETOOLONG: "use a shorter --run name or --logdir",
              errno.ENOTDIR: "a part of that path is a file, not a folder",
              errno.EISDIR: "that is a folder, not a file",
              errno.EMFILE: "too many files are open: close some programs and try again",
              errno.ENFILE: "too many files are open: close some programs and try again",
              errno.EFBIG: "a file may grow no larger here (the shell's `ulimit -f`): raise the "
                           "limit, such as with `ulimit -f unlimited`, and try again"}


def os_error_line(error):
    """An OSError as one line naming the path and what to do, such as
    `logs/r/run.json: No space left on device; free some space there, or use another --logdir`."""
    return (f"{error.filename or 'a file'}: {error.strerror or error}"
            + os_advice(error.strerror or ""))


def os_advice(reason):
    """`; what to do` about an OS error message (as TensorFlow's errors quote it), or ''."""
    advice = [advice for number, advice in _OS_ADVICE.items() if os.strerror(number) in reason]
    return f"; {advice[0]}" if advice else ""
